"""Stage tensorize: every split's token ids as flat arrays in ``data/tensors/<split>.pt``.

Valid and test sentences longer than ``tensorize.max_pieces`` are truncated with a
warning naming the line (training pairs were bounded by clean already).
"""

from __future__ import annotations

import logging

import common
from s2s import corpora
from s2s.atomic import atomic_directory
from s2s.config import Params
from s2s.layout import Layout
from s2s.subword import Vocabs
from s2s.tensors import encode_split, save_split

log = logging.getLogger("stages.tensorize")


def run(params: Params, layout: Layout) -> None:
    vocabs = Vocabs.load(layout.spm)
    with atomic_directory(layout.tensors) as out_dir:
        for split in corpora.splits_of(params.data):
            arrays = encode_split(layout.clean, split, vocabs,
                                  None if split == "train" else params.tensorize.max_pieces)
            save_split(arrays, out_dir / layout.split_tensors(split).name)
            log.info("tensorize %s: %d pairs, %d source / %d target tokens", split,
                     len(arrays["src_offsets"]) - 1, len(arrays["src"]), len(arrays["tgt"]))


def main() -> None:
    common.main(run)


if __name__ == "__main__":
    main()
