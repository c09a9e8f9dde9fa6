"""Normalisation and filtering of the raw parallel text.

Every split is Unicode-normalised (NFC or NFKC), control characters removed
and whitespace collapsed. Only train is filtered (empty side, too many words
or characters, length ratio, duplicates): valid and test sets keep every line so scores stay
comparable with published ones. Cleaning streams: pairs are read, cleaned and
written one at a time. Dedupe keeps the first occurrence of every pair, in order, by an
8-byte digest per pair held in a numpy array (not a Python set of ints, ~100 bytes
each) and compared by sorting: a first pass writes the cleaned pairs and their digests
to a temporary directory, a second copies the first occurrences. Memory does not grow
with the corpus beyond those 8 bytes per pair.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import tempfile
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from s2s.config import CleanConfig
from s2s.textio import CorpusError, iter_lines, read_lines

DROP_REASONS = ("empty", "too_long", "too_many_chars", "ratio", "duplicate")
_CHUNK = 1 << 16  # pairs per chunk of digests written and checked by dedupe


def normalize(line: str, form: str) -> str:
    """Unicode-normalise ``line``, drop control characters, collapse whitespace."""
    line = unicodedata.normalize(form, line)
    line = "".join(" " if ch.isspace() else ch for ch in line
                   if ch.isspace() or unicodedata.category(ch) != "Cc")
    return " ".join(line.split())


@dataclass
class SplitStats:
    """Lines in and out of one split, and lines dropped per reason."""

    lines_in: int = 0
    lines_out: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {r: 0 for r in DROP_REASONS})


def parallel_lines(src_path: Path, tgt_path: Path) -> Iterator[tuple[str, str]]:
    """Both sides of a split, pair by pair, read as they are asked for.

    Invalid UTF-8 names the file and line; sides of unequal length are an error naming both
    files and their line counts (when the shorter one ends), an empty split too.
    """
    for path in (src_path, tgt_path):
        if not Path(path).is_file():
            raise CorpusError(f"{path}: file not found; run the stage that writes it first")
    with open(src_path, "rb") as src_handle, open(tgt_path, "rb") as tgt_handle:
        src_lines, tgt_lines = iter_lines(src_handle, str(src_path)), iter_lines(tgt_handle, str(tgt_path))
        pairs = 0
        for src, tgt in itertools.zip_longest(src_lines, tgt_lines):
            if src is None or tgt is None:
                n_src = pairs + (src is not None) + sum(1 for _ in src_lines)
                n_tgt = pairs + (tgt is not None) + sum(1 for _ in tgt_lines)
                raise CorpusError(f"{src_path} has {n_src} lines but {tgt_path} has {n_tgt}; "
                                  "the sides of a parallel corpus must be line-aligned")
            pairs += 1
            yield src, tgt
    if not pairs:
        raise CorpusError(f"{src_path}: empty split; check the corpus files")


def read_parallel(src_path: Path, tgt_path: Path) -> tuple[list[str], list[str]]:
    """Both sides of a split as lists (see :func:`parallel_lines`)."""
    pairs = list(parallel_lines(src_path, tgt_path))
    return [s for s, _ in pairs], [t for _, t in pairs]


def drop_reason(src: str, tgt: str, config: CleanConfig) -> str | None:
    """Why a normalised training pair is dropped, or None to keep it."""
    if not src or not tgt:
        return "empty"
    n_src, n_tgt = len(src.split()), len(tgt.split())
    if max(n_src, n_tgt) > config.max_len:
        return "too_long"
    if max(len(src), len(tgt)) > config.max_chars:  # a long line without spaces is one "word"
        return "too_many_chars"
    if max(n_src, n_tgt) / min(n_src, n_tgt) > config.max_ratio:
        return "ratio"
    return None


def _digest_bytes(src: str, tgt: str) -> bytes:
    return hashlib.blake2b(f"{src}\n{tgt}".encode(), digest_size=8).digest()


def pair_digest(src: str, tgt: str) -> int:
    """An 8-byte digest of a normalised pair: what dedupe keeps instead of the strings (normalised
    lines hold no newline, so the joined text is unambiguous)."""
    return int.from_bytes(_digest_bytes(src, tgt), "little")


def filtered_pairs(pairs: Iterable[tuple[str, str]], config: CleanConfig, is_train: bool,
                   stats: SplitStats) -> Iterator[tuple[str, str]]:
    """Normalise pairs as they come; when ``is_train``, drop those :func:`drop_reason` rejects.

    Counts ``stats.lines_in`` and the filters' drops; dedupe (:class:`FirstOccurrences`) comes after.
    """
    for s, t in pairs:
        stats.lines_in += 1
        s, t = normalize(s, config.normalization), normalize(t, config.normalization)
        if is_train:
            reason = drop_reason(s, t, config)
            if reason is not None:
                stats.dropped[reason] += 1
                continue
        yield s, t


class FirstOccurrences:
    """Which digests of a sequence are the first of their value, decided chunk by chunk in order.

    Built from every digest of the sequence (8 bytes each, sorted in place): it keeps only the
    values that occur more than once (sorted, at most half the digests, usually a few) and a flag
    per such value; :meth:`keep` then takes the digests in sequence order, in chunks of any size,
    and marks the first occurrence of every value. Vectorised numpy throughout.
    """

    def __init__(self, digests: np.ndarray, chunk: int = 1 << 20):
        digests.sort()  # (n,) uint64, in place
        repeated = []
        for start in range(0, len(digests), chunk):
            part = digests[start:start + chunk + 1]
            repeated.append(np.unique(part[1:][part[1:] == part[:-1]]))
        self.repeated = np.unique(np.concatenate(repeated)) if repeated else np.empty(0, np.uint64)  # (m,)
        self.seen = np.zeros(len(self.repeated), bool)  # (m,): the value's first occurrence is behind

    def keep(self, digests: np.ndarray) -> np.ndarray:
        """(k,) bool for the next ``digests`` (k,) of the sequence: True at first occurrences."""
        keep = np.ones(len(digests), bool)
        if not len(self.repeated) or not len(digests):
            return keep
        slot = np.minimum(np.searchsorted(self.repeated, digests), len(self.repeated) - 1)  # (k,)
        hits = np.flatnonzero(self.repeated[slot] == digests)  # positions of repeated values
        values, first = np.unique(slot[hits], return_index=True)  # first hit of each value in this chunk
        keep[hits] = False
        keep[hits[first[~self.seen[values]]]] = True
        self.seen[values] = True
        return keep


def first_occurrences(digests: np.ndarray) -> np.ndarray:
    """(n,) bool: True where ``digests`` (n,) holds a value for the first time."""
    return FirstOccurrences(digests.copy()).keep(digests)


def _digest_array(pairs: list[tuple[str, str]]) -> np.ndarray:
    return np.frombuffer(b"".join(_digest_bytes(s, t) for s, t in pairs), dtype="<u8")


def clean_split(src: list[str], tgt: list[str], config: CleanConfig,
                is_train: bool) -> tuple[list[str], list[str], SplitStats]:
    """Clean two lists (normalise; filter and dedupe train), as lists, with the split's counts."""
    stats = SplitStats()
    kept = list(filtered_pairs(zip(src, tgt), config, is_train, stats))
    if is_train and config.dedupe:
        unique = list(itertools.compress(kept, first_occurrences(_digest_array(kept))))
        stats.dropped["duplicate"] = len(kept) - len(unique)
        kept = unique
    stats.lines_out = len(kept)
    _require_some(stats)
    return [s for s, _ in kept], [t for _, t in kept], stats


