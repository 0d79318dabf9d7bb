"""Batches (jobs submitted together) and the tallies of their jobs, in SQLAlchemy Core.

A batch row is written once, with its per-item report, after its jobs: it never
changes. What moves is its jobs; ``tallies`` sums them per status in one query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import Batch, Job
from imagegate.domain.batches import BatchRecord, Tally

batches: Table = Batch.__table__  # type: ignore[assignment]
jobs: Table = Job.__table__  # type: ignore[assignment]


def _record(row: Mapping[Any, Any]) -> BatchRecord:
    return BatchRecord(
        id=row["id"],
        workspace_id=row["workspace_id"],
        item_count=row["item_count"],
        items=tuple(dict(item) for item in row["items"]),
        metadata=dict(row["metadata"]),
        created_at=row["created_at"],
    )


async def insert_batch(
    conn: AsyncConnection,
    *,
    batch_id: str,
    workspace_id: str,
    items: Sequence[dict[str, Any]],
    metadata: dict[str, Any],
    now: datetime,
) -> BatchRecord:
    row = {
        "id": batch_id, "workspace_id": workspace_id, "item_count": len(items),
        "items": list(items), "metadata": metadata, "created_at": now,
    }  # fmt: skip
    await conn.execute(insert(batches), row)
    return _record(row)


async def get_batch(
    conn: AsyncConnection, batch_id: str, workspace_id: str | None = None
) -> BatchRecord | None:
    """The batch; ``None`` if absent or in another workspace."""
    query = select(batches).where(batches.c.id == batch_id)
    if workspace_id is not None:
        query = query.where(batches.c.workspace_id == workspace_id)
    row = (await conn.execute(query)).mappings().first()
    return _record(row) if row is not None else None


async def list_batches(
    conn: AsyncConnection, workspace_id: str, *, before_id: str | None, limit: int
) -> list[BatchRecord]:
    """Newest first. Ids are time-ordered, so ``before_id`` is a stable cursor."""
    query = select(batches).where(batches.c.workspace_id == workspace_id)
    if before_id is not None:
        query = query.where(batches.c.id < before_id)
    rows = await conn.execute(query.order_by(batches.c.id.desc()).limit(limit))
    return [_record(row) for row in rows.mappings()]


async def tallies(
    conn: AsyncConnection, workspace_id: str, batch_ids: Sequence[str]
) -> dict[str, dict[str, Tally]]:
    """Per batch, per job status: how many jobs and their summed progress."""
    if not batch_ids:
        return {}
    rows = await conn.execute(
        select(jobs.c.batch_id, jobs.c.status, func.count(), func.sum(jobs.c.progress))
        .where(jobs.c.workspace_id == workspace_id, jobs.c.batch_id.in_(list(batch_ids)))
        .group_by(jobs.c.batch_id, jobs.c.status)
    )
    found: dict[str, dict[str, Tally]] = {}
    for batch_id, status, count, progress in rows.tuples():
        found.setdefault(str(batch_id), {})[str(status)] = Tally(int(count), int(progress or 0))
    return found
