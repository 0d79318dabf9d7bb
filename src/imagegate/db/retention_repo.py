"""Deleting what has aged out, a bounded batch per statement, oldest first.

Each function deletes at most ``limit`` rows and returns how many it deleted, so the
caller loops until a batch comes back short. Every batch is chosen through an index
(``ix_provider_calls_started_at``, ``ix_job_events_created_at``,
``ix_webhook_deliveries_finished_at``, ``ix_uploads_created_at``,
``ix_moderation_decisions_created_at``, ``ix_audit_events_created_at``), and
``DELETE … WHERE id IN (SELECT … LIMIT n)`` reads the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Table, delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import (
    AuditEvent,
    Job,
    JobEvent,
    ModerationDecision,
    ProviderCall,
    Upload,
    WebhookAttempt,
    WebhookDelivery,
)

calls: Table = ProviderCall.__table__  # type: ignore[assignment]
events: Table = JobEvent.__table__  # type: ignore[assignment]
jobs: Table = Job.__table__  # type: ignore[assignment]
deliveries: Table = WebhookDelivery.__table__  # type: ignore[assignment]
attempts: Table = WebhookAttempt.__table__  # type: ignore[assignment]
uploads: Table = Upload.__table__  # type: ignore[assignment]
decisions: Table = ModerationDecision.__table__  # type: ignore[assignment]
audit_events: Table = AuditEvent.__table__  # type: ignore[assignment]


async def delete_provider_calls(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Provider calls that started before ``before``."""
    batch = select(calls.c.id).where(calls.c.started_at < before).limit(limit)
    result = await conn.execute(delete(calls).where(calls.c.id.in_(batch.scalar_subquery())))
    return int(result.rowcount or 0)


async def delete_moderation_decisions(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Moderation decisions made before ``before``."""
    batch = select(decisions.c.id).where(decisions.c.created_at < before).limit(limit)
    query = delete(decisions).where(decisions.c.id.in_(batch.scalar_subquery()))
    return int((await conn.execute(query)).rowcount or 0)


async def delete_audit_events(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Audit entries written before ``before``."""
    batch = select(audit_events.c.id).where(audit_events.c.created_at < before).limit(limit)
    query = delete(audit_events).where(audit_events.c.id.in_(batch.scalar_subquery()))
    return int((await conn.execute(query)).rowcount or 0)


async def delete_job_events(
    conn: AsyncConnection, before: datetime, limit: int, finished: Iterable[str]
) -> int:
    """Events older than ``before`` of jobs in a ``finished`` status that ended before
    ``before`` too: a job still running (or requeued) keeps its whole log."""
    ended = func.coalesce(jobs.c.completed_at, jobs.c.updated_at)
    # Correlated, so the batch walks the events' time index and stops at ``limit``
    # instead of first listing every finished job.
    done = exists().where(
        jobs.c.id == events.c.job_id, jobs.c.status.in_(list(finished)), ended < before
    )
    batch = select(events.c.id).where(events.c.created_at < before, done).limit(limit)
    result = await conn.execute(delete(events).where(events.c.id.in_(batch.scalar_subquery())))
    return int(result.rowcount or 0)


async def delete_webhook_deliveries(conn: AsyncConnection, before: datetime, limit: int) -> int:
    """Deliveries that reached a final status before ``before``, and their attempts.
    A pending delivery has no ``finished_at``, so one still being retried stays."""
    ids: list[str] = list(
        (
            await conn.execute(
                select(deliveries.c.id).where(deliveries.c.finished_at < before).limit(limit)
            )
        ).scalars()
    )
    if not ids:
        return 0
    await conn.execute(delete(attempts).where(attempts.c.delivery_id.in_(ids)))
    result = await conn.execute(delete(deliveries).where(deliveries.c.id.in_(ids)))
    return int(result.rowcount or 0)


async def expired_uploads(
    conn: AsyncConnection, before: datetime, limit: int
) -> list[tuple[str, str]]:
    """``(id, storage_key)`` of at most ``limit`` uploads created before ``before``,
    oldest first. Uploads have files, so the caller deletes those first and then the
    rows (:func:`delete_uploads`): a failure in between leaves a row to retry, never
    a file that nothing points at."""
    query = (
        select(uploads.c.id, uploads.c.storage_key)
        .where(uploads.c.created_at < before)
        .order_by(uploads.c.created_at)
        .limit(limit)
    )
    return [(str(r.id), str(r.storage_key)) for r in await conn.execute(query)]


async def delete_uploads(conn: AsyncConnection, upload_ids: list[str]) -> int:
    if not upload_ids:
        return 0
    result = await conn.execute(delete(uploads).where(uploads.c.id.in_(upload_ids)))
    return int(result.rowcount or 0)
