"""Stage tensorize: every split's token ids as flat arrays in ``data/tensors/<split>/``.

Valid and test sentences longer than ``tensorize.max_pieces`` are truncated with a
warning naming the line (training pairs were bounded by clean already). The text is
encoded in ``tensorize.workers`` processes; the bytes are the same whatever their number.
"""

from __future__ import annotations

import logging

import common
from s2s import corpora
from s2s.atomic import atomic_directory
from s2s.config import Params
from s2s.layout import Layout
from s2s.subword import Vocabs
from s2s.tensorizer import resolve_workers, tensorize_split

log = logging.getLogger("stages.tensorize")


def run(params: Params, layout: Layout) -> None:
    vocabs = Vocabs.load(layout.spm)
    workers = resolve_workers(params.tensorize.workers)
    with atomic_directory(layout.tensors) as out_dir:
        for split in corpora.splits_of(params.data):
            summary = tensorize_split(layout.clean, split, vocabs, out_dir,
                                      None if split == "train" else params.tensorize.max_pieces, workers)
            log.info("tensorize %s: %d pairs, %d source / %d target tokens", split, summary.pairs,
                     summary.src_tokens, summary.tgt_tokens)


def main() -> None:
    common.main(run)


if __name__ == "__main__":
    main()
