"""Writing files so that no reader, and no interrupted run, ever sees half of one."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield ``<path>.part`` to write to; rename it to ``path`` when the block succeeds.

    The parent directory is created. When the block raises (or the process is
    interrupted in it) ``path`` keeps its previous content, and the ``.part``
    file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    try:
        yield part
        os.replace(part, path)
    finally:
        part.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    with atomic_path(path) as part:
        part.write_text(text, encoding="utf-8")


def write_bytes(path: Path, payload: bytes) -> None:
    """Write ``payload`` to ``path`` atomically."""
    with atomic_path(path) as part:
        part.write_bytes(payload)


@contextlib.contextmanager
def atomic_directory(path: Path) -> Iterator[Path]:
    """Yield an empty ``<path>.part`` directory to fill; it replaces ``path`` when the block succeeds.

    A stage that writes several files (one per split, or one per side) then
    leaves either the whole new directory or, when it fails or is
    interrupted, the previous one untouched: never some files of each, and
    never files of an earlier run that this one would not have written.
    """
    path = Path(path)
    part, old = path.with_name(path.name + ".part"), path.with_name(path.name + ".old.part")
    _put_back(old, path)  # a run killed between its two renames
    for leftover in (part, old):  # from a run killed before it could clean up
        shutil.rmtree(leftover, ignore_errors=True)
    part.mkdir(parents=True)
    try:
        yield part
        if path.exists():
            os.replace(path, old)
        os.replace(part, path)
    finally:
        _put_back(old, path)  # interrupted between the two renames
        shutil.rmtree(part, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _put_back(old: Path, path: Path) -> None:
    """Rename the moved-aside ``old`` directory back to ``path`` when the new one never arrived."""
    if old.exists() and not path.exists():
        os.replace(old, path)
