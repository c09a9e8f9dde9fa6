"""Stage train: ``models/model.pt`` and the resume checkpoint ``models/last.pt``;
``metrics/train.json``, ``metrics/speed.json`` and the dvclive curves in ``plots/train``.

Run again after an interruption, it resumes from ``models/last.pt`` when that
belongs to the same params and data.

With ``train.nproc`` > 1 this script starts that many copies of itself on the node (torch's
elastic launch, as ``torchrun --standalone`` does) and waits for them; run by ``torchrun``
itself (``RANK``, ``WORLD_SIZE`` in the environment), it is one of the training processes.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Optional

import common
from s2s.atomic import stage_outputs
from s2s.checkpoint import require_world_size, resume_point
from s2s.config import Params
from s2s.distributed import Ranks, World, joined
from s2s.errors import S2SError
from s2s.launch import Rendezvous, launch_workers
from s2s.layout import Layout
from s2s.signals import stop_with_parent
from s2s.subword import Vocabs
from s2s.tensors import ParallelData
from s2s.textio import write_json
from s2s.train import EpochLogger, TrainResult, train, training_device


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


def run(params: Params, layout: Layout, logger: Optional[EpochLogger] = None,
        ranks: Ranks = Ranks()) -> Optional[TrainResult]:
    """Train, or resume an interrupted training of the same params from ``models/last.pt``.

    Epoch records go to dvclive under ``plots/train`` unless ``logger`` takes them instead,
    as on a machine without dvclive. With ``train.nproc`` > 1 or several nodes (and one process
    so far) it checks the inputs, starts the node's training processes and returns None when
    they are done;
    ``ranks``: this process's place among them (only the writer writes).
    """
    vocabs = Vocabs.load(layout.spm)
    train_data = ParallelData.load(layout.split_tensors("train"))
    valid_data = ParallelData.load(layout.split_tensors("valid"))
    for data in (train_data, valid_data):
        data.require_vocabulary(vocabs, str(layout.spm), "Run `dvc repro tensorize` (or `dvc repro`) first")
    rendezvous = Rendezvous.from_env() if ranks.world.size == 1 else None
    if rendezvous is not None and (params.train.nproc > 1 or rendezvous.nodes > 1):
        checkpoint = resume_point(layout.last_checkpoint, params, train_data)
        if checkpoint is not None:  # refused here, once, rather than by every process
            require_world_size(checkpoint, params.train.nproc * rendezvous.nodes, layout.last_checkpoint)
        launch_workers(Path(__file__), params.train.nproc, rendezvous)
        return None
    if not ranks.is_writer:
        return train(params, train_data, valid_data, vocabs, layout.model, layout.last_checkpoint, None, ranks)
    live = None
    if logger is None:
        resuming = resume_point(layout.last_checkpoint, params, train_data) is not None
        logger = live = DvcLiveLogger(layout.train_plots, resume=resuming)
    with stage_outputs() as outputs:  # the model and its metrics: all new, or all as they were
        try:
            result = train(params, train_data, valid_data, vocabs, outputs.file(layout.model),
                           layout.last_checkpoint, logger, ranks)
        finally:
            if live is not None:
                live.close()
        write_json(outputs.file(layout.metrics / "train.json"), result.quality())
        write_json(outputs.file(layout.metrics / "speed.json"), result.speed())
    return result


def run_rank(params: Params, layout: Layout) -> Optional[TrainResult]:
    """One of several training processes (torchrun's environment says which): join the others, train."""
    stop_with_parent()  # a launcher killed outright: stop at the next update, checkpoint saved
    world = World.from_env()
    if world.local_size != params.train.nproc:
        raise S2SError(f"{world.local_size} training processes run on this node, but params.yaml says "
                       f"train.nproc: {params.train.nproc}; make them agree (torchrun --nproc-per-node "
                       f"{params.train.nproc}), so that the params record the experiment")
    with joined(world, training_device(params.train, world)) as ranks:
        if not ranks.is_writer:  # the writer reports; the others only their warnings and errors
            logging.getLogger().setLevel(logging.WARNING)
        return run(params, layout, ranks=ranks)


def main() -> None:
    if "RANK" not in os.environ:  # not started by a launcher: one process, or this node's launcher
        common.main(run)
    else:  # one of the training processes: the launcher holds the project lock (torchrun: only for one)
        common.main(run_rank, lock=os.environ.get("WORLD_SIZE") == "1")


if __name__ == "__main__":
    main()
