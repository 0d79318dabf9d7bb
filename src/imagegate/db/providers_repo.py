"""Provider telemetry, circuit breakers and concurrency slots, in Core SQL.

Breaker transitions are conditional updates ("open it if it is closed"), so workers
racing on the same provider agree: exactly one of them claims a probe."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Insert, Table, and_, case, func, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import ProviderBreaker, ProviderCall, ProviderSlot
from imagegate.db.upsert import dialect_insert
from imagegate.domain.circuit_breaker import Breaker, BreakerState

calls: Table = ProviderCall.__table__  # type: ignore[assignment]
breakers: Table = ProviderBreaker.__table__  # type: ignore[assignment]
slots: Table = ProviderSlot.__table__  # type: ignore[assignment]

OK, FAILED, MODERATED = "ok", "failed", "moderated"
_CALL_FIELDS = (
    "provider", "model", "started_at", "duration_ms", "outcome", "error_code",
    "error_message", "images", "cost_usd",
)  # fmt: skip


@dataclass(frozen=True)
class CallRow:
    provider: str
    model: str
    started_at: datetime
    duration_ms: int
    outcome: str
    error_code: str | None
    error_message: str | None
    images: int
    cost_usd: float


async def add_call(conn: AsyncConnection, values: Mapping[str, Any]) -> None:
    await conn.execute(insert(calls), dict(values))


async def window_counts(conn: AsyncConnection, provider: str, since: datetime) -> tuple[int, int]:
    """(calls that reached a verdict, failures) since ``since``; moderated excluded."""
    row = (
        await conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(case((calls.c.outcome == FAILED, 1), else_=0)), 0),
            ).where(
                calls.c.provider == provider,
                calls.c.started_at >= since,
                calls.c.outcome != MODERATED,
            )
        )
    ).one()
    return int(row[0]), int(row[1])


async def recent_calls(
    conn: AsyncConnection, since: datetime, limit_per_provider: int = 1000
) -> dict[str, list[CallRow]]:
    """Each provider's calls since ``since``, newest first, at most ``limit`` each."""
    rows = await conn.execute(
        select(calls).where(calls.c.started_at >= since).order_by(calls.c.id.desc())
    )
    found: dict[str, list[CallRow]] = {}
    for row in rows.mappings():
        bucket = found.setdefault(row["provider"], [])
        if len(bucket) < limit_per_provider:
            bucket.append(CallRow(**{name: row[name] for name in _CALL_FIELDS}))
    return found


async def failed_providers(conn: AsyncConnection, job_id: str) -> list[str]:
    """Providers that failed this job before, in the order they did."""
    rows = await conn.execute(
        select(calls.c.provider)
        .where(calls.c.job_id == job_id, calls.c.outcome == FAILED)
        .order_by(calls.c.id)
    )
    return list(dict.fromkeys(row[0] for row in rows))


async def median_latencies(
    conn: AsyncConnection, since: datetime, min_samples: int = 5
) -> dict[str, float]:
    """Median latency of successful calls per provider, where there are enough."""
    rows = await conn.execute(
        select(calls.c.provider, calls.c.duration_ms).where(
            calls.c.started_at >= since, calls.c.outcome == OK
        )
    )
    samples: dict[str, list[int]] = {}
    for provider, duration in rows.tuples():
        samples.setdefault(str(provider), []).append(int(duration))
    return {
        provider: float(sorted(values)[len(values) // 2])
        for provider, values in samples.items()
        if len(values) >= min_samples
    }


async def all_breakers(conn: AsyncConnection) -> dict[str, Breaker]:
    rows = await conn.execute(select(breakers))
    return {
        row["provider"]: Breaker(BreakerState(row["state"]), row["opened_at"])
        for row in rows.mappings()
    }


async def trip(conn: AsyncConnection, provider: str, now: datetime) -> bool:
    """Open a closed circuit (a missing row is closed); False if it was not closed."""
    values = {"state": BreakerState.OPEN.value, "opened_at": now, "updated_at": now}
    statement = (
        dialect_insert(conn, breakers)
        .values(provider=provider, **values)
        .on_conflict_do_update(
            index_elements=["provider"],
            set_=values,
            where=breakers.c.state == BreakerState.CLOSED.value,
        )
        .returning(breakers.c.provider)
    )
    return (await conn.execute(statement)).first() is not None


async def reopen(conn: AsyncConnection, provider: str, now: datetime) -> None:
    """The probe failed: open again, for another ``open_s``."""
    await conn.execute(
        update(breakers)
        .where(breakers.c.provider == provider, breakers.c.state == BreakerState.HALF_OPEN.value)
        .values(state=BreakerState.OPEN.value, opened_at=now, updated_at=now)
    )


async def claim_probe(conn: AsyncConnection, provider: str, now: datetime, open_s: float) -> bool:
    """Move an open circuit, open long enough, to half-open: the caller's call is the
    probe. Of several workers asking at once, one gets True."""
    due = now - timedelta(seconds=open_s)
    result = await conn.execute(
        update(breakers)
        .where(
            breakers.c.provider == provider,
            breakers.c.state == BreakerState.OPEN.value,
            breakers.c.opened_at <= due,
        )
        .values(state=BreakerState.HALF_OPEN.value, updated_at=now)
        .returning(breakers.c.provider)
    )
    return result.first() is not None


async def close_breaker(conn: AsyncConnection, provider: str, now: datetime) -> None:
    await conn.execute(
        update(breakers)
        .where(breakers.c.provider == provider, breakers.c.state != BreakerState.CLOSED.value)
        .values(state=BreakerState.CLOSED.value, opened_at=None, updated_at=now)
    )


async def release_stale_probe(
    conn: AsyncConnection, provider: str, now: datetime, older_than: datetime
) -> None:
    """A probe whose worker died never reports: after a while, open the circuit again
    so another probe can be claimed."""
    await conn.execute(
        update(breakers)
        .where(
            breakers.c.provider == provider,
            breakers.c.state == BreakerState.HALF_OPEN.value,
            breakers.c.updated_at < older_than,
        )
        .values(state=BreakerState.OPEN.value, opened_at=older_than, updated_at=now)
    )


async def take_slot(
    conn: AsyncConnection, provider: str, size: int, holder: str, now: datetime, ttl_s: float
) -> bool:
    """Hold one of ``provider``'s ``size`` slots until released or ``ttl_s`` passes
    (a holder that died). False: all are held."""
    existing = await conn.scalar(select(func.count()).where(slots.c.provider == provider))
    if (existing or 0) < size:
        await conn.execute(
            _slot_insert(conn),
            [{"provider": provider, "slot": n, "holder": None} for n in range(size)],
        )
    free = or_(slots.c.holder.is_(None), slots.c.expires_at < now)
    candidate = (
        select(slots.c.slot)
        .where(slots.c.provider == provider, slots.c.slot < size, free)
        .limit(1)
        .scalar_subquery()
    )
    result = await conn.execute(
        update(slots)
        .where(and_(slots.c.provider == provider, slots.c.slot == candidate, free))
        .values(holder=holder, expires_at=now + timedelta(seconds=ttl_s))
        .returning(slots.c.slot)
    )
    return result.first() is not None


def _slot_insert(conn: AsyncConnection) -> Insert:
    return dialect_insert(conn, slots).on_conflict_do_nothing(index_elements=["provider", "slot"])


async def release_slot(conn: AsyncConnection, provider: str, holder: str) -> None:
    await conn.execute(
        update(slots)
        .where(slots.c.provider == provider, slots.c.holder == holder)
        .values(holder=None, expires_at=None)
    )