def _require_some(stats: SplitStats) -> None:
    if not stats.lines_out:
        raise CorpusError("every training pair was filtered out; relax clean.max_len / clean.max_chars / "
                          "clean.max_ratio")


def _first(pairs: Iterator[tuple[str, str]], limit: int | None) -> Iterator[tuple[str, str]]:
    """The first ``limit`` pairs (all with None); the rest is read too, so both sides are checked whole."""
    for number, pair in enumerate(pairs):
        if limit is None or number < limit:
            yield pair


def _write_pairs(pairs: Iterable[tuple[str, str]], src_path: Path, tgt_path: Path,
                 digest_path: Path | None = None) -> int:
    """Write the pairs' sides, a line each (and, given ``digest_path``, their 8-byte digests); their count."""
    count, digests = 0, []
    with open(src_path, "w", encoding="utf-8", newline="\n") as src_out, \
            open(tgt_path, "w", encoding="utf-8", newline="\n") as tgt_out, \
            (open(digest_path, "wb") if digest_path else contextlib.nullcontext()) as digest_out:
        for s, t in pairs:
            src_out.write(s + "\n")
            tgt_out.write(t + "\n")
            count += 1
            if digest_out is not None:
                digests.append(_digest_bytes(s, t))
                if len(digests) == _CHUNK:
                    digest_out.write(b"".join(digests))
                    digests.clear()
        if digest_out is not None:
            digest_out.write(b"".join(digests))
    return count


