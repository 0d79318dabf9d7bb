"""The dispatch wake's pacing of DBOS's queue poller: a woken poller polls at once,
an idle one stretches its waits, running jobs keep its pace. Real threads waiting on
a real ``threading.Event`` adopted as DBOS's stop event is."""

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
    dispatch_wake._running[0] = 0


def _timed_wait(stop: threading.Event, timeout: float, results: list[float]) -> None:
    started = time.monotonic()
    stop.wait(timeout)
    results.append(time.monotonic() - started)


def _waiter(stop: threading.Event, timeout: float, results: list[float]) -> threading.Thread:
    thread = threading.Thread(target=_timed_wait, args=(stop, timeout, results), name=POLLER)
    thread.start()
    return thread


def _idle() -> None:
    dispatch_wake._last_activity[0] = time.monotonic() - dispatch_wake.IDLE_AFTER_S - 1


def test_an_idle_poller_stretches_its_waits(stop: threading.Event) -> None:
    _idle()
    assert dispatch_wake._paced(POLLER, POLL_S) == dispatch_wake.IDLE_POLL_S
    # Other threads on the same event (DBOS's queue manager) keep their timeouts.
    assert dispatch_wake._paced("queue-thread", 1.0) == 1.0


def test_a_recent_wake_keeps_the_configured_pace(stop: threading.Event) -> None:
    dispatch_wake.wake(QUEUE)
    dispatch_wake._pending.discard(POLLER)
    assert dispatch_wake._paced(POLLER, POLL_S) == POLL_S


def test_a_wake_ends_an_idle_wait_at_once(stop: threading.Event) -> None:
    _idle()
    results: list[float] = []
    thread = _waiter(stop, POLL_S, results)
    time.sleep(0.1)  # inside its stretched wait by now
    dispatch_wake.wake(QUEUE)
    thread.join(5)
    # Well under the stretched IDLE_POLL_S it would otherwise have waited.
    assert results and results[0] < dispatch_wake.IDLE_POLL_S - 0.1, results


def test_running_jobs_keep_the_pace_and_an_end_keeps_it_a_while(
    stop: threading.Event,
) -> None:
    _idle()
    dispatch_wake.job_started()
    # A queue waiting for this job's slot must be polled at the configured pace.
    assert dispatch_wake._paced(POLLER, POLL_S) == POLL_S
    dispatch_wake.job_ended()
    assert dispatch_wake._paced(POLLER, POLL_S) == POLL_S  # the slot frees just after
    _idle()
    assert dispatch_wake._paced(POLLER, POLL_S) == dispatch_wake.IDLE_POLL_S


def test_a_wake_in_a_busy_burst_is_left_to_the_timer(stop: threading.Event) -> None:
    dispatch_wake.wake(QUEUE)
    dispatch_wake._pending.discard(POLLER)
    dispatch_wake.wake(QUEUE)  # within BUSY_S of the first
    assert POLLER not in dispatch_wake._pending
    # The burst keeps the configured pace: the timer is not stretched.
    assert dispatch_wake._paced(POLLER, POLL_S) == POLL_S
