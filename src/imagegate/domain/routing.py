"""Routing rules as pure functions: which candidate comes first. engine/routing.py feeds
them what the database knows; the circuit breaker's rules are in domain/circuit_breaker.py."""

from __future__ import annotations

import math
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


def percentile(values: list[int], q: float) -> float | None:
    """The ``q``-th percentile (nearest rank) of ``values``, or None without any."""
    if not values:
        return None
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return float(ordered[max(0, min(len(ordered), rank) - 1)])
