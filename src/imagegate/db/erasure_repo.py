"""Erasing a job: its rows, in one transaction (its files are storage's, deleted
first by services.erasure).

What goes: the job, its image rows, its events, its webhook deliveries with their
attempts, and the idempotency records that answer with it. What stays: provider
calls (cost and latency figures, which hold no prompt), and moderation decisions
about it with their prompt excerpt blanked. Children keep their ``parent_job_id``
(the parent answers 404 from then on)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import (
    IdempotencyRecord,
    Image,
    Job,
    JobEvent,
    ModerationDecision,
    WebhookAttempt,
    WebhookDelivery,
)

jobs: Table = Job.__table__  # type: ignore[assignment]
images: Table = Image.__table__  # type: ignore[assignment]
events: Table = JobEvent.__table__  # type: ignore[assignment]
deliveries: Table = WebhookDelivery.__table__  # type: ignore[assignment]
attempts: Table = WebhookAttempt.__table__  # type: ignore[assignment]
claims: Table = IdempotencyRecord.__table__  # type: ignore[assignment]
decisions: Table = ModerationDecision.__table__  # type: ignore[assignment]


class JobChanged(Exception):
    """The job left its finished status while being erased: roll the erasure back."""


async def erase_job(
    conn: AsyncConnection, workspace_id: str, job_id: str, finished: Iterable[str]
) -> bool:
    """Delete the job's rows if it is in a ``finished`` status; False (nothing
    changed) if it is not there or not finished. Raises JobChanged (the caller's
    transaction then rolls back) if it stopped being finished meanwhile."""
    finished = list(finished)
    status = await conn.scalar(
        select(jobs.c.status)
        .where(jobs.c.id == job_id, jobs.c.workspace_id == workspace_id)
        .with_for_update()
    )
    if status not in finished:
        return False
    # Rows that point at the job first (images have a foreign key to it).
    await conn.execute(delete(images).where(images.c.job_id == job_id))
    await conn.execute(
        delete(events).where(events.c.job_id == job_id, events.c.workspace_id == workspace_id)
    )
    mine = (deliveries.c.job_id == job_id) & (deliveries.c.workspace_id == workspace_id)
    await conn.execute(
        delete(attempts).where(attempts.c.delivery_id.in_(select(deliveries.c.id).where(mine)))
    )
    await conn.execute(delete(deliveries).where(mine))
    await conn.execute(
        delete(claims).where(claims.c.workspace_id == workspace_id, claims.c.job_id == job_id)
    )
    await conn.execute(
        update(decisions)
        .where(decisions.c.workspace_id == workspace_id, decisions.c.job_id == job_id)
        .values(excerpt=None)
    )
    gone = await conn.execute(
        delete(jobs).where(
            jobs.c.id == job_id, jobs.c.workspace_id == workspace_id, jobs.c.status.in_(finished)
        )
    )
    if not gone.rowcount:
        raise JobChanged(job_id)
    return True


async def expired_jobs(
    conn: AsyncConnection,
    before: datetime,
    limit: int,
    finished: Iterable[str],
    *,
    workspace_ids: list[str] | None = None,
    except_workspace_ids: list[str] | None = None,
) -> list[tuple[str, str]]:
    """``(workspace id, job id)`` of at most ``limit`` jobs that finished before
    ``before``, oldest first, in (or not in) the given workspaces."""
    # Every finished job has completed_at (completed, failed and canceled all set it);
    # ix_jobs_completed_at walks them oldest first.
    ended = jobs.c.completed_at
    query = select(jobs.c.workspace_id, jobs.c.id).where(
        jobs.c.status.in_(list(finished)), ended < before
    )
    if workspace_ids is not None:
        query = query.where(jobs.c.workspace_id.in_(workspace_ids))
    if except_workspace_ids:
        query = query.where(jobs.c.workspace_id.not_in(except_workspace_ids))
    rows = await conn.execute(query.order_by(ended).limit(limit))
    return [(str(r[0]), str(r[1])) for r in rows]
