"""Stage spm: the SentencePiece model(s) in ``data/spm``, trained on the clean training text."""

from __future__ import annotations

import logging

import common
from s2s.atomic import atomic_directory
from s2s.config import Params
from s2s.layout import Layout
from s2s.subword import train_subword, training_threads

log = logging.getLogger("stages.spm")


def run(params: Params, layout: Layout) -> None:
    with atomic_directory(layout.spm) as out_dir:
        train_subword(layout.clean / "train.src", layout.clean / "train.tgt", out_dir, params.spm)
    log.info("spm: %s vocabulary of %d (%d training threads) written to %s",
             "joint" if params.spm.joint else "separate", params.spm.vocab_size, training_threads(params.spm),
             layout.spm)


def main() -> None:
    common.main(run)


if __name__ == "__main__":
    main()
