"""DBOS, behind a few functions: launch, enqueue a job, cancel it, shut down.

One workflow per job run. Its id is derived from the job (``job_…`` for the first run,
``job_…:2`` after a requeue), so enqueueing twice attaches to the same workflow."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

from dbos import DBOS, DBOSConfig, SetEnqueueOptions, SetWorkflowID
from dbos import _dbos as dbos_module

from imagegate.db import dispatch_channel
from imagegate.domain.retry import decide
from imagegate.engine import dispatch_wake, runner
from imagegate.observability.logging import get_logger
from imagegate.runtime import Runtime

QUEUE_NAME = "imagegate-jobs"
# A job waits for a provider (open circuits, full slots) at most this many times
# before the wait counts as a failed attempt.
MAX_DEFERRALS = 200
# Fixed, so that a new release recovers the runs an old one left (docs/operations.md).
APPLICATION_VERSION = "imagegate-1"
log = get_logger("imagegate.engine")

_runtime: Runtime | None = None
_runs_jobs = False
# PostgreSQL: the thread that listens for other processes' enqueues, and its stop.
_listener: dict[str, threading.Thread | threading.Event | None] = {"thread": None, "stop": None}
# Notifications of enqueues to send: one in flight at a time, the next coalescing all
# the enqueues made meanwhile (a burst of creates costs a few NOTIFYs, not one each).
_notifier: dict[str, asyncio.Task[None] | bool | None] = {"task": None, "again": False}


def _rt() -> Runtime:
    if _runtime is None:
        raise RuntimeError("the engine is not launched")
    return _runtime


def workflow_id(job_id: str, run: int) -> str:
    return job_id if run <= 1 else f"{job_id}:{run}"


# Preemptible: cancelling the job's workflow interrupts a provider call in flight.
@DBOS.step(name="imagegate.attempt", preemptible=True)
async def _attempt(job_id: str) -> dict[str, Any]:
    return (await runner.attempt(_rt(), job_id, DBOS.executor_id)).to_dict()


@DBOS.step(name="imagegate.fail")
async def _fail(job_id: str, outcome: dict[str, Any]) -> None:
    await runner.fail(_rt(), job_id, runner.Outcome.from_dict(outcome))


@DBOS.step(name="imagegate.note_retry")
async def _note_retry(job_id: str, outcome: dict[str, Any], delay_s: float) -> None:
    await runner.note_retry(_rt(), job_id, runner.Outcome.from_dict(outcome), delay_s)


@DBOS.workflow(name="imagegate.run_job")
async def run_job(job_id: str) -> str:
    """Attempt the job until it completes, fails for good or is canceled."""
    # While it runs the queue poller keeps its pace: the slot it holds frees at its end.
    dispatch_wake.job_started()
    try:
        return await _run(job_id)
    finally:
        dispatch_wake.job_ended()


async def _run(job_id: str) -> str:
    settings = _rt().settings
    attempt_in_run = deferrals = 0
    while True:
        outcome = runner.Outcome.from_dict(await _attempt(job_id))
        if outcome.skipped:
            return "skipped"
        if outcome.ok:
            return "completed"
        if outcome.deferred and deferrals < MAX_DEFERRALS:
            # Every able provider is open, busy or at its rate limit: wait, without
            # spending one of the job's attempts.
            deferrals += 1
            await DBOS.sleep_async(outcome.retry_after_s or 1.0)
            continue
        attempt_in_run += 1
        decision = decide(
            attempt=attempt_in_run,
            max_attempts=settings.max_attempts,
            retryable=outcome.retryable,
            retry_after_s=outcome.retry_after_s,
            base_delay_s=settings.retry_base_delay_s,
            max_delay_s=settings.retry_max_delay_s,
            jitter_key=f"{job_id}:{outcome.attempt}",
        )
        if not decision.retry:
            await _fail(job_id, outcome.to_dict())
            return "failed"
        await _note_retry(job_id, outcome.to_dict(), decision.delay_s)
        await DBOS.sleep_async(decision.delay_s)


async def launch(rt: Runtime, executor_id: str, *, runs_jobs: bool = True) -> None:
    """Start DBOS in this process, from the event loop that should run the jobs.

    ``executor_id`` must be held by this process alone (services.workers sees to it):
    DBOS recovers the pending workflows of that id at launch. A process that does not
    run jobs (``imagegate api``) still launches DBOS, to enqueue, cancel and recover,
    but listens to no queue."""
    global _runtime, _runs_jobs
    _runtime, _runs_jobs = rt, runs_jobs
    settings = rt.settings
    _prepare_sqlite(settings.resolved_system_database_url)
    config: DBOSConfig = {
        "name": "imagegate",
        "system_database_url": settings.resolved_system_database_url,
        "executor_id": executor_id,
        "application_version": APPLICATION_VERSION,
        "log_level": "WARNING",
        "sys_db_pool_size": settings.engine_pool_size,
        **_sqlite_pool(settings.resolved_system_database_url),
    }
    DBOS(config=config)
    if not runs_jobs:
        DBOS.listen_queues([])
    # Before launch: the wake wraps the queue thread DBOS starts there (dispatch_wake).
    dispatch_wake.install()
    DBOS.launch()
    # The queue's limits live in the database, shared by every process; the processes
    # that run jobs set them, an API process only creates the queue if it is missing.
    await DBOS.register_queue_async(
        QUEUE_NAME,
        partition_concurrency=settings.workspace_concurrency,
        worker_concurrency=settings.worker_concurrency,
        polling_interval_sec=settings.queue_poll_interval_s,
        on_conflict="always_update" if runs_jobs else "never_update",
    )
    if runs_jobs:
        # The queue's poller starts now, not at the manager's next one-second check.
        dispatch_wake.wake(QUEUE_NAME, manager=True)
        if settings.uses_postgres:
            _start_listener(settings.resolved_database_url)


def _start_listener(url: str) -> None:
    stop = threading.Event()
    thread = threading.Thread(
        target=dispatch_channel.listen,
        args=(url, lambda: dispatch_wake.wake(QUEUE_NAME), stop),
        name="imagegate-dispatch-listener",
        daemon=True,
    )
    thread.start()
    _listener.update(thread=thread, stop=stop)


def _stop_listener() -> None:
    stop, thread = _listener["stop"], _listener["thread"]
    if isinstance(stop, threading.Event):
        stop.set()
    if isinstance(thread, threading.Thread):
        thread.join(timeout=dispatch_channel.LISTEN_TICK_S * 2)
    _listener.update(thread=None, stop=None)


async def pending_executor_ids() -> set[str]:
    """The executors that hold at least one started, unfinished job run."""
    pending = await DBOS.list_workflows_async(status="PENDING", load_input=False, load_output=False)
    return {status.executor_id for status in pending if status.executor_id}


async def recover(executor_ids: list[str]) -> int:
    """Put the pending runs of dead executors back on the queue, for any live worker
    to take; returns how many. Safe to repeat: a run another worker has taken since
    no longer belongs to the dead executor and is left alone."""
    # DBOS's own recovery (the call its admin endpoint makes): it re-enqueues each
    # run through the queue's atomic dequeue, so exactly one live worker resumes it.
    handles = await asyncio.to_thread(DBOS._recover_pending_workflows, executor_ids)
    return len(handles)


def _sqlite_pool(url: str) -> DBOSConfig:
    # One connection to an SQLite system database: DBOS's threads then queue for it in
    # the pool, which wakes the next one at once, instead of colliding on SQLite's
    # file lock, whose busy handler sleeps in steps of up to 100 ms.
    return {"sys_db_pool_size": 1} if url.startswith("sqlite") else {}


def _prepare_sqlite(url: str) -> None:
    # DBOS leaves SQLite in rollback-journal mode; WAL (a property of the file) halves
    # the cost of each enqueue and lets the API read while the worker writes.
    if not url.startswith("sqlite:///"):
        return
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")


def stop_dequeuing() -> None:
    """Take no more work from the queues (the first thing ``DBOS.destroy`` does), so a
    drain can wait for this worker's running jobs alone: ``destroy``'s own wait counts
    every active workflow, webhook deliveries sleeping for hours between attempts too
    (they resume after a restart wherever they were)."""
    instance = dbos_module._dbos_global_instance
    if instance is not None:
        for event in instance.background_thread_stop_events:
            event.set()


def shutdown(timeout_s: int = 0) -> None:
    global _runtime
    _stop_listener()
    DBOS.destroy(workflow_completion_timeout_sec=timeout_s)
    _runtime = None


async def enqueue(job_id: str, workspace_id: str, run: int = 1) -> None:
    """Put the job's run on the queue (attaching to it if it is already there)."""
    with (
        SetWorkflowID(workflow_id(job_id, run)),
        SetEnqueueOptions(queue_partition_key=workspace_id),
    ):
        await DBOS.enqueue_workflow_async(QUEUE_NAME, run_job, job_id)
    # Committed: the dispatcher takes it now, not at its next poll (dispatch_wake).
    dispatch_wake.wake(QUEUE_NAME)
    # A process that runs jobs takes its own enqueues at once; only one that runs none
    # (``imagegate api``) tells the workers, so a job costs no NOTIFY in a worker.
    rt = _runtime
    if rt is not None and not _runs_jobs and rt.settings.uses_postgres:
        _notify_others(rt)


