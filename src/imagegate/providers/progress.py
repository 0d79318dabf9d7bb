"""Progress that only moves forward, for adapters to hand the runner.

Providers report progress unevenly: a status poll may say less than the last one (a
queue position after a retry), a model's logs may run a progress bar twice (SDXL's
refiner starts again from 0 %), several tasks or sampler nodes finish at their own
pace. A job's progress bar must never move back, so every adapter reports through one
of these two."""

from __future__ import annotations

from collections.abc import Hashable

from imagegate.providers.base import ProgressCallback


class ForwardProgress:
    """Passes a fraction on only when it is higher than every one before it; values
    are capped at ``ceiling`` (adapters that report 1.0 themselves only once the
    images are in hand pass 0.99)."""

    def __init__(self, callback: ProgressCallback, ceiling: float = 1.0) -> None:
        self._callback, self._ceiling = callback, ceiling
        self._last: float | None = None

    async def __call__(self, fraction: float) -> None:
        fraction = min(self._ceiling, fraction)
        if self._last is None or fraction > self._last:
            self._last = fraction
            await self._callback(fraction)


class PartsProgress:
    """Progress of a job made of parts (one task or sampler node per image): the mean
    of the parts' fractions over at least ``parts`` parts, forward only. A part's own
    fraction never goes back either."""

    def __init__(self, callback: ProgressCallback, parts: int, ceiling: float = 1.0) -> None:
        self._forward = ForwardProgress(callback, ceiling)
        self._parts, self._done = max(1, parts), dict[Hashable, float]()

    async def update(self, part: Hashable, fraction: float) -> None:
        if part not in self._done and len(self._done) >= 4 * self._parts:
            return  # more parts than a job has images: a stray id, not progress
        self._done[part] = max(self._done.get(part, 0.0), min(1.0, max(0.0, fraction)))
        await self._forward(sum(self._done.values()) / max(self._parts, len(self._done)))
