"""The counter store's one operation, and the arithmetic of its sliding window.

A counter keeps its hits per fixed window (aligned to the epoch) and remembers the
window before. Its *total* counts the current window's hits plus the share of the
previous window's hits that still lies within one window of now, assuming they were
spread evenly: a sliding window in two integers, without the burst at each window's
edge that plain fixed windows allow. The previous window's share is rounded up, so
that ``total + amount <= limit`` is exactly the test an add must pass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class CountersUnavailable(Exception):
    """The counter store cannot be reached."""


@dataclass(frozen=True)
class Count:
    """A counter right after an ``add``: whether the amount was added, the hits of the
    window before and of the current one, and how far into the current window it is."""

    accepted: bool
    previous: int
    current: int
    elapsed_ms: int
    window_ms: int

    @property
    def total(self) -> int:
        return sliding_total(self.previous, self.current, self.elapsed_ms, self.window_ms)

    @property
    def window_left_s(self) -> float:
        return (self.window_ms - self.elapsed_ms) / 1000

    def seconds_until_room(self, amount: int, limit: int) -> float | None:
        """How long, if nothing more is added, until ``amount`` more stays within
        ``limit``; ``None`` if it never can."""
        room = limit - amount
        if room < 0:
            return None
        window, elapsed = self.window_ms, self.elapsed_ms
        if self.current <= room:
            # Only the previous window's share must fade, to room - current.
            fade_ms = _fade_ms(self.previous, room - self.current, window)
            return max(0.0, fade_ms - elapsed) / 1000
        # The current window's hits must become the previous window's, then fade.
        return (window - elapsed + _fade_ms(self.current, room, window)) / 1000


def _fade_ms(hits: int, allowed: int, window_ms: int) -> float:
    """How far into a window ``hits`` of the window before weigh ``allowed`` at most:
    hits * (window - e) / window <= allowed."""
    if hits <= allowed:
        return 0.0
    return window_ms - allowed * window_ms / hits


def sliding_total(previous: int, current: int, elapsed_ms: int, window_ms: int) -> int:
    # Integer arithmetic (a ceiling division), so that this process and the Redis
    # script, whose doubles are exact at these sizes, agree on every count.
    return current - (-previous * (window_ms - elapsed_ms) // window_ms)


class CounterStore(Protocol):
    backend: str

    async def add(self, key: str, amount: int, window_s: int, limit: int | None = None) -> Count:
        """Add ``amount`` to ``key``'s count over a sliding ``window_s`` unless ``limit``
        is given and the total would exceed it; return the count either way. Atomic:
        of many processes adding at once, no two both slip under the limit. An
        ``amount`` of 0 reads the counter. Raises ``CountersUnavailable``."""
        ...

    async def ping(self) -> None:
        """Raise ``CountersUnavailable`` if the store cannot be reached."""
        ...

    async def close(self) -> None: ...
