"""Idempotency records: claimed before the work, completed with the response after.

Each claim carries a random token; completing or releasing a record needs it, so a
request whose abandoned claim was taken over by a retry cannot delete or overwrite
the retry's record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Insert, Table, delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import IdempotencyRecord
from imagegate.db.upsert import dialect_insert

records: Table = IdempotencyRecord.__table__  # type: ignore[assignment]

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
    claim_token: str | None = None


def _insert_ignoring_conflict(conn: AsyncConnection) -> Insert:
    # RETURNING says whether the row went in: psycopg's rowcount for an insert that
    # hit the conflict is not reliable (-1), SQLite's is.
    return (
        dialect_insert(conn, records)
        .on_conflict_do_nothing(index_elements=["workspace_id", "key"])
        .returning(records.c.key)
    )


def _key(workspace_id: str, key: str) -> Any:
    return (records.c.workspace_id == workspace_id) & (records.c.key == key)


async def claim(
    conn: AsyncConnection,
    workspace_id: str,
    key: str,
    request_hash: str,
    token: str,
    now: datetime,
    expires_at: datetime,
) -> StoredResponse | None:
    """Claim the key for this request under ``token``. ``None`` means ours; else what
    holds it."""
    inserted = await conn.execute(
        _insert_ignoring_conflict(conn),
        {
            "workspace_id": workspace_id, "key": key, "request_hash": request_hash,
            "state": IN_FLIGHT, "claim_token": token, "created_at": now,
            "expires_at": expires_at,
        },
    )  # fmt: skip
    if inserted.first() is not None:
        return None
    held = await find(conn, workspace_id, key)
    if held is None:  # deleted between our insert and read: the claim is free again
        return await claim(conn, workspace_id, key, request_hash, token, now, expires_at)
    return held


async def find(conn: AsyncConnection, workspace_id: str, key: str) -> StoredResponse | None:
    row = (await conn.execute(select(records).where(_key(workspace_id, key)))).mappings().first()
    if row is None:
        return None
    return StoredResponse(
        row["request_hash"], row["state"], row["status_code"], row["response"],
        row["created_at"], row["expires_at"], row["claim_token"],
    )  # fmt: skip


async def complete(
    conn: AsyncConnection,
    workspace_id: str,
    key: str,
    token: str,
    status_code: int,
    response: dict[str, Any],
    resource_id: str | None,
) -> bool:
    """Store the response on the claim ``token`` holds; False if it no longer holds it."""
    result = await conn.execute(
        update(records)
        .where(_key(workspace_id, key), records.c.claim_token == token)
        .values(state=DONE, status_code=status_code, response=response, job_id=resource_id)
    )
    return bool(result.rowcount)


async def release(conn: AsyncConnection, workspace_id: str, key: str, token: str) -> None:
    """Free the key, if ``token`` still holds it."""
    await conn.execute(
        delete(records).where(_key(workspace_id, key), records.c.claim_token == token)
    )


async def take_over(
    conn: AsyncConnection,
    workspace_id: str,
    key: str,
    stale: StoredResponse,
    request_hash: str,
    token: str,
    now: datetime,
    expires_at: datetime,
) -> bool:
    """Replace the expired or abandoned record ``stale`` with a fresh claim. Deletes it
    only if it is still the one read (same token): a concurrent taker-over wins once."""
    await conn.execute(
        delete(records).where(
            _key(workspace_id, key), records.c.claim_token.is_not_distinct_from(stale.claim_token)
        )
    )
    return await claim(conn, workspace_id, key, request_hash, token, now, expires_at) is None


async def purge_expired(conn: AsyncConnection, now: datetime) -> int:
    result = await conn.execute(delete(records).where(records.c.expires_at < now))
    return int(result.rowcount or 0)
