"""SIGINT/SIGTERM during training: caught, so the loop can save its checkpoint and stop cleanly."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import sys
import threading
from typing import Callable, Iterator, Optional

from s2s.errors import S2SError


class TrainingInterrupted(S2SError):
    """SIGINT/SIGTERM: the checkpoint is saved and the stage can be run again to resume."""


class TrainingDiverged(S2SError):
    """A non-finite loss or gradient: the run stops before the update, keeping the last checkpoint."""


@contextlib.contextmanager
def stop_requests() -> Iterator[Callable[[], Optional[int]]]:
    """Catch SIGINT/SIGTERM while training; yields a function returning the signal caught, if any.

    Outside the main thread (where Python cannot install handlers) nothing is caught.
    """
    caught: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield lambda: caught[0] if caught else None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent (the launcher) dies, even by SIGKILL.

    A training process then saves its checkpoint and stops instead of training on, orphaned, and
    writing outputs nobody waits for. Linux only (``prctl(PR_SET_PDEATHSIG)``); elsewhere nothing.
    """
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    PR_SET_PDEATHSIG = 1
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before the request: act on it now
        os.kill(os.getpid(), signal.SIGTERM)
