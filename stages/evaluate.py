"""Stage evaluate: valid and every test set decoded with ``eval.beam`` (and greedily, to compare).

Writes ``outputs/<set>.hyp`` (and ``<set>.greedy.hyp``), ``metrics/eval.json``
(sacreBLEU BLEU, lowercased BLEU, chrF, TER and their signatures, against the
raw references), ``metrics/decode_speed.json`` and attention heatmaps of the
first valid sentences in ``plots/attention``.

With ``eval.ensemble`` the decoder is the ensemble of ``models/model.pt`` and the
listed models (each checked against its sha256 first), and ``eval.json`` names them.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import common
from s2s.atomic import stage_outputs
from s2s.checkpoint import load_models
from s2s.config import Params
from s2s.corpora import sha256_of
from s2s.device import resolve_device, set_threads
from s2s.errors import S2SError
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
    members = ensemble_members(params, layout)
    model, checkpoint = load_models([layout.model, *members], device)
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
        if members:
            quality["ensemble"] = [str(layout.model.relative_to(layout.root)), *(m.path for m in params.eval.ensemble)]
        write_json(outputs.file(layout.metrics / "eval.json"), quality)
        write_json(outputs.file(layout.metrics / "decode_speed.json"), {"device": str(device), **speed})


def ensemble_members(params: Params, layout: Layout) -> list[Path]:
    """The model files of ``eval.ensemble``, each found and matching its sha256 (else one clear error)."""
    paths = []
    for i, member in enumerate(params.eval.ensemble):
        path = layout.root / member.path
        where = f"eval.ensemble[{i}].path: {member.path}"
        if not path.is_file():
            raise S2SError(f"{where}: no such file; copy the model there (and `dvc add` it), or remove the entry")
        actual = sha256_of(path)
        if actual != member.sha256:
            raise S2SError(f"{where}: its sha256 is {actual}, params say {member.sha256}; the file changed since "
                           "the params were written: put back the model they name, or give the new sha256")
        paths.append(path)
    return paths


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
