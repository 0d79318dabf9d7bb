"""Worker registrations, heartbeats and the reaper's lease, in Core SQL.

Every write is one conditional statement, so two processes racing for the same worker
id or the same lease cannot both win, on SQLite or PostgreSQL."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import Lease, Worker
from imagegate.db.upsert import dialect_insert

workers: Table = Worker.__table__  # type: ignore[assignment]
leases: Table = Lease.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class WorkerRow:
    id: str
    role: str
    host: str
    pid: int
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    stop_reason: str | None


async def get(conn: AsyncConnection, worker_id: str) -> WorkerRow | None:
    row = (await conn.execute(select(workers).where(workers.c.id == worker_id))).mappings().first()
    return _to_row(row) if row is not None else None


async def claim(
    conn: AsyncConnection,
    *,
    worker_id: str,
    role: str,
    host: str,
    pid: int,
    incarnation: str,
    version: str,
    now: datetime,
    stale_before: datetime,
    dead_pid: int | None = None,
) -> bool:
    """Take ``worker_id`` if nobody live holds it: the row is new, stopped, its
    heartbeat is older than ``stale_before``, or its holder is ``dead_pid`` on this
    host (a process the caller saw exit). False if a live process holds it."""
    values = {
        "role": role, "host": host, "pid": pid, "incarnation": incarnation,
        "version": version, "started_at": now,
        "heartbeat_at": now, "stopped_at": None, "stop_reason": None,
    }  # fmt: skip
    free = or_(
        workers.c.stopped_at.is_not(None),
        workers.c.heartbeat_at < stale_before,
        (workers.c.host == host) & (workers.c.pid == (dead_pid if dead_pid is not None else -1)),
    )
    statement = (
        dialect_insert(conn, workers)
        .values(id=worker_id, **values)
        .on_conflict_do_update(index_elements=["id"], set_=values, where=free)
        .returning(workers.c.id)
    )
    return (await conn.execute(statement)).first() is not None


def _held(worker_id: str, incarnation: str) -> Any:
    return (
        (workers.c.id == worker_id)
        & (workers.c.incarnation == incarnation)
        & workers.c.stopped_at.is_(None)
    )


async def heartbeat(conn: AsyncConnection, worker_id: str, incarnation: str, now: datetime) -> bool:
    """Say this process is alive. False: the id is no longer ours (declared dead, or
    claimed by another process)."""
    result = await conn.execute(
        update(workers).where(_held(worker_id, incarnation)).values(heartbeat_at=now)
    )
    return bool(result.rowcount)


async def stop(
    conn: AsyncConnection, worker_id: str, incarnation: str, now: datetime, reason: str
) -> None:
    """Free the id (only if this process still holds it)."""
    await conn.execute(
        update(workers)
        .where(_held(worker_id, incarnation))
        .values(stopped_at=now, stop_reason=reason)
    )


async def expire(conn: AsyncConnection, stale_before: datetime, now: datetime) -> list[str]:
    """Declare dead every running worker whose heartbeat is older than ``stale_before``."""
    result = await conn.execute(
        update(workers)
        .where(workers.c.stopped_at.is_(None), workers.c.heartbeat_at < stale_before)
        .values(stopped_at=now, stop_reason="lease expired")
        .returning(workers.c.id)
    )
    return sorted(row[0] for row in result)


async def live(conn: AsyncConnection, stale_before: datetime) -> list[WorkerRow]:
    rows = await conn.execute(
        select(workers)
        .where(workers.c.stopped_at.is_(None), workers.c.heartbeat_at >= stale_before)
        .order_by(workers.c.id)
    )
    return [_to_row(row) for row in rows.mappings()]


async def take_lease(
    conn: AsyncConnection, name: str, holder: str, now: datetime, ttl_s: float
) -> bool:
    """Hold the lease ``name`` for ``ttl_s`` more seconds if it is free, expired or
    already ours. Exactly one of several concurrent callers gets it."""
    expires = now + timedelta(seconds=ttl_s)
    statement = (
        dialect_insert(conn, leases)
        .values(name=name, holder=holder, expires_at=expires)
        .on_conflict_do_update(
            index_elements=["name"],
            set_={"holder": holder, "expires_at": expires},
            where=or_(leases.c.holder == holder, leases.c.expires_at < now),
        )
        .returning(leases.c.name)
    )
    return (await conn.execute(statement)).first() is not None


async def take_due_lease(
    conn: AsyncConnection, name: str, holder: str, now: datetime, ttl_s: float
) -> bool:
    """Hold the lease ``name`` for ``ttl_s`` if it is free or expired, even if ours:
    its expiry is then when the duty it guards is next due, for the whole fleet."""
    expires = now + timedelta(seconds=ttl_s)
    statement = (
        dialect_insert(conn, leases)
        .values(name=name, holder=holder, expires_at=expires)
        .on_conflict_do_update(
            index_elements=["name"],
            set_={"holder": holder, "expires_at": expires},
            where=leases.c.expires_at < now,
        )
        .returning(leases.c.name)
    )
    return (await conn.execute(statement)).first() is not None


async def release_lease(conn: AsyncConnection, name: str, holder: str) -> None:
    """Give up the lease now (if held), so another process need not wait it out."""
    await conn.execute(delete(leases).where(leases.c.name == name, leases.c.holder == holder))


def _to_row(row: object) -> WorkerRow:
    m = dict(row)  # type: ignore[call-overload]
    return WorkerRow(
        id=m["id"], role=m["role"], host=m["host"], pid=m["pid"], started_at=m["started_at"],
        heartbeat_at=m["heartbeat_at"], stopped_at=m["stopped_at"], stop_reason=m["stop_reason"],
    )  # fmt: skip
