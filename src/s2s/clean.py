"""Normalisation and filtering of the raw parallel text.

Every split is Unicode-normalised (NFC or NFKC), control characters removed
and whitespace collapsed. Only train is filtered (empty side, too many words
or characters, length ratio, duplicates): valid and test sets keep every line so scores stay
comparable with published ones.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from s2s.config import CleanConfig
from s2s.textio import CorpusError, read_lines, write_lines

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


def read_parallel(src_path: Path, tgt_path: Path) -> tuple[list[str], list[str]]:
    """Both sides of a split; unequal line counts are an error naming both files."""
    src, tgt = read_lines(src_path), read_lines(tgt_path)
    if len(src) != len(tgt):
        raise CorpusError(f"{src_path} has {len(src)} lines but {tgt_path} has {len(tgt)}; "
                          "the sides of a parallel corpus must be line-aligned")
    if not src:
        raise CorpusError(f"{src_path}: empty split; check the corpus files")
    return src, tgt


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


def clean_split(src: list[str], tgt: list[str], config: CleanConfig,
                is_train: bool) -> tuple[list[str], list[str], SplitStats]:
    """Normalise a split; filter and dedupe it too when ``is_train``."""
    stats = SplitStats(lines_in=len(src))
    out_src, out_tgt = [], []
    seen: set[tuple[str, str]] = set()
    for s, t in zip(src, tgt):
        s, t = normalize(s, config.normalization), normalize(t, config.normalization)
        if is_train:
            reason = drop_reason(s, t, config)
            if reason is None and config.dedupe:
                reason = "duplicate" if (s, t) in seen else None
                seen.add((s, t))
            if reason is not None:
                stats.dropped[reason] += 1
                continue
        out_src.append(s)
        out_tgt.append(t)
    stats.lines_out = len(out_src)
    if not out_src:
        raise CorpusError("every training pair was filtered out; relax clean.max_len / clean.max_chars / clean.max_ratio")
    return out_src, out_tgt, stats


def clean_corpus(raw_dir: Path, out_dir: Path, splits: list[str], src_lang: str, tgt_lang: str,
                 config: CleanConfig, max_train_pairs: int = 0) -> dict[str, SplitStats]:
    """Clean every split of ``raw_dir/<split>.<lang>`` into ``out_dir/<split>.{src,tgt}``.

    All splits are read and checked before anything is written.
    """
    cleaned = {}
    for split in splits:
        src, tgt = read_parallel(raw_dir / f"{split}.{src_lang}", raw_dir / f"{split}.{tgt_lang}")
        if split == "train" and max_train_pairs:
            src, tgt = src[:max_train_pairs], tgt[:max_train_pairs]
        cleaned[split] = clean_split(src, tgt, config, is_train=split == "train")
    stats = {}
    for split, (src, tgt, split_stats) in cleaned.items():
        write_lines(out_dir / f"{split}.src", src)
        write_lines(out_dir / f"{split}.tgt", tgt)
        stats[split] = split_stats
    return stats

