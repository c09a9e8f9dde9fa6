"""Work done ahead in a background thread, so that the consumer never waits for it."""

from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")
_END = object()


def prefetched(items: Iterable[Item], prepare: Callable[[Item], Result], depth: int = 2) -> Iterator[Result]:
    """``prepare(item)`` for each of ``items`` in order, computed by a background thread at most
    ``depth`` results ahead of the consumer (``depth`` 0: in the caller's thread).

    An exception in ``prepare`` is raised to the consumer at the item it failed on; when the
    consumer stops early (``break``, an exception, ``close()``), the thread stops too.
    """
    if depth <= 0:
        yield from map(prepare, items)
        return
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, object]) -> None:
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.05)
                return
            except queue.Full:
                continue

    def work() -> None:
        try:
            for item in items:
                if stop.is_set():
                    return
                put((True, prepare(item)))
            put((True, _END))
        except BaseException as err:  # handed to the consumer, which raises it
            put((False, err))

    thread = threading.Thread(target=work, name="s2s-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            ok, value = ready.get()
            if not ok:
                raise value
            if value is _END:
                return
            yield value
    finally:
        stop.set()
        thread.join()
