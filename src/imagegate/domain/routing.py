"""Routing rules as pure functions: which candidate comes first. engine/routing.py feeds
them what the database knows; the circuit breaker's rules are in domain/circuit_breaker.py."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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


# What each policy puts first, as a routing reason says it.
_FIRST = {
    "priority": "highest priority capable",
    "cheapest": "cheapest capable",
    "fastest": "fastest capable",
}


@dataclass(frozen=True)
class Preference:
    """What the configuration prefers for a job (``[routing.prefer]``): its named
    ``providers`` first, in that order, or every capable one ordered by ``policy``.
    ``subject`` says what it applies to, as a reason reads: ``style anime``, ``upscale``."""

    subject: str
    providers: tuple[str, ...] = ()
    policy: str | None = None


@dataclass(frozen=True)
class Plan:
    """The candidates best first, and why the first one is first."""

    order: list[Candidate]
    reason: str


def plan(candidates: list[Candidate], policy: str, preference: Preference | None) -> Plan:
    """:func:`ranked` under the job's ``policy``, with ``preference`` over it: a
    preferred policy replaces the job's; preferred providers go first in their listed
    order and the rest follow in the policy's (the fallback when they are down)."""
    if preference is not None and preference.policy is not None:
        return Plan(
            ranked(candidates, preference.policy),
            f"{_FIRST[preference.policy]} for {preference.subject}",
        )
    order = ranked(candidates, policy)
    by_policy = _FIRST.get(policy, _FIRST["priority"])
    if preference is None or not order:
        return Plan(order, by_policy)
    place = {name: i for i, name in enumerate(preference.providers)}
    order = sorted(order, key=lambda c: place.get(c.provider, len(place)))  # stable
    first = order[0].provider
    if first in place:
        return Plan(order, f"{preference.subject} prefers {first}")
    listed = ", ".join(preference.providers)
    return Plan(order, f"{preference.subject} prefers {listed}, none capable; {by_policy}")


def explain(planned: Plan, chosen: str, passed: Mapping[str, str]) -> str:
    """Why ``chosen`` took the job: the plan's reason when it was the plan's first;
    else a fallback, saying why the first was passed over (``passed``: provider →
    ``failed`` this job, circuit ``open``, ``busy``)."""
    if not planned.order or planned.order[0].provider == chosen:
        return planned.reason
    first = planned.order[0].provider
    return f"fallback: {first} {passed.get(first, 'unavailable')} ({planned.reason})"


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
