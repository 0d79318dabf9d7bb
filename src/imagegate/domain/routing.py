"""Routing rules as pure functions: which candidate first, and when a provider's
circuit opens, lets a probe through, and closes. services/routing.py feeds them what
the database knows."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"  # calls flow
    OPEN = "open"  # calls are refused until ``open_s`` has passed
    HALF_OPEN = "half_open"  # one probe call is in flight; its outcome decides


@dataclass(frozen=True)
class BreakerRules:
    window_s: float = 60.0
    min_calls: int = 10
    failure_rate: float = 0.5
    open_s: float = 30.0


@dataclass(frozen=True)
class Breaker:
    state: BreakerState = BreakerState.CLOSED
    opened_at: datetime | None = None

    def probe_due(self, now: datetime, rules: BreakerRules) -> bool:
        """An open circuit lets one probe through once it has been open ``open_s``."""
        return (
            self.state is BreakerState.OPEN
            and self.opened_at is not None
            and now - self.opened_at >= timedelta(seconds=rules.open_s)
        )

    def seconds_to_probe(self, now: datetime, rules: BreakerRules) -> float:
        if self.state is not BreakerState.OPEN or self.opened_at is None:
            return 0.0
        due = self.opened_at + timedelta(seconds=rules.open_s)
        return max(0.0, (due - now).total_seconds())


def should_open(calls: int, failures: int, rules: BreakerRules) -> bool:
    """A closed circuit opens when, over the window, enough calls were made and too
    many of them failed. Moderated calls count as neither: the provider worked."""
    return calls >= rules.min_calls and failures / calls >= rules.failure_rate


@dataclass(frozen=True)
class Candidate:
    """A (provider, model) able to do the job, with what the policies compare."""

    provider: str
    model: str
    priority: int
    order: int
    price: float | None = None
    median_ms: float | None = None


def ranked(candidates: list[Candidate], policy: str) -> list[Candidate]:
    """Best first. ``cheapest``: lowest price (unpriced last); ``fastest``: lowest
    measured median latency (unmeasured last, so a new provider is not trusted
    blindly); ties, and ``priority``, by priority then configuration order."""

    def by_priority(c: Candidate) -> tuple[int, int]:
        return (-c.priority, c.order)

    if policy == "cheapest":
        return sorted(
            candidates,
            key=lambda c: (c.price is None, c.price or 0.0, *by_priority(c)),
        )
    if policy == "fastest":
        return sorted(
            candidates,
            key=lambda c: (c.median_ms is None, c.median_ms or 0.0, *by_priority(c)),
        )
    return sorted(candidates, key=by_priority)


def nearest_rank(count: int, q: float) -> int:
    """The 1-based rank of the ``q``-th percentile among ``count`` sorted values
    (nearest-rank method): the one definition of a percentile in imagegate, used on
    lists here and as an SQL ``OFFSET`` by the scorecard and ``fastest`` routing."""
    return max(1, min(count, math.ceil(q * count / 100)))


def percentile(values: list[int], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank) of ``values``, or None without any."""
    if not values:
        return None
    return float(sorted(values)[nearest_rank(len(values), q) - 1])
