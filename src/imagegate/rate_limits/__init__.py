"""Counters shared by every API process: in Redis when ``IMAGEGATE_REDIS_URL`` is set,
in this process otherwise. Rate limits count here now; quotas will later."""

from __future__ import annotations

from imagegate.clock import Clock
from imagegate.rate_limits.base import Count, CounterStore, CountersUnavailable
from imagegate.rate_limits.memory import MemoryCounterStore
from imagegate.rate_limits.redis import RedisCounterStore

__all__ = [
    "Count",
    "CounterStore",
    "CountersUnavailable",
    "MemoryCounterStore",
    "RedisCounterStore",
    "build_counter_store",
]


def build_counter_store(redis_url: str | None, clock: Clock) -> CounterStore:
    if redis_url:
        return RedisCounterStore.from_url(redis_url)
    return MemoryCounterStore(clock)
