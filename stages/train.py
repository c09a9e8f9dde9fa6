"""Stage train: ``models/model.pt`` and the resume checkpoint ``models/last.pt``;
``metrics/train.json``, ``metrics/speed.json`` and the dvclive curves in ``plots/train``.

Run again after an interruption, it resumes from ``models/last.pt`` when that
belongs to the same params and data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import common
from s2s.atomic import stage_outputs
from s2s.checkpoint import resume_point
from s2s.config import Params
from s2s.layout import Layout
from s2s.subword import Vocabs
from s2s.tensors import ParallelData
from s2s.textio import write_json
from s2s.train import EpochLogger, TrainResult, train


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


def run(params: Params, layout: Layout, logger: Optional[EpochLogger] = None) -> TrainResult:
    """Train, or resume an interrupted training of the same params from ``models/last.pt``.

    Epoch records go to dvclive under ``plots/train`` unless ``logger`` takes them instead,
    as on a machine without dvclive.
    """
    vocabs = Vocabs.load(layout.spm)
    train_data = ParallelData.load(layout.split_tensors("train"))
    valid_data = ParallelData.load(layout.split_tensors("valid"))
    for data in (train_data, valid_data):
        data.require_vocabulary(vocabs, str(layout.spm), "Run `dvc repro tensorize` (or `dvc repro`) first")
    live = None
    if logger is None:
        resuming = resume_point(layout.last_checkpoint, params, train_data) is not None
        logger = live = DvcLiveLogger(layout.train_plots, resume=resuming)
    with stage_outputs() as outputs:  # the model and its metrics: all new, or all as they were
        try:
            result = train(params, train_data, valid_data, vocabs, outputs.file(layout.model),
                           layout.last_checkpoint, logger)
        finally:
            if live is not None:
                live.close()
        write_json(outputs.file(layout.metrics / "train.json"), result.quality())
        write_json(outputs.file(layout.metrics / "speed.json"), result.speed())
    return result


def main() -> None:
    common.main(run)


if __name__ == "__main__":
    main()
