"""Idempotency records: claimed before the work, completed with the response after."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import IdempotencyRecord

IN_FLIGHT = "in_flight"
DONE = "done"


@dataclass(frozen=True)
class StoredResponse:
    request_hash: str
    state: str
    status_code: int | None
    response: dict[str, Any] | None
    created_at: datetime
    expires_at: datetime


async def claim(
    session: AsyncSession,
    workspace_id: str,
    key: str,
    request_hash: str,
    now: datetime,
    expires_at: datetime,
) -> StoredResponse | None:
    """Claim the key for this request. ``None`` means ours; else what holds it."""
    try:
        async with session.begin_nested():
            session.add(
                IdempotencyRecord(
                    workspace_id=workspace_id,
                    key=key,
                    request_hash=request_hash,
                    state=IN_FLIGHT,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
        return None
    except IntegrityError:
        pass
    row = await session.get(IdempotencyRecord, (workspace_id, key), populate_existing=True)
    if row is None:  # deleted between our insert and read: the claim is free again
        return await claim(session, workspace_id, key, request_hash, now, expires_at)
    return StoredResponse(
        row.request_hash, row.state, row.status_code, row.response, row.created_at, row.expires_at
    )


async def complete(
    session: AsyncSession,
    workspace_id: str,
    key: str,
    status_code: int,
    response: dict[str, Any],
    job_id: str | None,
) -> None:
    await session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.workspace_id == workspace_id, IdempotencyRecord.key == key)
        .values(state=DONE, status_code=status_code, response=response, job_id=job_id)
    )


async def release(session: AsyncSession, workspace_id: str, key: str) -> None:
    await session.execute(
        delete(IdempotencyRecord).where(
            IdempotencyRecord.workspace_id == workspace_id, IdempotencyRecord.key == key
        )
    )


async def take_over(
    session: AsyncSession,
    workspace_id: str,
    key: str,
    request_hash: str,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Replace an expired or abandoned record with a fresh claim."""
    await release(session, workspace_id, key)
    return await claim(session, workspace_id, key, request_hash, now, expires_at) is None


async def purge_expired(session: AsyncSession, now: datetime) -> int:
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.expires_at < now)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def find_job_id(session: AsyncSession, workspace_id: str, key: str) -> str | None:
    return await session.scalar(
        select(IdempotencyRecord.job_id).where(
            IdempotencyRecord.workspace_id == workspace_id, IdempotencyRecord.key == key
        )
    )
