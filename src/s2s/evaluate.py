"""Scoring with sacreBLEU (decode, write hypotheses, BLEU/chrF/TER) and attention heatmaps."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF, TER

from s2s.atomic import atomic_path
from s2s.textio import write_lines
from s2s.errors import S2SError
from s2s.subword import Vocabs
from s2s.tensors import ParallelData
from s2s.translator import Translator


@dataclass
class SetScores:
    """Scores of one set; ``quality()`` is reproducible, the speed figures are not."""

    bleu: float
    bleu_lc: float
    chrf: float
    ter: float
    signature: dict[str, str]
    sentences: int
    tgt_tokens: int
    seconds: float

    def quality(self) -> dict:
        return {"bleu": round(self.bleu, 2), "bleu_lc": round(self.bleu_lc, 2),
                "chrf": round(self.chrf, 2), "ter": round(self.ter, 2), "signature": self.signature}

    def speed(self) -> dict:
        return {"seconds": round(self.seconds, 2),
                "sentences_per_s": round(self.sentences / self.seconds, 1),
                "tgt_tokens_per_s": round(self.tgt_tokens / self.seconds, 1)}


def score(hypotheses: list[str], references: list[str]) -> dict:
    """sacreBLEU BLEU (13a, cased), lowercased BLEU, chrF and TER with their signatures."""
    if len(hypotheses) != len(references):
        raise S2SError(f"{len(hypotheses)} hypotheses for {len(references)} references; "
                       "outputs must be line-aligned with the references")
    metrics = {"bleu": BLEU(), "bleu_lc": BLEU(lowercase=True), "chrf": CHRF(), "ter": TER()}
    scores, signature = {}, {}
    for name, metric in metrics.items():
        scores[name] = metric.corpus_score(hypotheses, [references]).score
        signature[name] = str(metric.get_signature())
    return {**scores, "signature": signature}


def evaluate_set(translator: Translator, data: ParallelData, references: list[str],
                 hyp_path: Path) -> SetScores:
    """Decode ``data``'s source side, write ``hyp_path`` and score it against ``references``."""
    started = time.perf_counter()
    hyps = translator.translate_ids([data.src(i) for i in range(len(data))])
    seconds = time.perf_counter() - started
    texts = translator.detokenize(hyps)
    scores = score(texts, references)  # before writing: misaligned references leave the old file in place
    write_lines(hyp_path, texts)
    return SetScores(**scores, sentences=len(texts), tgt_tokens=sum(len(t) + 1 for t in hyps.tokens),
                     seconds=seconds)


def plot_attention(translator: Translator, data: ParallelData, sentences: list[int], out_dir: Path) -> list[Path]:
    """Greedy-decode ``sentences`` of ``data`` and save one attention heatmap PNG per sentence.

    Source pieces run along the x axis, output pieces along the y axis; each
    file is written through a .part file.
    """
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    greedy = translator if translator.beam == 1 else dataclasses.replace(translator, beam=1)
    sources = [data.src(i) for i in sentences]
    hyps = greedy.translate_ids(sources)
    vocabs: Vocabs = translator.vocabs
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for number, src, tokens, weights in zip(sentences, sources, hyps.tokens, hyps.attention):
        if weights.numel() == 0:  # a model without attention
            continue
        x_labels = [vocabs.src.id_to_piece(int(t)) for t in src] + ["</s>"]
        y_labels = [vocabs.tgt.id_to_piece(int(t)) for t in tokens] + ["</s>"]
        fig, ax = plt.subplots(figsize=(0.35 * len(x_labels) + 2, 0.35 * len(y_labels) + 1.5))
        ax.imshow(weights.numpy(), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(x_labels)), x_labels, rotation=90, fontsize=8)
        ax.set_yticks(range(len(y_labels)), y_labels, fontsize=8)
        ax.set_xlabel("source pieces")
        ax.set_ylabel("output pieces")
        ax.set_title(f"attention, valid sentence {number}", fontsize=9)
        fig.tight_layout()
        path = out_dir / f"valid_{number:04d}.png"
        try:
            with atomic_path(path) as part:
                fig.savefig(part, format="png", dpi=80, metadata={"Software": None})
        finally:
            plt.close(fig)
        written.append(path)
    return written
