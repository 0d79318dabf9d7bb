"""Waking DBOS's queue poller when a job is enqueued, instead of waiting for its poll.

DBOS 3.4 dispatches a queue from a thread (``dbos._queue.queue_worker_thread``) that
sleeps ``polling_interval_sec`` between polls in ``stop_event.wait(timeout=...)``, on
the ``threading.Event`` that ``DBOS.destroy`` sets to stop it; an enqueue wakes
nothing, so dispatch took about one interval. Its queue manager thread
(``dbos._queue.queue_thread``, same event) starts the poller of a queue registered
after launch on its next one-second check: the first job after start-up waited that.

:func:`install`, before ``DBOS.launch``, wraps the function DBOS starts as its queue
manager (``dbos._dbos.queue_thread``, imported there by name). The wrapper gives that
thread's stop event a ``wait`` that also returns, early and ``False`` ("not stopped"),
for a thread :func:`wake` names; set, the event stops everything as before. A woken
poller polls once, now, exactly as its timer would have: the same dequeue, the same
per-workspace caps, the same recovery after a crash. A wake that finds the poller busy
is kept, so its next wait returns at once: none is lost. Wakes are coalesced: a poller
polls at most once per ``MIN_GAP_S``, and enqueues that follow each other within
``BUSY_S`` (a busy queue) leave dispatch to the poller's timer, as before.

With every local enqueue waking the poller (and, on PostgreSQL, other processes'
enqueues through LISTEN/NOTIFY), the timer only has to catch slots that free up: a
job that ends here or on another worker. So while no job runs in this process and no
wake has come for ``IDLE_AFTER_S`` (a job's end counts as one, :func:`job_ended`), the
poller's waits stretch to ``IDLE_POLL_S``: an idle server polls twice a second instead
of 20 to 50 times, and the first wake brings back the configured pace. While jobs run
it polls as configured, as a queue waiting for their slots needs.

It relies on DBOS 3.4.x internals (the names above, ``Event._cond``), checked at
install: with another version it installs nothing and dispatch polls as before."""

from __future__ import annotations

import importlib.metadata
import threading
import time
from collections.abc import Callable
from typing import Any

from dbos import _dbos as dbos_module

from imagegate.observability.logging import get_logger

log = get_logger("imagegate.engine")

SUPPORTED_PREFIX = "3.4."
# A woken poller polls at most this often (bounds the system database's load when
# every one of many enqueues wakes it).
MIN_GAP_S = 0.005
# Enqueues closer together than this are a busy queue: only the first of them wakes
# the poller, the rest are left to its timer, as before. Waking on every one of 100
# creates a second polled a deep queue back to back, holding the system database
# (one connection on SQLite) that the creates' enqueues wait for (create p50 ~1 s).
BUSY_S = 0.02
# Idle: no wake for IDLE_AFTER_S stretches a poller's waits to IDLE_POLL_S.
IDLE_AFTER_S = 2.0
IDLE_POLL_S = 0.5
_POLLER_PREFIX = "queue-worker-"  # DBOS's name for a queue's poller thread

_lock = threading.Lock()
_state: dict[str, Any] = {"event": None, "manager": None}
_pending: set[str] = set()  # names of the threads to wake
_last_poll: dict[str, float] = {}  # when each woken thread last returned from a wait
_last_wake = [0.0]  # when wake() was last called
_last_activity = [0.0]  # the last wake or job end
_running = [0]  # jobs running in this process (job_started/job_ended)


def install() -> bool:
    """Make DBOS's queue threads wakeable; False (and polling as before) if this DBOS
    is not a version the wake was written for."""
    version = importlib.metadata.version("dbos")
    original = getattr(dbos_module, "queue_thread", None)
    if not version.startswith(SUPPORTED_PREFIX) or original is None:
        log.warning("engine.dispatch_wake_unsupported", dbos_version=version)
        return False
    if getattr(original, "imagegate_wake", False):
        return True

    def queue_manager(stop_event: threading.Event, dbos: Any) -> None:
        _adopt(stop_event)
        original(stop_event, dbos)

    queue_manager.imagegate_wake = True  # type: ignore[attr-defined]
    setattr(dbos_module, "queue_thread", queue_manager)  # noqa: B010 (not exported)
    return True


def _adopt(event: threading.Event) -> None:
    """Give the queue threads' stop event a ``wait`` that :func:`wake` can end early."""
    cond = getattr(event, "_cond", None)
    if not isinstance(cond, threading.Condition):
        log.warning("engine.dispatch_wake_unsupported", reason="Event has no _cond")
        return
    with _lock:
        _state["event"], _state["manager"] = event, threading.current_thread().name
        _pending.clear()
    event.wait = _waiter(event, cond)  # type: ignore[method-assign]


def _waiter(event: threading.Event, cond: threading.Condition) -> Callable[..., bool]:
    def wait(timeout: float | None = None) -> bool:
        name = threading.current_thread().name
        with cond:
            timeout = _paced(name, timeout)
            if not event.is_set() and name not in _pending:
                cond.wait_for(lambda: event.is_set() or name in _pending, timeout)
            woken = name in _pending
            _pending.discard(name)
            if woken and not event.is_set():
                # Coalesce: at most one woken poll per MIN_GAP_S.
                gap = MIN_GAP_S - (time.monotonic() - _last_poll.get(name, 0.0))
                if gap > 0:
                    cond.wait_for(event.is_set, gap)
            _last_poll[name] = time.monotonic()
            return event.is_set()

    return wait


def _paced(name: str, timeout: float | None) -> float | None:
    """A poller's wait, stretched to IDLE_POLL_S while no job runs here and nothing has
    woken it or ended for IDLE_AFTER_S (under the lock)."""
    if timeout is None or not name.startswith(_POLLER_PREFIX):
        return timeout
    if not _running[0] and time.monotonic() - _last_activity[0] > IDLE_AFTER_S:
        return max(timeout, IDLE_POLL_S)
    return timeout


def job_started() -> None:
    """A job's run began in this process: keep the configured pace while it runs."""
    _running[0] += 1


def job_ended() -> None:
    """A job's run ended in this process: its slot frees once the engine records the
    end, so the pace stays up a while longer (IDLE_AFTER_S)."""
    _running[0] = max(0, _running[0] - 1)
    _last_activity[0] = time.monotonic()


def wake(queue_name: str, *, manager: bool = False) -> None:
    """Have ``queue_name``'s poller poll now (and, with ``manager``, the queue manager
    look for new queues now: after one is registered). Safe from any thread; does
    nothing before :func:`install` took effect."""
    event = _state["event"]
    cond = getattr(event, "_cond", None)
    if not isinstance(cond, threading.Condition):
        return
    now = time.monotonic()
    busy, _last_wake[0] = now - _last_wake[0] < BUSY_S, now
    _last_activity[0] = now
    if busy and not manager:
        return  # the poller is awake, or about to be: its timer takes the rest
    with cond:
        _pending.add(_POLLER_PREFIX + queue_name)
        if manager and _state["manager"]:
            _pending.add(str(_state["manager"]))
        cond.notify_all()


def installed() -> bool:
    """Whether DBOS's queue threads are wakeable in this process now."""
    return _state["event"] is not None