def _notify_others(rt: Runtime) -> None:
    """Wake the dispatchers of the other processes (PostgreSQL), without waiting."""
    task = _notifier["task"]
    if isinstance(task, asyncio.Task) and not task.done():
        _notifier["again"] = True
        return
    _notifier.update(task=asyncio.ensure_future(_send_notifications(rt)), again=False)


async def _send_notifications(rt: Runtime) -> None:
    while True:
        _notifier["again"] = False
        try:
            async with rt.db.begin() as conn:
                await dispatch_channel.notify(conn)
        except Exception as error:  # the queue poll still finds the job, a bit later
            log.warning("engine.notify_failed", error=repr(error)[:300])
        if not _notifier["again"]:
            return


async def ensure_queued(runs: list[tuple[str, str, int]]) -> int:
    """Queue each (job id, workspace id, run) that has no workflow yet; returns how
    many were missing. Existing workflows are left alone: DBOS recovers its own."""
    missing = 0
    for start in range(0, len(runs), 500):
        batch = runs[start : start + 500]
        ids = [workflow_id(job_id, run) for job_id, _, run in batch]
        found = await DBOS.list_workflows_async(
            workflow_ids=ids, load_input=False, load_output=False
        )
        known = {status.workflow_id for status in found}
        for (job_id, workspace_id, run), wf_id in zip(batch, ids, strict=True):
            if wf_id not in known:
                missing += 1
                await enqueue(job_id, workspace_id, run)
    return missing


async def cancel(job_id: str, run: int) -> None:
    await DBOS.cancel_workflow_async(workflow_id(job_id, run))