def _copy_first_occurrences(tmp: Path, src_path: Path, tgt_path: Path) -> int:
    """Copy the pairs of ``tmp/{src,tgt}`` to the two paths but repeats of an earlier pair (by their
    digests in ``tmp/digests``); the number copied."""
    first = FirstOccurrences(np.fromfile(tmp / "digests", dtype="<u8"))  # frees the digests once built
    kept = 0
    with open(tmp / "src", "rb") as src_in, open(tmp / "tgt", "rb") as tgt_in, \
            open(tmp / "digests", "rb") as digest_in, \
            open(src_path, "wb") as src_out, open(tgt_path, "wb") as tgt_out:
        while len(chunk := np.fromfile(digest_in, dtype="<u8", count=_CHUNK)):
            keep = first.keep(chunk).tolist()
            src_out.writelines(itertools.compress(itertools.islice(src_in, len(keep)), keep))
            tgt_out.writelines(itertools.compress(itertools.islice(tgt_in, len(keep)), keep))
            kept += sum(keep)
    return kept


def clean_corpus(raw_dir: Path, out_dir: Path, splits: list[str], src_lang: str, tgt_lang: str,
                 config: CleanConfig, max_train_pairs: int = 0) -> dict[str, SplitStats]:
    """Clean every split of ``raw_dir/<split>.<lang>`` into ``out_dir/<split>.{src,tgt}``, streaming.

    Lines are read, cleaned and written one pair at a time, so memory does not grow with the
    corpus but for dedupe's 8 bytes per pair. Dedupe takes two passes: the first normalises
    and filters train into a temporary directory inside ``out_dir`` (removed when done or on
    error) with the pairs' digests; the second copies the first occurrence of every pair, in
    order. ``out_dir`` is written as it goes: give the stage's temporary directory
    (:func:`s2s.atomic.stage_outputs`), which replaces the old output only when every split is
    done. With ``max_train_pairs``, only the first pairs of train are cleaned, but its sides are
    still checked whole.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = {}
    for split in splits:
        pairs = parallel_lines(raw_dir / f"{split}.{src_lang}", raw_dir / f"{split}.{tgt_lang}")
        limit = max_train_pairs if split == "train" and max_train_pairs else None
        is_train = split == "train"
        stats[split] = SplitStats()
        kept = filtered_pairs(_first(pairs, limit), config, is_train, stats[split])
        src_path, tgt_path = out_dir / f"{split}.src", out_dir / f"{split}.tgt"
        if is_train and config.dedupe:
            with tempfile.TemporaryDirectory(prefix=".dedupe-", dir=out_dir) as tmp:
                filtered = _write_pairs(kept, Path(tmp) / "src", Path(tmp) / "tgt", Path(tmp) / "digests")
                stats[split].lines_out = _copy_first_occurrences(Path(tmp), src_path, tgt_path)
            stats[split].dropped["duplicate"] = filtered - stats[split].lines_out
        else:
            stats[split].lines_out = _write_pairs(kept, src_path, tgt_path)
        _require_some(stats[split])
    return stats
