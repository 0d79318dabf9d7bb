"""The Redis counter store against the real local Redis: two store instances stand for
two API processes (each has its own client and connections)."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from imagegate.rate_limits import CountersUnavailable, RedisCounterStore
from imagegate.rate_limits.base import sliding_total
from tests.support.server import free_port

REDIS_URL = os.environ.get("IMAGEGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def prefix() -> str:
    """Keys of this test only."""
    return f"imagegate-test:{uuid.uuid4().hex}:"


@pytest.fixture
async def stores(prefix: str) -> AsyncIterator[tuple[RedisCounterStore, RedisCounterStore]]:
    one = RedisCounterStore.from_url(REDIS_URL, prefix=prefix)
    two = RedisCounterStore.from_url(REDIS_URL, prefix=prefix)
    yield one, two
    await one.close()
    await two.close()


@pytest.fixture
async def raw() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def test_two_processes_share_one_count(
    stores: tuple[RedisCounterStore, RedisCounterStore],
) -> None:
    one, two = stores
    accepted = []
    for i in range(8):
        store = one if i % 2 else two
        accepted.append((await store.add("k", 1, 3600, limit=5)).accepted)
    assert accepted == [True] * 5 + [False] * 3
    assert (await one.add("k", 0, 3600)).total == (await two.add("k", 0, 3600)).total == 5


async def test_concurrent_hits_never_pass_the_limit(
    stores: tuple[RedisCounterStore, RedisCounterStore],
) -> None:
    one, two = stores
    hits = [store.add("burst", 1, 3600, limit=50) for _ in range(150) for store in (one, two)]
    counts = await asyncio.gather(*hits)
    assert sum(c.accepted for c in counts) == 50
    assert (await one.add("burst", 0, 3600)).total == 50


async def test_amounts_without_a_limit_for_quotas(
    stores: tuple[RedisCounterStore, RedisCounterStore],
) -> None:
    one, two = stores
    assert (await one.add("credits", 40, 86400)).total == 40
    assert (await two.add("credits", 25, 86400)).total == 65
    assert not (await one.add("credits", 50, 86400, limit=100)).accepted
    assert (await two.add("credits", 35, 86400, limit=100)).total == 100


async def test_a_counter_keeps_two_windows_and_expires(
    stores: tuple[RedisCounterStore, RedisCounterStore], raw: Redis, prefix: str
) -> None:
    one, _ = stores
    await one.add("k", 3, 60)
    name = f"{prefix}k:60"
    assert len(await raw.hgetall(name)) == 1
    assert 0 < await raw.pttl(name) <= 120_000


async def test_redis_decides_as_the_python_arithmetic_says(
    stores: tuple[RedisCounterStore, RedisCounterStore],
) -> None:
    """Over a one-second window, fill one window, then hit through the next while the
    previous one fades: every decision made in Lua matches ``sliding_total``."""
    one, two = stores
    deadline = time.monotonic() + 10
    while (await one.add("fill", 0, 1)).elapsed_ms > 300:  # early in a window ...
        assert time.monotonic() < deadline, "no window began"
    for _ in range(20):  # ... so that all 20 land in it
        await one.add("fill", 1, 1)
    while (count := await two.add("fill", 0, 1)).previous != 20:
        assert time.monotonic() < deadline, "the window did not turn over"
    decisions = 0
    while count.previous == 20 and time.monotonic() < deadline:
        count = await two.add("fill", 1, 1, limit=12)
        before = count.current - 1 if count.accepted else count.current
        fits = sliding_total(count.previous, before, count.elapsed_ms, count.window_ms) + 1 <= 12
        assert count.accepted == fits, count
        decisions += 1
    assert decisions > 10


async def test_unreachable_redis_raises_unavailable_fast() -> None:
    store = RedisCounterStore.from_url(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(CountersUnavailable):
            await store.add("k", 1, 60, limit=1)
        with pytest.raises(CountersUnavailable):  # in its cooldown: not even tried
            await store.ping()
    finally:
        await store.close()
