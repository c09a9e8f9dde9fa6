import os
import signal
import threading

from s2s.signals import stop_requests


def test_sigterm_and_sigint_are_caught_and_the_handlers_restored():
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with stop_requests() as stop_signal:
        assert stop_signal() is None
        os.kill(os.getpid(), signal.SIGTERM)  # would end the process without the handler
        assert stop_signal() == signal.SIGTERM
        os.kill(os.getpid(), signal.SIGINT)
        assert stop_signal() == signal.SIGTERM  # the first signal is the one reported
    assert {sig: signal.getsignal(sig) for sig in before} == before


def test_outside_the_main_thread_nothing_is_caught():
    seen = []

    def worker():
        with stop_requests() as stop_signal:
            seen.append(stop_signal())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [None]
