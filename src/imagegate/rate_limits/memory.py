"""Counters in this process's memory: enough for one API process, and for tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from imagegate.clock import Clock
from imagegate.rate_limits.base import Count, sliding_total

# Every this many adds, forget counters idle for two windows, so that counters keyed
# by something unbounded (end users, for quotas) do not grow without end.
SWEEP_EVERY = 4096
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(slots=True)
class _Slot:
    index: int  # which fixed window ``current`` counts: epoch milliseconds // window
    previous: int
    current: int


class MemoryCounterStore:
    backend = "memory"

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._slots: dict[tuple[str, int], _Slot] = {}
        self._adds = 0

    async def add(self, key: str, amount: int, window_s: int, limit: int | None = None) -> Count:
        # Nothing below awaits, so no other task on this loop can run between reading
        # the count and adding to it: atomic without a lock.
        window_ms = window_s * 1000
        now_ms = (self._clock.now() - EPOCH) // timedelta(milliseconds=1)  # exact, unlike floats
        index, elapsed = divmod(now_ms, window_ms)
        slot = self._advance(key, window_s, index)
        total = sliding_total(slot.previous, slot.current, elapsed, window_ms)
        accepted = limit is None or total + amount <= limit
        if accepted:
            slot.current += amount
        self._adds += 1
        if self._adds % SWEEP_EVERY == 0:
            self._sweep(now_ms)
        return Count(accepted, slot.previous, slot.current, elapsed, window_ms)

    def _advance(self, key: str, window_s: int, index: int) -> _Slot:
        """The counter's slot, moved on to window ``index``."""
        slot = self._slots.get((key, window_s))
        if slot is None or slot.index < index - 1:
            slot = _Slot(index, 0, 0)
        elif slot.index == index - 1:
            slot = _Slot(index, slot.current, 0)
        # (A slot ahead of ``index`` means the clock stepped back: keep counting in it.)
        self._slots[(key, window_s)] = slot
        return slot

    def _sweep(self, now_ms: int) -> None:
        idle = [
            name
            for name, slot in self._slots.items()
            if slot.index < now_ms // (name[1] * 1000) - 1
        ]
        for name in idle:
            del self._slots[name]

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        self._slots.clear()
