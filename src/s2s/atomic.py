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
    except OSError as err:
        if err.errno is not None and err.filename is None:  # a write to an open file (disk full): name it
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise
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


def save_torch(payload: object, path: Path) -> None:
    """``torch.save`` to ``path`` through a .part file renamed when complete.

    torch writes through an open Python file, not a path: a full disk is then an
    ``OSError`` naming the file (ENOSPC) rather than a RuntimeError of torch's zip writer.
    """
    import torch  # here, not at the top: the download stage writes no tensors

    with atomic_path(path) as part, open(part, "wb") as handle:
        torch.save(payload, handle)


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


class OutputSet:
    """The outputs of one stage, each written under a temporary name (see :func:`stage_outputs`)."""

    def __init__(self, stack: contextlib.ExitStack):
        self._stack = stack

    def file(self, path: Path) -> Path:
        """Where to write ``path``: its ``.part`` file, renamed to ``path`` with the others."""
        return self._stack.enter_context(atomic_path(path))

    def directory(self, path: Path) -> Path:
        """Where to write directory ``path``: an empty ``.part`` directory that replaces it with the others."""
        return self._stack.enter_context(atomic_directory(path))


@contextlib.contextmanager
def stage_outputs() -> Iterator[OutputSet]:
    """Write a stage's outputs (data, model, metrics) as one unit: all new, or all as they were.

    Every file and directory taken from the :class:`OutputSet` is written under a
    temporary name; they are renamed into place only when the whole block
    succeeds, after every byte is written. A failure anywhere in it (a full
    disk while writing the metrics, bad data in the last split, an
    interrupt) removes the temporary files and leaves every previous output
    as it was, so metrics never describe data they did not come from.
    """
    with contextlib.ExitStack() as stack:
        yield OutputSet(stack)


def _put_back(old: Path, path: Path) -> None:
    """Rename the moved-aside ``old`` directory back to ``path`` when the new one never arrived."""
    if old.exists() and not path.exists():
        os.replace(old, path)
