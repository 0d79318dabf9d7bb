"""Webhook deliveries on DBOS: one durable workflow per delivery, on its own queue.

This module imports dbos, as ``dbos_engine`` does: deliveries are the engine's second
kind of work, kept apart so the job module stays about jobs; the rest of the code
still speaks of deliveries, not workflows.

Deliveries are created as rows with the event that causes them (the outbox in
``db.webhooks_repo``). In every process that runs jobs a dispatcher starts a workflow
for each new row; the workflow id is the delivery id, so two dispatchers (or one that
crashed before noting its work) start it once. The workflow makes the attempts
(``engine.webhook_delivery``), each a step, and sleeps durably between them, so a
restart resumes a delivery where it was, and a dead worker's deliveries are taken
over with its jobs (``services.workers``).

The dispatcher looks for new rows every ``IMAGEGATE_WEBHOOK_DISPATCH_INTERVAL_S``
while it finds some, backing off to ``IDLE_MAX_S`` while it finds none: an idle
server then costs almost nothing. A delivery written in this process (every one of
its own jobs' events) wakes it at once; one written by another process (an API
process's cancel or redelivery) waits at most the idle pace."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from dbos import DBOS, SetWorkflowID

from imagegate.db import webhooks_repo
from imagegate.domain.records import JobPresenter, OwnUrlBody
from imagegate.domain.webhooks import jittered
from imagegate.engine.webhook_delivery import Deliverer
from imagegate.observability.logging import get_logger
from imagegate.runtime import Runtime

QUEUE_NAME = "imagegate-webhooks"
DISPATCH_BATCH = 500
# The dispatcher's longest pause when it finds nothing to start.
IDLE_MAX_S = 1.0
log = get_logger("imagegate.webhooks")

_deliverer: Deliverer | None = None
_dispatcher: asyncio.Task[None] | None = None
_new_rows: asyncio.Event | None = None  # set when this process writes deliveries
# The tasks running deliveries in this process, to stop them before the engine stops.
_running: set[asyncio.Task[Any]] = set()


def _get() -> Deliverer:
    if _deliverer is None:
        raise RuntimeError("webhook delivery is not prepared in this process")
    return _deliverer


# Retried by the engine only when the step itself breaks (the database is away): what
# the receiver answers is data for the schedule, never an exception.
@DBOS.step(name="imagegate.webhook_attempt", retries_allowed=True, max_attempts=5)
async def _attempt(delivery_id: str, number: int) -> dict[str, Any]:
    return (await _get().attempt(delivery_id, number)).to_dict()


@DBOS.workflow(name="imagegate.deliver_webhook")
async def deliver(delivery_id: str) -> str:
    """Attempt the delivery on the schedule until it is delivered, exhausted,
    disabled or its endpoint is gone."""
    task = asyncio.current_task()
    if task is not None:
        _running.add(task)
    try:
        first = jittered(_get().schedule[0], f"{delivery_id}:0")
        if first > 0:
            await DBOS.sleep_async(first)
        number = 0
        while True:
            number += 1
            step = await _attempt(delivery_id, number)
            if step["done"]:
                return str(step["status"])
            await DBOS.sleep_async(float(step["delay_s"]))
    finally:
        if task is not None:
            _running.discard(task)


def prepare(rt: Runtime, present: JobPresenter, own_url_body: OwnUrlBody | None = None) -> None:
    """Make this process able to run deliveries. Call it before the engine launches:
    launching recovers this worker's unfinished deliveries, which run at once."""
    global _deliverer
    _deliverer = Deliverer(rt, present, own_url_body=own_url_body)


async def start(rt: Runtime) -> None:
    """Register the queue and start dispatching (processes that run jobs only)."""
    global _dispatcher
    await DBOS.register_queue_async(
        QUEUE_NAME,
        polling_interval_sec=rt.settings.queue_poll_interval_s,
        on_conflict="always_update",
    )
    global _new_rows
    _new_rows = asyncio.Event()
    webhooks_repo.new_delivery_listeners.append(_new_rows.set)
    _dispatcher = asyncio.create_task(_dispatch_forever(rt, _new_rows))


async def stop_dispatching() -> None:
    global _dispatcher, _new_rows
    if _new_rows is not None:
        webhooks_repo.new_delivery_listeners.remove(_new_rows.set)
        _new_rows = None
    if _dispatcher is not None:
        _dispatcher.cancel()
        await asyncio.gather(_dispatcher, return_exceptions=True)
        _dispatcher = None


async def stop_deliveries() -> None:
    """Stop the deliveries running in this process, before the engine stops. They stay
    pending in the engine and resume where they were at the next start, or on another
    worker; left running, each would fail against the stopped engine, noisily."""
    tasks = [task for task in _running if not task.done()]
    engine_log = logging.getLogger("dbos")
    level = engine_log.level
    engine_log.setLevel(logging.ERROR)  # the engine warns of every cancelled workflow
    try:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        engine_log.setLevel(level)


async def close() -> None:
    """After the engine has shut down: release the HTTP connections."""
    global _deliverer
    if _deliverer is not None:
        await _deliverer.aclose()
        _deliverer = None


async def dispatch(rt: Runtime) -> int:
    """Start the workflow of every delivery that has none yet; returns how many."""
    async with rt.db.connect() as conn:
        batch = await webhooks_repo.undispatched(conn, DISPATCH_BATCH)
    for delivery_id, _workspace_id in batch:
        # Same id, same workflow: starting one a crash left unmarked attaches to it.
        with SetWorkflowID(delivery_id):
            await DBOS.enqueue_workflow_async(QUEUE_NAME, deliver, delivery_id)
    if batch:
        async with rt.db.begin() as conn:
            await webhooks_repo.mark_dispatched(conn, [d for d, _ in batch])
    return len(batch)


async def _dispatch_forever(rt: Runtime, new_rows: asyncio.Event) -> None:
    busy = rt.settings.webhook_dispatch_interval_s
    pause = busy
    while True:
        new_rows.clear()
        try:
            started = await dispatch(rt)
        except Exception as error:  # a database hiccup must not end the dispatcher
            log.warning("webhook.dispatch_failed", error=repr(error))
            started = 0
        if started >= DISPATCH_BATCH:
            continue
        # Found some: look again soon. Found none: look less and less often.
        pause = busy if started else min(pause * 2, max(busy, IDLE_MAX_S))
        try:
            await asyncio.wait_for(new_rows.wait(), pause)
        except TimeoutError:
            continue
        # Woken: the writer's commit may not have landed yet, so the next empty look
        # still waits only the busy pace.
        pause = busy / 2
