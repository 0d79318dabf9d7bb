"""``fastest`` routing's medians, computed by the database on SQLite and PostgreSQL
over a bounded sample, and cached in the process so an attempt does not ask again."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from imagegate.db import providers_repo
from imagegate.engine import routing
from imagegate.runtime import Runtime
from imagegate.ttl_cache import TtlCache
from tests.support.runtime import MovableClock, migrated_runtime


class Ticks:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(params=["sqlite", "postgresql"])
async def rt(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with migrated_runtime(request.param, tmp_path, MovableClock()) as runtime:
        yield runtime


async def add(rt: Runtime, provider: str, ms: int, at: datetime, outcome: str = "ok") -> None:
    async with rt.db.begin() as conn:
        await providers_repo.add_call(
            conn,
            {
                "provider": provider, "model": "m", "job_id": "job_x", "workspace_id": None,
                "attempt": 1, "started_at": at, "duration_ms": ms, "outcome": outcome,
                "images": 1, "cost_usd": 0.0,
            },
        )  # fmt: skip


async def test_medians_of_the_last_hour_cached_per_provider(rt: Runtime) -> None:
    ticks = Ticks()
    rt.latency_cache = TtlCache(16, 10.0, ticks)
    now = rt.clock.now()
    for ms in (60, 10, 50, 20):
        await add(rt, "a", ms, now - timedelta(minutes=5))
    await add(rt, "a", 1, now - timedelta(minutes=5), outcome="failed")  # not a latency
    await add(rt, "a", 1, now - timedelta(minutes=61))  # outside the hour
    for ms in (7, 7, 7, 7, 7):
        await add(rt, "b", ms, now - timedelta(minutes=1))

    # "a" has 4 successes in the hour: too few to trust.
    assert await routing.median_latencies(rt, ["a", "b", "c"]) == {"b": 7.0}
    await add(rt, "a", 40, now - timedelta(minutes=1))
    await add(rt, "a", 30, now - timedelta(minutes=1))
    # Within the TTL the cached answer stands, the database is not asked.
    assert await routing.median_latencies(rt, ["a", "b"]) == {"b": 7.0}
    ticks.t = 10.0
    # 10, 20, 30, 40, 50, 60: the nearest-rank median is the 3rd.
    assert await routing.median_latencies(rt, ["a", "b"]) == {"a": 30.0, "b": 7.0}


async def test_percentiles_read_only_the_newest_sample(rt: Runtime) -> None:
    now = rt.clock.now()
    for i, ms in enumerate((1000, 900, 800, 30, 10, 20)):  # oldest first
        await add(rt, "a", ms, now - timedelta(minutes=30 - i))
    since = now - timedelta(hours=1)
    async with rt.db.connect() as conn:
        counts = await providers_repo.call_counts(conn, since)
        assert counts["a"].ok == 6
        whole = await providers_repo.latency_percentiles(conn, since, {"a": 6}, (50, 95), 100)
        newest = await providers_repo.latency_percentiles(conn, since, {"a": 6}, (50, 95), 3)
    assert whole == {"a": {50.0: 30.0, 95.0: 1000.0}}
    assert newest == {"a": {50.0: 20.0, 95.0: 30.0}}  # of 30, 10, 20 only
