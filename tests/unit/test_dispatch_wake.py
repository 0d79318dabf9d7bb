"""The dispatch wake's pacing of DBOS's queue poller: a woken poller polls at once,
an idle one stretches its waits, a job's end wakes it and caps its next wait. Real
threads waiting on a real ``threading.Event`` adopted as DBOS's stop event is."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from imagegate.engine import dispatch_wake

QUEUE = "q"
POLLER = "queue-worker-" + QUEUE
POLL_S = 0.05  # the configured interval, as DBOS passes it to each wait


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    dispatch_wake._adopt(event)
    yield event
    event.set()
    dispatch_wake._state.update(event=None, manager=None)
    dispatch_wake._soon.clear()


def _timed_wait(stop: threading.Event, timeout: float, results: list[float]) -> None:
    started = time.monotonic()
    stop.wait(timeout)
    results.append(time.monotonic() - started)


def _waiter(stop: threading.Event, timeout: float, results: list[float]) -> threading.Thread:
    thread = threading.Thread(target=_timed_wait, args=(stop, timeout, results), name=POLLER)
    thread.start()
    return thread


def test_an_idle_poller_stretches_its_waits(stop: threading.Event) -> None:
    dispatch_wake._last_wake[0] = time.monotonic() - dispatch_wake.IDLE_AFTER_S - 1
    assert dispatch_wake._paced(POLLER, POLL_S) == dispatch_wake.IDLE_POLL_S
    # Other threads on the same event (DBOS's queue manager) keep their timeouts.
    assert dispatch_wake._paced("queue-thread", 1.0) == 1.0


def test_a_recent_wake_keeps_the_configured_pace(stop: threading.Event) -> None:
    dispatch_wake.wake(QUEUE)
    dispatch_wake._pending.discard(POLLER)
    assert dispatch_wake._paced(POLLER, POLL_S) == POLL_S


def test_a_wake_ends_an_idle_wait_at_once(stop: threading.Event) -> None:
    dispatch_wake._last_wake[0] = time.monotonic() - dispatch_wake.IDLE_AFTER_S - 1
    results: list[float] = []
    thread = _waiter(stop, POLL_S, results)
    time.sleep(0.1)  # inside its stretched wait by now
    dispatch_wake.wake(QUEUE)
    thread.join(5)
    # Well under the stretched IDLE_POLL_S it would otherwise have waited.
    assert results and results[0] < dispatch_wake.IDLE_POLL_S - 0.1, results


def test_a_job_that_ends_wakes_the_poller_and_caps_its_next_wait(
    stop: threading.Event,
) -> None:
    dispatch_wake._last_wake[0] = time.monotonic() - dispatch_wake.IDLE_AFTER_S - 1
    results: list[float] = []
    thread = _waiter(stop, POLL_S, results)
    time.sleep(0.1)
    dispatch_wake.wake(QUEUE, soon=True)
    thread.join(5)
    assert results and results[0] < dispatch_wake.IDLE_POLL_S - 0.1, results
    # The poll after it comes within BUSY_S, when the engine has recorded the end.
    assert dispatch_wake._paced(POLLER, 1.0) == dispatch_wake.BUSY_S
    assert dispatch_wake._paced(POLLER, POLL_S) == POLL_S  # once


def test_a_wake_in_a_busy_burst_caps_the_next_wait(stop: threading.Event) -> None:
    dispatch_wake.wake(QUEUE)
    dispatch_wake._pending.discard(POLLER)
    dispatch_wake.wake(QUEUE)  # within BUSY_S of the first: left to the next wait
    assert POLLER not in dispatch_wake._pending
    assert dispatch_wake._paced(POLLER, 1.0) == dispatch_wake.BUSY_S
