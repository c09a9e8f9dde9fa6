"""Writing files so that no reader, and no interrupted run, ever sees half of one."""

from __future__ import annotations

import contextlib
import os
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
