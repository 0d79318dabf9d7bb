"""Quota usage in SQL: counted with a guarded update in the caller's (the creating)
transaction, so that two creates can never both pass the last free unit."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import QuotaUsage
from imagegate.db.upsert import dialect_insert

usage: Table = QuotaUsage.__table__  # type: ignore[assignment]


async def spend(
    conn: AsyncConnection,
    workspace_id: str,
    subject: str,
    period: str,
    unit: str,
    amount: int,
    limit: int,
    now: datetime,
) -> int | None:
    """Add ``amount`` to the subject's ``unit`` for ``period`` if it stays within
    ``limit``: the new total, or None (nothing changed) when it would not."""
    opened = dialect_insert(conn, usage).values(
        workspace_id=workspace_id, subject=subject, period=period, images=0, credits=0,
        updated_at=now,
    )  # fmt: skip
    await conn.execute(opened.on_conflict_do_nothing())
    column = usage.c[unit]
    mine = (
        (usage.c.workspace_id == workspace_id)
        & (usage.c.subject == subject)
        & (usage.c.period == period)
    )
    result = await conn.execute(
        update(usage)
        .where(mine, column + amount <= limit)
        .values({unit: column + amount, "updated_at": now})
        .returning(column)
    )
    total = result.scalar()
    return int(total) if total is not None else None


async def used(
    conn: AsyncConnection, workspace_id: str, subject: str, period: str, unit: str
) -> int:
    query = select(usage.c[unit]).where(
        usage.c.workspace_id == workspace_id, usage.c.subject == subject, usage.c.period == period
    )
    return int(await conn.scalar(query) or 0)


async def delete_before(conn: AsyncConnection, updated_before: datetime, limit: int) -> int:
    """Usage rows of periods long over (not touched since ``updated_before``)."""
    batch = (
        select(usage.c.workspace_id, usage.c.subject, usage.c.period)
        .where(usage.c.updated_at < updated_before)
        .limit(limit)
    )
    rows = (await conn.execute(batch)).all()
    for workspace_id, subject, period in rows:
        await conn.execute(
            delete(usage).where(
                usage.c.workspace_id == workspace_id,
                usage.c.subject == subject,
                usage.c.period == period,
            )
        )
    return len(rows)
