"""SIGINT/SIGTERM during training: caught, so the loop can save its checkpoint and stop cleanly."""

from __future__ import annotations

import contextlib
import signal
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
