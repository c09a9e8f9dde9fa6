"""Stage download: the corpus files into ``data/raw/<corpus>/<split>.<lang>``, verified and decompressed."""

from __future__ import annotations

import logging

import common
from s2s import corpora
from s2s.atomic import atomic_directory
from s2s.config import Params
from s2s.layout import Layout

log = logging.getLogger("stages.download")


def run(params: Params, layout: Layout) -> None:
    out = layout.raw_corpus(params.data.corpus)
    with atomic_directory(out) as out_dir:
        written = corpora.download(params.data, out_dir, corpora.Sources.from_env())
    log.info("download: %d files in %s", len(written), out)


def main() -> None:
    common.main(run)


if __name__ == "__main__":
    main()
