"""Routing rules as pure functions: which candidate comes first. engine/routing.py feeds
them what the database knows; the circuit breaker's rules are in domain/circuit_breaker.py."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


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


def percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank) of ``values``, or None without any."""
    if not values:
        return None
    return float(sorted(values)[nearest_rank(len(values), q) - 1])
