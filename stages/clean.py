"""Stage clean: normalised, filtered text in ``data/clean/<split>.{src,tgt}``; counts in ``metrics/data.json``."""

from __future__ import annotations

import dataclasses
import logging

import common
from s2s import corpora
from s2s.atomic import stage_outputs
from s2s.clean import clean_corpus
from s2s.config import Params
from s2s.layout import Layout
from s2s.textio import write_json

log = logging.getLogger("stages.clean")


def run(params: Params, layout: Layout) -> None:
    with stage_outputs() as outputs:  # the data and its counts: both new, or both as they were
        stats = clean_corpus(layout.raw_corpus(params.data.corpus), outputs.directory(layout.clean),
                             corpora.splits_of(params.data), params.data.src, params.data.tgt, params.clean,
                             params.data.max_train_pairs)
        write_json(outputs.file(layout.metrics / "data.json"),
                   {split: dataclasses.asdict(s) for split, s in stats.items()})
    for split, s in stats.items():
        log.info("clean %s: %d -> %d lines, dropped %s", split, s.lines_in, s.lines_out, s.dropped)


def main() -> None:
    common.main(run)


if __name__ == "__main__":
    main()
