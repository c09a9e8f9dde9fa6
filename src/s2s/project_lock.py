"""One stage at a time per project directory, for stages run by hand.

``dvc repro`` runs one stage after another under DVC's own lock, but two
stages started by hand (``python stages/train.py`` in two terminals) would
write the same files at once. Each stage holds an exclusive ``flock`` on
``<project>/.s2s.lock`` while it runs; a second one stops at once with a
message naming the process that holds it. The lock is released by the
kernel when the holder exits, however it exits, so a killed stage never
leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from pathlib import Path
from typing import Iterator

from s2s.errors import S2SError

LOCK_NAME = ".s2s.lock"


class ProjectBusy(S2SError):
    """Another stage of the same project directory is running."""


@contextlib.contextmanager
def project_lock(root: Path, what: str) -> Iterator[None]:
    """Hold the project's lock while the block runs; :class:`ProjectBusy` when another process has it.

    ``what`` (e.g. ``stages/train.py``) is recorded in the lock file, for the
    message the other process shows.
    """
    path = Path(root) / LOCK_NAME
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise ProjectBusy(f"{root}: {holder} is running in this project; wait for it to finish "
                              f"(or stop it) and run again: two stages at once would write the same "
                              f"files") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{what} (pid {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')})\n")
        handle.flush()
        yield
    finally:
        handle.close()  # closing the descriptor releases the lock

