"""Reading the lifecycle log (``job_events``) in order: the feed behind SSE and
``Prefer: wait``."""

from __future__ import annotations

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import JobEvent
from imagegate.domain.records import EventRecord

events: Table = JobEvent.__table__  # type: ignore[assignment]


async def after(
    conn: AsyncConnection,
    after_id: int,
    *,
    limit: int = 500,
    job_id: str | None = None,
    workspace_id: str | None = None,
) -> list[EventRecord]:
    """Events with ids above ``after_id``, oldest first, optionally of one job or one
    workspace."""
    query = select(events).where(events.c.id > after_id)
    if job_id is not None:
        query = query.where(events.c.job_id == job_id)
    if workspace_id is not None:
        query = query.where(events.c.workspace_id == workspace_id)
    rows = await conn.execute(query.order_by(events.c.id).limit(limit))
    return [
        EventRecord(
            r["id"], r["job_id"], r["workspace_id"], r["type"], dict(r["data"]), r["created_at"]
        )
        for r in rows.mappings()
    ]


async def last_id(conn: AsyncConnection) -> int:
    return int(await conn.scalar(select(func.coalesce(func.max(events.c.id), 0))) or 0)
