"""Retention: provider calls, job events, finished webhook deliveries (with their
attempts), moderation decisions, audit entries and finished jobs (services.erasure,
by workspace) are deleted once older than their
``IMAGEGATE_RETENTION_*_DAYS``, uploads
(with their files) once older than ``IMAGEGATE_UPLOAD_RETENTION_DAYS``.

The process that holds the reaper lease calls :func:`run_if_due` on every reaper
tick. A second lease, ``retention``, records when the next sweep is due for the whole
fleet (``IMAGEGATE_RETENTION_INTERVAL_S``, hourly by default), so a sweep runs once
per interval however many processes there are, and a new reaper does not sweep again
at once. A sweep deletes in batches, each its own short transaction, so it never holds
the database for long; one that hits its batch budget lets the lease go and is
continued on the next tick."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db import quotas_repo, retention_repo, workers_repo
from imagegate.domain.jobs import JobStatus
from imagegate.observability.logging import get_logger
from imagegate.runtime import Runtime
from imagegate.services import erasure

log = get_logger("imagegate.retention")

RETENTION_LEASE = "retention"
BATCH = 1000
# Batches per table per sweep: about 20,000 rows, then the next reaper tick goes on.
MAX_BATCHES = 20
# Longer than the longest quota period (a month).
QUOTA_USAGE_DAYS = 62
FINISHED = tuple(status.value for status in JobStatus if status.is_terminal())


@dataclass(frozen=True)
class Swept:
    provider_calls: int = 0
    job_events: int = 0
    webhook_deliveries: int = 0
    uploads: int = 0
    moderation_decisions: int = 0
    audit_events: int = 0
    jobs: int = 0
    quota_usage: int = 0
    # False: a table had more to delete than the budget allowed.
    complete: bool = True


Deleter = Callable[[AsyncConnection, datetime, int], Awaitable[int]]
# One bounded batch, in transactions of its own: (before, limit) -> rows deleted.
Batch = Callable[[datetime, int], Awaitable[int]]


async def sweep(rt: Runtime, *, batch: int = BATCH, max_batches: int = MAX_BATCHES) -> Swept:
    """Delete what has aged out now; 0 days keeps a table's rows forever."""
    s = rt.settings
    now = rt.clock.now()

    async def events(conn: AsyncConnection, before: datetime, limit: int) -> int:
        return await retention_repo.delete_job_events(conn, before, limit, FINISHED)

    # Swept's field -> (days kept, one batch of deletes)
    plan: dict[str, tuple[int, Batch]] = {
        "provider_calls": (
            s.retention_provider_calls_days,
            _in_transaction(rt, retention_repo.delete_provider_calls),
        ),
        "job_events": (s.retention_job_events_days, _in_transaction(rt, events)),
        "webhook_deliveries": (
            s.retention_webhook_deliveries_days,
            _in_transaction(rt, retention_repo.delete_webhook_deliveries),
        ),
        "uploads": (s.upload_retention_days, functools.partial(_delete_uploads, rt)),
        "moderation_decisions": (
            s.retention_moderation_days,
            _in_transaction(rt, retention_repo.delete_moderation_decisions),
        ),
        "audit_events": (
            s.retention_audit_days,
            _in_transaction(rt, retention_repo.delete_audit_events),
        ),
        # Past periods' quota counts: nothing reads a period once it is over.
        "quota_usage": (QUOTA_USAGE_DAYS, _in_transaction(rt, quotas_repo.delete_before)),
    }
    counts: dict[str, int] = {}
    complete = True
    for name, (days, deleter) in plan.items():
        deleted, done = 0, True
        if days > 0:
            before = now - timedelta(days=days)
            deleted, done = await _drain(deleter, before, batch, max_batches)
        counts[name] = deleted
        complete = complete and done
    counts["jobs"], done = await erasure.sweep_expired(
        rt, now, batch=batch, max_batches=max_batches
    )
    complete = complete and done
    swept = Swept(**counts, complete=complete)
    if any(counts.values()):
        log.info("retention.swept", **counts, complete=complete)
    return swept


def _in_transaction(rt: Runtime, deleter: Deleter) -> Batch:
    async def batch(before: datetime, limit: int) -> int:
        async with rt.db.begin() as conn:
            return await deleter(conn, before, limit)

    return batch


async def _delete_uploads(rt: Runtime, before: datetime, limit: int) -> int:
    """A batch of expired uploads: their files first, then their rows, so no
    transaction is open while storage is called. The first file that cannot be
    deleted ends the batch (storage is likely down): its row and the rest wait for a
    later sweep, and the short count tells ``_drain`` to stop."""
    async with rt.db.connect() as conn:
        expired = await retention_repo.expired_uploads(conn, before, limit)
    gone: list[str] = []
    for upload_id, key in expired:
        try:
            await rt.storage.delete(key)
        except Exception as error:
            log.warning("retention.upload_file_kept", upload_id=upload_id, error=repr(error))
            break
        gone.append(upload_id)
    async with rt.db.begin() as conn:
        await retention_repo.delete_uploads(conn, gone)
    return len(gone)


async def _drain(
    deleter: Batch, before: datetime, batch: int, max_batches: int
) -> tuple[int, bool]:
    total = 0
    for _ in range(max_batches):
        deleted = await deleter(before, batch)
        total += deleted
        if deleted < batch:
            return total, True
    return total, False


async def run_if_due(rt: Runtime, holder: str) -> Swept | None:
    """Sweep if the fleet's next sweep is due (None if not). Never raises, so the
    reaper's own work goes on: a failed sweep is logged and runs again when next due."""
    try:
        async with rt.db.begin() as conn:
            due = await workers_repo.take_due_lease(
                conn, RETENTION_LEASE, holder, rt.clock.now(), rt.settings.retention_interval_s
            )
        if not due:
            return None
        swept = await sweep(rt)
        if not swept.complete:
            async with rt.db.begin() as conn:  # more to do: due again on the next tick
                await workers_repo.release_lease(conn, RETENTION_LEASE, holder)
        return swept
    except Exception as error:
        log.warning("retention.failed", error=repr(error))
        return None
