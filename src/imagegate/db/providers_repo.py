"""Provider telemetry, circuit breakers and concurrency slots, in Core SQL.

Breaker transitions are conditional updates ("open it if it is closed"), so workers
racing on the same provider agree: exactly one of them claims a probe."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Insert,
    String,
    Table,
    and_,
    case,
    func,
    insert,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import ProviderBreaker, ProviderCall, ProviderSlot
from imagegate.db.upsert import dialect_insert
from imagegate.domain.circuit_breaker import Breaker, BreakerState
from imagegate.domain.routing import nearest_rank

calls: Table = ProviderCall.__table__  # type: ignore[assignment]
breakers: Table = ProviderBreaker.__table__  # type: ignore[assignment]
slots: Table = ProviderSlot.__table__  # type: ignore[assignment]

OK, FAILED, MODERATED = "ok", "failed", "moderated"


@dataclass(frozen=True)
class CallCounts:
    """A provider's calls over a window, counted by the database."""

    calls: int
    ok: int
    moderated: int
    images: int  # made by the successful calls
    cost_usd: float  # of the successful calls


@dataclass(frozen=True)
class CallError:
    """The latest failed call of a provider, and whose job it was."""

    code: str | None
    message: str | None
    at: datetime
    workspace_id: str | None


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


def _ok_sum(column: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((calls.c.outcome == OK, column), else_=0)), 0)


async def call_counts(
    conn: AsyncConnection, since: datetime, providers: Sequence[str] | None = None
) -> dict[str, CallCounts]:
    """Each provider's calls since ``since`` (of ``providers`` only, if given): one
    aggregate, nothing read into Python but a row per provider."""
    query = (
        select(
            calls.c.provider,
            func.count().label("calls"),
            _ok_sum(literal(1)).label("ok"),
            func.coalesce(func.sum(case((calls.c.outcome == MODERATED, 1), else_=0)), 0).label(
                "moderated"
            ),
            _ok_sum(calls.c.images).label("images"),
            _ok_sum(calls.c.cost_usd).label("cost_usd"),
        )
        .where(calls.c.started_at >= since)
        .group_by(calls.c.provider)
    )
    if providers is not None:
        query = query.where(calls.c.provider.in_(list(providers)))
    rows = await conn.execute(query)
    return {
        str(r["provider"]): CallCounts(
            int(r["calls"]),
            int(r["ok"]),
            int(r["moderated"]),
            int(r["images"]),
            float(r["cost_usd"]),
        )
        for r in rows.mappings()
    }


async def latency_percentiles(
    conn: AsyncConnection,
    since: datetime,
    ok_calls: Mapping[str, int],
    quantiles: Sequence[float],
    sample: int,
) -> dict[str, dict[float, float]]:
    """Nearest-rank percentiles of the duration of each provider's latest ``sample``
    successful calls since ``since``. ``ok_calls`` says how many successful calls each
    provider has there (from :func:`call_counts`), so each percentile is one row read
    at a known ``OFFSET`` of the bounded sample: the database reads at most ``sample``
    index entries per provider and returns one row per (provider, quantile). SQLite
    has no percentile function; this works the same on both backends."""
    parts = []
    for provider, count in ok_calls.items():
        size = min(count, sample)
        if size < 1:
            continue
        newest = (
            select(calls.c.duration_ms)
            .where(
                calls.c.provider == provider,
                calls.c.outcome == OK,
                calls.c.started_at >= since,
            )
            .order_by(calls.c.started_at.desc(), calls.c.id.desc())
            .limit(size)
            .subquery()
        )
        for q in quantiles:
            at = (
                select(newest.c.duration_ms)
                .order_by(newest.c.duration_ms)
                .offset(nearest_rank(size, q) - 1)
                .limit(1)
                .subquery()
            )
            parts.append(
                select(
                    literal(provider, String).label("provider"),
                    literal(float(q), Float).label("q"),
                    at.c.duration_ms,
                )
            )
    found: dict[str, dict[float, float]] = {}
    if not parts:
        return found
    for r in (await conn.execute(union_all(*parts))).mappings():
        found.setdefault(str(r["provider"]), {})[float(r["q"])] = float(r["duration_ms"])
    return found


async def last_errors(
    conn: AsyncConnection, since: datetime, providers: Sequence[str]
) -> dict[str, CallError]:
    """Each provider's latest failed call since ``since``: one indexed row each."""
    parts = []
    for provider in providers:
        latest = (
            select(
                calls.c.provider, calls.c.error_code, calls.c.error_message,
                calls.c.started_at, calls.c.workspace_id,
            )
            .where(
                calls.c.provider == provider,
                calls.c.outcome == FAILED,
                calls.c.started_at >= since,
            )
            .order_by(calls.c.started_at.desc(), calls.c.id.desc())
            .limit(1)
            .subquery()
        )  # fmt: skip
        parts.append(select(latest))
    if not parts:
        return {}
    rows = await conn.execute(union_all(*parts))
    return {
        str(r["provider"]): CallError(
            r["error_code"], r["error_message"], r["started_at"], r["workspace_id"]
        )
        for r in rows.mappings()
    }


async def failed_providers(conn: AsyncConnection, job_id: str) -> list[str]:
    """Providers that failed this job before, in the order they did."""
    rows = await conn.execute(
        select(calls.c.provider)
        .where(calls.c.job_id == job_id, calls.c.outcome == FAILED)
        .order_by(calls.c.id)
    )
    return list(dict.fromkeys(row[0] for row in rows))


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
