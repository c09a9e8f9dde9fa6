"""Normalisation and filtering of the raw parallel text.

Every split is Unicode-normalised (NFC or NFKC), control characters removed
and whitespace collapsed. Only train is filtered (empty side, too many words
or characters, length ratio, duplicates): valid and test sets keep every line so scores stay
comparable with published ones. Cleaning streams: pairs are read, cleaned and
written one at a time, and dedupe keeps an 8-byte digest per pair, so memory
does not grow with the corpus beyond those digests.
"""

from __future__ import annotations

import hashlib
import itertools
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from s2s.config import CleanConfig
from s2s.textio import CorpusError, iter_lines, read_lines

DROP_REASONS = ("empty", "too_long", "too_many_chars", "ratio", "duplicate")


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


def pair_digest(src: str, tgt: str) -> int:
    """An 8-byte digest of a normalised pair: what dedupe keeps instead of the strings (normalised
    lines hold no newline, so the joined text is unambiguous)."""
    return int.from_bytes(hashlib.blake2b(f"{src}\n{tgt}".encode(), digest_size=8).digest(), "little")


def clean_pairs(pairs: Iterable[tuple[str, str]], config: CleanConfig, is_train: bool,
                stats: SplitStats) -> Iterator[tuple[str, str]]:
    """Normalise pairs as they come; filter and dedupe them too when ``is_train``, counting in ``stats``.

    Dedupe holds one 8-byte digest per kept pair, not the text.
    """
    seen: set[int] = set()
    for s, t in pairs:
        stats.lines_in += 1
        s, t = normalize(s, config.normalization), normalize(t, config.normalization)
        if is_train:
            reason = drop_reason(s, t, config)
            if reason is None and config.dedupe:
                digest = pair_digest(s, t)
                reason = "duplicate" if digest in seen else None
                seen.add(digest)
            if reason is not None:
                stats.dropped[reason] += 1
                continue
        stats.lines_out += 1
        yield s, t


def clean_split(src: list[str], tgt: list[str], config: CleanConfig,
                is_train: bool) -> tuple[list[str], list[str], SplitStats]:
    """:func:`clean_pairs` of two lists, as lists, with the split's counts."""
    stats = SplitStats()
    kept = list(clean_pairs(zip(src, tgt), config, is_train, stats))
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


def clean_corpus(raw_dir: Path, out_dir: Path, splits: list[str], src_lang: str, tgt_lang: str,
                 config: CleanConfig, max_train_pairs: int = 0) -> dict[str, SplitStats]:
    """Clean every split of ``raw_dir/<split>.<lang>`` into ``out_dir/<split>.{src,tgt}``, streaming.

    Lines are read, cleaned and written one pair at a time, so memory does not grow with the
    corpus (but for dedupe's digests). ``out_dir`` is written as it goes: give the stage's
    temporary directory (:func:`s2s.atomic.stage_outputs`), which replaces the old output only
    when every split is done. With ``max_train_pairs``, only the first pairs of train are
    cleaned, but its sides are still checked whole.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stats = {}
    for split in splits:
        pairs = parallel_lines(raw_dir / f"{split}.{src_lang}", raw_dir / f"{split}.{tgt_lang}")
        limit = max_train_pairs if split == "train" and max_train_pairs else None
        stats[split] = SplitStats()
        with open(out_dir / f"{split}.src", "w", encoding="utf-8", newline="\n") as src_out, \
                open(out_dir / f"{split}.tgt", "w", encoding="utf-8", newline="\n") as tgt_out:
            for s, t in clean_pairs(_first(pairs, limit), config, split == "train", stats[split]):
                src_out.write(s + "\n")
                tgt_out.write(t + "\n")
        _require_some(stats[split])
    return stats
