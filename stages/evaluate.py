"""Stage evaluate: valid and every test set decoded with ``eval.beam`` (and greedily, to compare).

Writes ``outputs/<set>.hyp`` (and ``<set>.greedy.hyp``), ``metrics/eval.json``
(sacreBLEU BLEU, lowercased BLEU, chrF, TER and their signatures, against the
raw references), ``metrics/decode_speed.json`` and attention heatmaps of the
first valid sentences in ``plots/attention``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import common
from s2s.atomic import stage_outputs
from s2s.checkpoint import load_model
from s2s.config import Params
from s2s.device import resolve_device, set_threads
from s2s.evaluate import evaluate_set, plot_attention
from s2s.layout import Layout
from s2s.search import LengthLimit
from s2s.subword import Vocabs
from s2s.tensors import ParallelData
from s2s.textio import read_lines, write_json
from s2s.translator import Translator

log = logging.getLogger("stages.evaluate")

ATTENTION_PLOTS = 4  # heatmaps of the first valid sentences


def run(params: Params, layout: Layout) -> None:
    device = resolve_device(params.train.device)
    set_threads(params.train.threads)
    model, checkpoint = load_model(layout.model, device)
    vocabs = Vocabs.from_protos(checkpoint["spm"])
    greedy = Translator(model, vocabs, LengthLimit.from_eval(params.eval), params.eval.batch_size,
                        params.clean.normalization)
    main = f"beam{params.eval.beam}" if params.eval.beam > 1 else "greedy"
    decoders = {main: dataclasses.replace(greedy, beam=params.eval.beam, len_penalty=params.eval.len_penalty)}
    if params.eval.beam > 1:
        decoders["greedy"] = greedy
    splits = ["valid", *params.data.test_sets]
    data = {split: ParallelData.load(layout.split_tensors(split)) for split in splits}
    for split_data in data.values():  # every set checked before anything is decoded
        split_data.require_vocabulary(vocabs, str(layout.model),
                                      "Run `dvc repro` to remake the stale one (tensorize, or train)")
    with stage_outputs() as outputs:  # hypotheses, heatmaps and metrics: all new, or all as they were
        quality, speed = _evaluate(params, layout, decoders, main, data, outputs.directory(layout.outputs))
        plot_attention(greedy, data["valid"], list(range(min(ATTENTION_PLOTS, len(data["valid"])))),
                       outputs.directory(layout.attention_plots))
        write_json(outputs.file(layout.metrics / "eval.json"), quality)
        write_json(outputs.file(layout.metrics / "decode_speed.json"), {"device": str(device), **speed})


def _evaluate(params: Params, layout: Layout, decoders: dict[str, Translator], main: str,
              data: dict[str, ParallelData], out_dir: Path) -> tuple[dict, dict]:
    """Decode and score every set with every decoder, writing ``out_dir/<set>[.greedy].hyp``;
    returns the scores and the speeds per set."""
    quality: dict = {}
    speed: dict = {}
    for split, split_data in data.items():
        references = read_lines(layout.raw_corpus(params.data.corpus) / f"{split}.{params.data.tgt}")
        speed[split] = {}
        for name, translator in decoders.items():
            suffix = ".greedy" if name != main else ""
            scores = evaluate_set(translator, split_data, references, out_dir / f"{split}{suffix}.hyp")
            speed[split][name] = scores.speed()
            if name == main:
                quality[split] = scores.quality()
            if name == "greedy":  # with eval.beam 1 the main score, so every experiment has the key
                quality[split]["bleu_greedy"] = round(scores.bleu, 2)
            log.info("evaluate %s (%s): BLEU %.2f, BLEU lc %.2f, chrF %.2f, TER %.2f, %.1f sentences/s",
                     split, name, scores.bleu, scores.bleu_lc, scores.chrf, scores.ter,
                     speed[split][name]["sentences_per_s"])
    return quality, speed


def main() -> None:
    common.main(run)


if __name__ == "__main__":
    main()
