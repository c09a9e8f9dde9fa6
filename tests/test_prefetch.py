import threading
import time

import pytest

from s2s.prefetch import prefetched


def test_results_come_in_order_for_any_depth():
    for depth in (0, 1, 3):
        assert list(prefetched(range(20), lambda x: x * x, depth)) == [x * x for x in range(20)]


def test_the_work_runs_ahead_in_another_thread_but_at_most_depth_results():
    prepared = []

    def prepare(item):
        prepared.append((item, threading.current_thread().name))
        return item

    results = prefetched(range(100), prepare, depth=2)
    assert next(results) == 0
    time.sleep(0.3)  # time enough for the thread to run as far ahead as it may
    assert 2 <= len(prepared) <= 4  # the item taken, two waiting, at most one in hand
    assert {name for _, name in prepared} == {"s2s-prefetch"}
    results.close()


def test_an_error_in_the_work_reaches_the_consumer_at_its_item():
    def prepare(item):
        if item == 3:
            raise ValueError("bad item 3")
        return item

    got = []
    with pytest.raises(ValueError, match="bad item 3"):
        for value in prefetched(range(10), prepare):
            got.append(value)
    assert got == [0, 1, 2]


def test_stopping_early_stops_the_thread():
    before = threading.active_count()
    for value in prefetched(range(10_000), lambda x: x, depth=2):
        if value == 5:
            break
    assert threading.active_count() == before
