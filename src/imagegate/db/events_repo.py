"""Reading the lifecycle log (``job_events``) in order: the feed behind SSE and
``Prefer: wait``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import JobEvent

events: Table = JobEvent.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class EventRow:
    id: int
    job_id: str
    workspace_id: str
    type: str
    data: dict[str, Any]
    created_at: datetime


async def after(
    conn: AsyncConnection,
    after_id: int,
    *,
    limit: int = 500,
    job_id: str | None = None,
    workspace_id: str | None = None,
) -> list[EventRow]:
    """Events with ids above ``after_id``, oldest first, optionally of one job or one
    workspace."""
    query = select(events).where(events.c.id > after_id)
    if job_id is not None:
        query = query.where(events.c.job_id == job_id)
    if workspace_id is not None:
        query = query.where(events.c.workspace_id == workspace_id)
    rows = await conn.execute(query.order_by(events.c.id).limit(limit))
    return [
        EventRow(
            r["id"], r["job_id"], r["workspace_id"], r["type"], dict(r["data"]), r["created_at"]
        )
        for r in rows.mappings()
    ]


async def last_id(conn: AsyncConnection) -> int:
    return int(await conn.scalar(select(func.coalesce(func.max(events.c.id), 0))) or 0)
