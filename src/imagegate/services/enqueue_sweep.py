"""The enqueue sweep: queue the jobs that were recorded but never reached the queue.

A job is committed first and put on the queue second, so an enqueue that fails (the
engine's database away for a moment, the process killed in between) leaves a queued
job with no run. Start-up catches those of a crash (``jobs.reconcile``); this sweep,
run by whichever process holds the reaper lease (``services.fleet``), catches them
while everything keeps running. It is the jobs' twin of the webhook dispatcher
(``engine.webhook_engine.dispatch``): bounded pages of rows, each started under an id
derived from the row, so a run that did reach the queue is attached to, not doubled."""

from __future__ import annotations

from datetime import timedelta

from imagegate.db import jobs_repo
from imagegate.engine import dbos_engine
from imagegate.observability.logging import get_logger
from imagegate.runtime import Runtime

# Jobs looked at per pass: a backlog of queued jobs is walked a page per pass rather
# than read whole.
SWEEP_BATCH = 500
log = get_logger("imagegate.sweep")


class EnqueueSweep:
    """Walks the queued jobs a page at a time, resuming where the last pass stopped
    (a keyset position on the job id) and starting over at the end."""

    def __init__(self, batch: int = SWEEP_BATCH) -> None:
        self._batch = batch
        self._after: str | None = None

    async def run_once(self, rt: Runtime) -> int:
        """One page: queue each job in it that has no run; returns how many."""
        cutoff = rt.clock.now() - timedelta(seconds=rt.settings.enqueue_sweep_grace_s)
        async with rt.db.connect() as conn:
            page = await jobs_repo.queued_since_before(conn, cutoff, self._after, self._batch)
        self._after = page[-1][0] if len(page) == self._batch else None
        queued = await dbos_engine.ensure_queued(page) if page else 0
        if queued:
            log.warning("jobs.enqueued_by_sweep", jobs=queued)
        return queued
