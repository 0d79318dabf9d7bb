"""The credits ledger in SQL: entries appended, the account changed in the same
statement group, every write guarded so that a replay changes nothing.

Each function runs in the caller's transaction: a reserve in the transaction that
creates the job, a settle in the one that completes it, a void in the one that fails
or cancels it — the ledger adds statements to the hot path, never a transaction."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import CreditAccount, CreditEntry
from imagegate.db.upsert import dialect_insert
from imagegate.domain.ledger import Balance, EntryKind, final_key, reserve_key, settlement
from imagegate.domain.records import LedgerEntry

accounts: Table = CreditAccount.__table__  # type: ignore[assignment]
entries: Table = CreditEntry.__table__  # type: ignore[assignment]


class NotEnoughCredits(Exception):
    """The reserve does not fit the available balance (the caller rolls back)."""

    def __init__(self, balance: Balance, needed: int) -> None:
        super().__init__(f"needs {needed} credits, {balance.available} available")
        self.balance = balance
        self.needed = needed


async def _append(conn: AsyncConnection, values: dict[str, Any]) -> bool:
    """Add the entry unless one with its key exists; True if added."""
    query = dialect_insert(conn, entries).values(**values)
    # RETURNING, not rowcount: psycopg reports -1 for a row skipped by DO NOTHING.
    result = await conn.execute(query.on_conflict_do_nothing().returning(entries.c.id))
    return result.first() is not None


async def _open(conn: AsyncConnection, workspace_id: str, now: datetime) -> None:
    query = dialect_insert(conn, accounts).values(
        workspace_id=workspace_id, granted=0, charged=0, reserved=0, updated_at=now
    )
    await conn.execute(query.on_conflict_do_nothing())


async def balance(conn: AsyncConnection, workspace_id: str) -> Balance:
    row = (
        await conn.execute(select(accounts).where(accounts.c.workspace_id == workspace_id))
    ).first()
    if row is None:
        return Balance()
    return Balance(int(row.granted), int(row.charged), int(row.reserved))


async def grant(
    conn: AsyncConnection,
    workspace_id: str,
    amount: int,
    key: str,
    now: datetime,
    *,
    actor_key_id: str | None = None,
    note: str | None = None,
) -> bool:
    """Add ``amount`` credits, once per ``key``; False if that key granted already."""
    await _open(conn, workspace_id, now)
    added = await _append(conn, {
        "workspace_id": workspace_id, "kind": EntryKind.GRANT.value, "amount": amount,
        "entry_key": key, "job_id": None, "actor_key_id": actor_key_id, "note": note,
        "created_at": now,
    })  # fmt: skip
    if added:
        await conn.execute(
            update(accounts)
            .where(accounts.c.workspace_id == workspace_id)
            .values(granted=accounts.c.granted + amount, updated_at=now)
        )
    return added


async def reserve(
    conn: AsyncConnection,
    workspace_id: str,
    job_id: str,
    amount: int,
    now: datetime,
    run: int = 1,
) -> bool:
    """Hold ``amount`` for the job, once; raises NotEnoughCredits when it does not fit
    (the caller's transaction must then roll back, taking the entry with it)."""
    await _open(conn, workspace_id, now)
    added = await _append(conn, {
        "workspace_id": workspace_id, "kind": EntryKind.RESERVE.value, "amount": amount,
        "entry_key": reserve_key(job_id, run), "job_id": job_id, "actor_key_id": None,
        "note": None if run <= 1 else f"run {run}", "created_at": now,
    })  # fmt: skip
    if not added:
        return False
    available = accounts.c.granted - accounts.c.charged - accounts.c.reserved
    held = await conn.execute(
        update(accounts)
        .where(accounts.c.workspace_id == workspace_id, available >= amount)
        .values(reserved=accounts.c.reserved + amount, updated_at=now)
    )
    if not held.rowcount:
        raise NotEnoughCredits(await balance(conn, workspace_id), amount)
    return True


async def finish(
    conn: AsyncConnection,
    workspace_id: str,
    job_id: str,
    kind: EntryKind,
    cost: int,
    now: datetime,
    run: int = 1,
) -> tuple[int, int] | None:
    """End the job's hold with a settle (charging ``cost``, at most what it held) or a
    void (``cost`` ignored): (charged, released), or None when there is nothing to end
    (no reserve: the job was made without the ledger; or it ended already)."""
    held = await conn.scalar(
        select(entries.c.amount).where(
            entries.c.workspace_id == workspace_id,
            entries.c.entry_key == reserve_key(job_id, run),
        )
    )
    if held is None:
        return None
    charged, released = settlement(int(held), cost if kind is EntryKind.SETTLE else 0)
    added = await _append(conn, {
        "workspace_id": workspace_id, "kind": kind.value,
        "amount": charged if kind is EntryKind.SETTLE else released,
        "entry_key": final_key(job_id, run), "job_id": job_id, "actor_key_id": None,
        "note": f"released {released}" if kind is EntryKind.SETTLE and released else None,
        "created_at": now,
    })  # fmt: skip
    if not added:
        return None
    await conn.execute(
        update(accounts)
        .where(accounts.c.workspace_id == workspace_id)
        .values(
            charged=accounts.c.charged + charged,
            reserved=accounts.c.reserved - int(held),
            updated_at=now,
        )
    )
    return charged, released


def _entry(row: Mapping[Any, Any]) -> LedgerEntry:
    return LedgerEntry(
        id=int(row["id"]), kind=row["kind"], amount=int(row["amount"]), job_id=row["job_id"],
        actor_key_id=row["actor_key_id"], note=row["note"], created_at=row["created_at"],
    )  # fmt: skip


async def list_entries(
    conn: AsyncConnection, workspace_id: str, *, before_id: int | None, limit: int
) -> list[LedgerEntry]:
    """Newest first."""
    query = select(entries).where(entries.c.workspace_id == workspace_id)
    if before_id is not None:
        query = query.where(entries.c.id < before_id)
    rows = await conn.execute(query.order_by(entries.c.id.desc()).limit(limit))
    return [_entry(row) for row in rows.mappings()]


async def job_entries(conn: AsyncConnection, workspace_id: str, job_id: str) -> list[LedgerEntry]:
    query = select(entries).where(
        entries.c.workspace_id == workspace_id, entries.c.job_id == job_id
    )
    rows = await conn.execute(query.order_by(entries.c.id).limit(10))
    return [_entry(row) for row in rows.mappings()]
