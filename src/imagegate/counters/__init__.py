"""Counters shared by every API process: in Redis when ``IMAGEGATE_REDIS_URL`` is set,
in this process otherwise. Rate limits count here now; quotas will later."""

from __future__ import annotations

from imagegate.clock import Clock
from imagegate.counters.base import Count, CounterStore, CountersUnavailable
from imagegate.counters.memory import MemoryCounterStore
from imagegate.counters.redis import RedisCounterStore

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
