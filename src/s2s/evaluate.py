"""Scoring with sacreBLEU: decode each set, write hypotheses, compute BLEU/chrF/TER."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from sacrebleu.metrics import BLEU, CHRF, TER

from s2s.clean import write_lines
from s2s.errors import S2SError
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
    write_lines(hyp_path, texts)
    scores = score(texts, references)
    return SetScores(**scores, sentences=len(texts), tgt_tokens=sum(len(t) + 1 for t in hyps.tokens),
                     seconds=seconds)

