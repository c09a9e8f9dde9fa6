"""Clean text to the on-disk token arrays of :mod:`s2s.tensors`, streaming and in parallel.

A split is read in chunks of lines (both sides in step), each chunk encoded
with SentencePiece by one of ``workers`` processes, and the chunks' ids and
offsets appended, in corpus order, to raw files that become the ``.npy``
arrays once the split's size is known. Memory holds a few chunks, whatever the
corpus size, and the output is the same bytes whatever the number of workers.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np

from s2s.atomic import atomic_path, write_text
from s2s.clean import parallel_lines
from s2s.subword import Vocabs
from s2s.tensors import ARRAYS, FORMAT, META, combine_digests

log = logging.getLogger(__name__)
CHUNK_LINES = 20_000  # pairs per encoding task
MAX_WARNINGS = 10     # truncated lines named one by one per file; then a count


@dataclass
class EncodedChunk:
    """The ids of a chunk of pairs: per side flat int32 ids and int64 lengths, and truncated lines."""

    src: np.ndarray            # (src_tokens,) int32
    src_lens: np.ndarray       # (pairs,) int64
    tgt: np.ndarray            # (tgt_tokens,) int32
    tgt_lens: np.ndarray       # (pairs,) int64
    truncated: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # side -> (line, pieces)


@dataclass
class SplitSummary:
    """What one split became: pairs, tokens per side, lines truncated per side."""

    pairs: int = 0
    src_tokens: int = 0
    tgt_tokens: int = 0
    truncated: dict[str, int] = field(default_factory=lambda: {"src": 0, "tgt": 0})


_worker_vocabs: Optional[Vocabs] = None  # set once in each worker process by _start_worker


def _start_worker(protos: dict[str, bytes]) -> None:
    global _worker_vocabs
    _worker_vocabs = Vocabs.from_protos(protos)


def encode_chunk(vocabs: Vocabs, first_line: int, src_lines: list[str], tgt_lines: list[str],
                 max_pieces: Optional[int]) -> EncodedChunk:
    """Encode one chunk of pairs (lines ``first_line``… of the split), cutting sides longer than
    ``max_pieces`` to that length."""
    sides = {}
    truncated: dict[str, list[tuple[int, int]]] = {}
    for side, processor, lines in (("src", vocabs.src, src_lines), ("tgt", vocabs.tgt, tgt_lines)):
        sequences = processor.encode(lines)
        if max_pieces is not None:
            cut = [(first_line + i, len(s)) for i, s in enumerate(sequences) if len(s) > max_pieces]
            if cut:
                truncated[side] = cut
                sequences = [s[:max_pieces] for s in sequences]
        lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
        ids = np.fromiter((t for s in sequences for t in s), dtype=np.int32, count=int(lengths.sum()))
        sides[side] = (ids, lengths)
    return EncodedChunk(sides["src"][0], sides["src"][1], sides["tgt"][0], sides["tgt"][1], truncated)


def _encode_in_worker(task: tuple[int, list[str], list[str], Optional[int]]) -> EncodedChunk:
    return encode_chunk(_worker_vocabs, *task)


def resolve_workers(workers: int) -> int:
    """``tensorize.workers``: 0 = one per core."""
    return workers if workers > 0 else (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                                        else os.cpu_count() or 1)


def _chunks(src_path: Path, tgt_path: Path, chunk_lines: int,
            max_pieces: Optional[int]) -> Iterator[tuple[int, list[str], list[str], Optional[int]]]:
    src, tgt, first = [], [], 1
    for s, t in parallel_lines(src_path, tgt_path):
        src.append(s)
        tgt.append(t)
        if len(src) == chunk_lines:
            yield first, src, tgt, max_pieces
            first, src, tgt = first + len(src), [], []
    if src:
        yield first, src, tgt, max_pieces


def _encoded(vocabs: Vocabs, tasks: Iterable[tuple], workers: int) -> Iterator[EncodedChunk]:
    """The tasks' chunks encoded, in task order; with ``workers`` > 1 in that many processes, at most
    two tasks per worker read ahead (``Pool.imap`` would read the whole corpus into its queue)."""
    if workers <= 1:
        for task in tasks:
            yield encode_chunk(vocabs, *task)
        return
    pool = multiprocessing.get_context("fork").Pool(workers, _start_worker, (vocabs.to_protos(),))
    pending: collections.deque = collections.deque()
    try:
        for task in tasks:
            pending.append(pool.apply_async(_encode_in_worker, (task,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()
    finally:  # also on an error reading the text: let the tasks sent finish, then close (terminate can hang)
        for result in pending:
            result.wait()
        pool.close()
        pool.join()


class _ArrayFile:
    """An array appended to in pieces (raw bytes in a temporary file), then written as ``.npy``."""

    def __init__(self, path: Path, dtype: np.dtype):
        self.path, self.dtype, self.length = path, np.dtype(dtype), 0
        self.sha256 = hashlib.sha256()  # of the array's bytes
        self.raw_path = path.with_name(path.name + ".raw")
        self.raw = open(self.raw_path, "wb")

    def append(self, values: np.ndarray) -> None:
        data = np.ascontiguousarray(values, dtype=self.dtype)
        self.raw.write(data.data)
        self.sha256.update(data.data)
        self.length += len(data)

    def finish(self) -> None:
        """Write ``<path>`` (through a .part renamed at the end): the .npy header, then the raw bytes."""
        self.raw.close()
        with atomic_path(self.path) as part, open(part, "wb") as out, open(self.raw_path, "rb") as raw:
            np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(self.dtype),
                                                       "fortran_order": False, "shape": (self.length,)})
            shutil.copyfileobj(raw, out, 1 << 20)
        self.raw_path.unlink()

    def discard(self) -> None:
        self.raw.close()
        self.raw_path.unlink(missing_ok=True)


def tensorize_split(clean_dir: Path, split: str, vocabs: Vocabs, out_dir: Path,
                    max_pieces: Optional[int] = None, workers: int = 1,
                    chunk_lines: int = CHUNK_LINES) -> SplitSummary:
    """Encode ``clean_dir/<split>.{src,tgt}`` into the directory ``out_dir/<split>/``.

    With ``max_pieces`` (valid and test sets), longer sentences are truncated with a warning
    naming the line, never dropped: the set keeps every line, and memory stays bounded.
    """
    src_path, tgt_path = clean_dir / f"{split}.src", clean_dir / f"{split}.tgt"
    target = out_dir / split
    target.mkdir(parents=True, exist_ok=True)
    files = {name: _ArrayFile(target / f"{name}.npy", np.int32 if name in ("src", "tgt") else np.int64)
             for name in ARRAYS}
    summary = SplitSummary()
    try:
        ends = {"src": 0, "tgt": 0}
        for name in ("src_offsets", "tgt_offsets"):
            files[name].append(np.zeros(1, dtype=np.int64))
        for chunk in _encoded(vocabs, _chunks(src_path, tgt_path, chunk_lines, max_pieces), workers):
            for side, ids, lengths in (("src", chunk.src, chunk.src_lens), ("tgt", chunk.tgt, chunk.tgt_lens)):
                files[side].append(ids)
                offsets = ends[side] + np.cumsum(lengths)  # (pairs,) int64
                files[f"{side}_offsets"].append(offsets)
                ends[side] = int(offsets[-1]) if len(offsets) else ends[side]
            summary.pairs += len(chunk.src_lens)
            for side, cut in chunk.truncated.items():
                _warn_truncated(src_path if side == "src" else tgt_path, cut, summary.truncated[side],
                                max_pieces)
                summary.truncated[side] += len(cut)
        for name in ARRAYS:
            files[name].finish()
    except BaseException:
        for array_file in files.values():
            array_file.discard()
        raise
    for side, path in (("src", src_path), ("tgt", tgt_path)):
        if summary.truncated[side] > MAX_WARNINGS:
            log.warning("%s: %d lines truncated to %d pieces in all", path, summary.truncated[side], max_pieces)
    summary.src_tokens, summary.tgt_tokens = ends["src"], ends["tgt"]
    meta = {"format": FORMAT, "vocab": vocabs.fingerprint(), "pairs": summary.pairs,
            "src_tokens": summary.src_tokens, "tgt_tokens": summary.tgt_tokens,
            "sha256": combine_digests([files[name].sha256.digest() for name in ARRAYS])}
    write_text(target / META, json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return summary


def _warn_truncated(path: Path, cut: list[tuple[int, int]], already: int, max_pieces: Optional[int]) -> None:
    for line, pieces in cut[:max(0, MAX_WARNINGS - already)]:
        log.warning("%s:%d: %d pieces, truncated to %d (tensorize.max_pieces)", path, line, pieces, max_pieces)
