"""Stage evaluate: valid and every test set decoded with ``eval.beam`` (and greedily, to compare).

Writes ``outputs/<set>.hyp`` (and ``<set>.greedy.hyp``), ``metrics/eval.json``
(sacreBLEU BLEU, lowercased BLEU, chrF, TER and their signatures, against the
raw references), ``metrics/decode_speed.json`` and attention heatmaps of the
first valid sentences in ``plots/attention``.
"""

from __future__ import annotations

import dataclasses
import logging

import common
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
    greedy = Translator(model, Vocabs.from_protos(checkpoint["spm"]), LengthLimit.from_eval(params.eval),
                        params.eval.batch_size, params.clean.normalization)
    main = f"beam{params.eval.beam}" if params.eval.beam > 1 else "greedy"
    decoders = {main: dataclasses.replace(greedy, beam=params.eval.beam, len_penalty=params.eval.len_penalty)}
    if params.eval.beam > 1:
        decoders["greedy"] = greedy
    quality, speed = {}, {"device": str(device)}
    valid = ParallelData.load(layout.split_tensors("valid"))
    for split in ["valid", *params.data.test_sets]:
        references = read_lines(layout.raw_corpus(params.data.corpus) / f"{split}.{params.data.tgt}")
        data = valid if split == "valid" else ParallelData.load(layout.split_tensors(split))
        speed[split] = {}
        for name, translator in decoders.items():
            suffix = ".greedy" if name != main else ""
            scores = evaluate_set(translator, data, references, layout.outputs / f"{split}{suffix}.hyp")
            speed[split][name] = scores.speed()
            if name == main:
                quality[split] = scores.quality()
            if name == "greedy":  # with eval.beam 1 the main score, so every experiment has the key
                quality[split]["bleu_greedy"] = round(scores.bleu, 2)
            log.info("evaluate %s (%s): BLEU %.2f, BLEU lc %.2f, chrF %.2f, TER %.2f, %.1f sentences/s",
                     split, name, scores.bleu, scores.bleu_lc, scores.chrf, scores.ter,
                     speed[split][name]["sentences_per_s"])
    plot_attention(greedy, valid, list(range(min(ATTENTION_PLOTS, len(valid)))), layout.attention_plots)
    write_json(layout.metrics / "eval.json", quality)
    write_json(layout.metrics / "decode_speed.json", speed)


def main() -> None:
    common.main(run)


if __name__ == "__main__":
    main()
