"""The six pipeline stages: where each reads and writes, and the metrics it records.

Each function takes the validated :class:`Params` and the project root; the
paths here are the contract that ``dvc.yaml`` declares.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Optional, Protocol

from s2s import clean as cleaning
from s2s import corpora, subword, tensors
from s2s import evaluate as scoring
from s2s.atomic import atomic_directory, write_text
from s2s.config import Params
from s2s.search import LengthLimit
from s2s.subword import Vocabs
from s2s.tensors import ParallelData
from s2s.train import TrainResult, load_model, resolve_device, resume_point, set_threads
from s2s.train import train as train_model
from s2s.translator import Translator

log = logging.getLogger(__name__)

ATTENTION_PLOTS = 4  # heatmaps of the first valid sentences


@dataclasses.dataclass(frozen=True)
class Layout:
    """Where every stage reads and writes, relative to the project root."""

    root: Path

    @property
    def raw(self) -> Path: return self.root / "data" / "raw"
    @property
    def clean(self) -> Path: return self.root / "data" / "clean"
    @property
    def spm(self) -> Path: return self.root / "data" / "spm"
    @property
    def tensors(self) -> Path: return self.root / "data" / "tensors"
    @property
    def model(self) -> Path: return self.root / "models" / "model.pt"
    @property
    def last_checkpoint(self) -> Path: return self.root / "models" / "last.pt"
    @property
    def metrics(self) -> Path: return self.root / "metrics"
    @property
    def train_plots(self) -> Path: return self.root / "plots" / "train"
    @property
    def attention_plots(self) -> Path: return self.root / "plots" / "attention"
    @property
    def outputs(self) -> Path: return self.root / "outputs"

    def raw_corpus(self, params: Params) -> Path:
        return self.raw / params.data.corpus


def write_json(path: Path, payload: dict) -> None:
    """Write sorted, indented JSON through a .part file renamed when complete."""
    write_text(path, json.dumps(payload, indent=2, sort_keys=True) + "\n")


def download(params: Params, layout: Layout) -> None:
    with atomic_directory(layout.raw_corpus(params)) as out_dir:
        written = corpora.download(params.data, out_dir, corpora.Sources.from_env())
    log.info("download: %d files in %s", len(written), layout.raw_corpus(params))


def clean(params: Params, layout: Layout) -> None:
    with atomic_directory(layout.clean) as out_dir:
        stats = cleaning.clean_corpus(layout.raw_corpus(params), out_dir, corpora.splits_of(params.data),
                                      params.data.src, params.data.tgt, params.clean,
                                      params.data.max_train_pairs)
    write_json(layout.metrics / "data.json", {split: dataclasses.asdict(s) for split, s in stats.items()})
    for split, s in stats.items():
        log.info("clean %s: %d -> %d lines, dropped %s", split, s.lines_in, s.lines_out, s.dropped)


def spm(params: Params, layout: Layout) -> None:
    with atomic_directory(layout.spm) as out_dir:
        subword.train_subword(layout.clean / "train.src", layout.clean / "train.tgt", out_dir, params.spm)
    log.info("spm: %s vocabulary of %d written to %s",
             "joint" if params.spm.joint else "separate", params.spm.vocab_size, layout.spm)


def tensorize(params: Params, layout: Layout) -> None:
    vocabs = Vocabs.load(layout.spm)
    with atomic_directory(layout.tensors) as out_dir:
        for split in corpora.splits_of(params.data):
            arrays = tensors.encode_split(layout.clean, split, vocabs)
            tensors.save_split(arrays, out_dir / f"{split}.pt")
            log.info("tensorize %s: %d pairs, %d source / %d target tokens", split,
                     len(arrays["src_offsets"]) - 1, len(arrays["src"]), len(arrays["tgt"]))


class StageLogger(Protocol):
    """Where the train stage sends its epoch records."""

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class DvcLiveLogger:
    """Per-epoch curves through dvclive under ``plots/train``; dvc.yaml declares them itself."""

    def __init__(self, directory: Path, resume: bool):
        from dvclive import Live
        self.live = Live(dir=str(directory), resume=resume, dvcyaml=False, save_dvc_exp=False, report=None)

    def log_epoch(self, epoch: int, metrics: dict[str, float]) -> None:
        for name, value in metrics.items():
            self.live.log_metric(name, value)
        self.live.next_step()

    def close(self) -> None:
        self.live.end()


def train(params: Params, layout: Layout, logger: Optional[StageLogger] = None) -> TrainResult:
    """Train, or resume an interrupted training of the same params from ``models/last.pt``.

    Epoch records go to dvclive under ``plots/train`` unless ``logger`` takes them instead,
    as on a machine without dvclive.
    """
    vocabs = Vocabs.load(layout.spm)
    train_data = ParallelData.load(layout.tensors / "train.pt")
    valid_data = ParallelData.load(layout.tensors / "valid.pt")
    if logger is None:
        resuming = resume_point(layout.last_checkpoint, params, train_data) is not None
        logger = DvcLiveLogger(layout.train_plots, resume=resuming)
    try:
        result = train_model(params, train_data, valid_data, vocabs, layout.model, layout.last_checkpoint, logger)
    finally:
        logger.close()
    write_json(layout.metrics / "train.json", result.quality())
    write_json(layout.metrics / "speed.json", result.speed())
    return result


def evaluate(params: Params, layout: Layout) -> None:
    """Decode valid and every test set with the configured beam (and greedily, to compare)."""
    device = resolve_device(params.train.device)
    set_threads(params.train.threads)
    model, checkpoint = load_model(layout.model, device)
    greedy = Translator(model, Vocabs.from_protos(checkpoint["spm"]), LengthLimit(params.eval.max_len_a, params.eval.max_len_b),
                        params.eval.batch_size, params.clean.normalization)
    main = f"beam{params.eval.beam}" if params.eval.beam > 1 else "greedy"
    decoders = {main: dataclasses.replace(greedy, beam=params.eval.beam, len_penalty=params.eval.len_penalty)}
    if params.eval.beam > 1:
        decoders["greedy"] = greedy
    quality, speed = {}, {"device": str(device)}
    for split in ["valid", *params.data.test_sets]:
        references = cleaning.read_lines(layout.raw_corpus(params) / f"{split}.{params.data.tgt}")
        data = ParallelData.load(layout.tensors / f"{split}.pt")
        speed[split] = {}
        for name, translator in decoders.items():
            suffix = ".greedy" if name != main else ""
            scores = scoring.evaluate_set(translator, data, references, layout.outputs / f"{split}{suffix}.hyp")
            speed[split][name] = scores.speed()
            if name == main:
                quality[split] = scores.quality()
            if name == "greedy":  # with eval.beam 1 the main score, so every experiment has the key
                quality[split]["bleu_greedy"] = round(scores.bleu, 2)
            log.info("evaluate %s (%s): BLEU %.2f, BLEU lc %.2f, chrF %.2f, TER %.2f, %.1f sentences/s",
                     split, name, scores.bleu, scores.bleu_lc, scores.chrf, scores.ter,
                     speed[split][name]["sentences_per_s"])
    valid = ParallelData.load(layout.tensors / "valid.pt")
    scoring.plot_attention(greedy, valid, list(range(min(ATTENTION_PLOTS, len(valid)))), layout.attention_plots)
    write_json(layout.metrics / "eval.json", quality)
    write_json(layout.metrics / "decode_speed.json", speed)


STAGES = {"download": download, "clean": clean, "spm": spm, "tensorize": tensorize,
          "train": train, "evaluate": evaluate}
