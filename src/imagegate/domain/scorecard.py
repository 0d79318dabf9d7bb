"""The brief's provider-selection checklist ("simple scoring checklist, 1-5") as pure
functions: which items it has, where each one's points come from, and the overall score.

Most items are facts an operator knows and configures per provider
(``[providers.<name>.facts]``, each 1-5 with a note); reliability is measured by
imagegate itself, from the provider's calls in the scorecard's window. The overall score
is the plain mean of the items that have points, rounded to one decimal: the brief ranks
no item above another, and an item nobody rated or measured is left out rather than
guessed (so a provider with nothing rated or measured has no score at all, not a low
one). Latency, cost per image and the moderation rate are shown beside the score but
not in it: they are not checklist items, and whether 30 s or $0.04 is good depends on
the job, not on the provider."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

# The configurable facts, in the checklist's order; each is 1-5.
FACTS: tuple[str, ...] = (
    "compliance_comfort",  # terms and compliance: is this use of the provider allowed?
    "cost_predictability",  # usage-based list prices (5) ... volatile wrapper credits (1)
    "output_quality",
    "status_clarity",  # webhooks and job-status clarity of the upstream's API
    "data_retention",  # privacy: what the provider keeps of prompts and images, how long
    "support",  # support responsiveness
    "commercial_terms",  # commercial-use terms: may its images go into a product?
)
RELIABILITY = "reliability"
# Every item of the overall score: the measured one first, then the facts.
ITEMS: tuple[str, ...] = (RELIABILITY, *FACTS)
MIN_POINTS, MAX_POINTS = 1, 5

# Reliability is measured only over enough calls for a rate to mean something.
RELIABILITY_MIN_CALLS = 20
# Success rate (moderated calls left out: a refused prompt says nothing about uptime)
# → points: at least 99 % is 5, ... below 85 % is 1.
RELIABILITY_STEPS: tuple[tuple[float, int], ...] = ((0.99, 5), (0.97, 4), (0.93, 3), (0.85, 2))


def reliability_points(calls: int, ok: int, moderated: int) -> int | None:
    """The reliability item's points from a window's call counts; None below
    :data:`RELIABILITY_MIN_CALLS` calls that were not moderated."""
    counted = calls - moderated
    if counted < RELIABILITY_MIN_CALLS:
        return None
    rate = ok / counted
    return next((points for floor, points in RELIABILITY_STEPS if rate >= floor), MIN_POINTS)


@dataclass(frozen=True)
class Overall:
    """The overall score (None when no item has points) and the items it counts."""

    score: float | None
    items: dict[str, int]


def overall(facts: Mapping[str, int], reliability: int | None) -> Overall:
    """The mean of the items that have points: ``facts`` (by name, from :data:`FACTS`)
    and the measured ``reliability``. Raises ValueError on an unknown item or points
    outside 1-5 (the configuration validates them first; this is the last guard)."""
    items = {RELIABILITY: reliability} if reliability is not None else {}
    items.update(facts)
    for name, points in items.items():
        if name not in ITEMS:
            raise ValueError(f"not a checklist item: {name!r}")
        if not MIN_POINTS <= points <= MAX_POINTS:
            raise ValueError(f"{name}: {points} is outside {MIN_POINTS}-{MAX_POINTS}")
    ordered = {name: items[name] for name in ITEMS if name in items}
    if not ordered:
        return Overall(None, {})
    return Overall(round(sum(ordered.values()) / len(ordered), 1), ordered)


def meets_floor(compliance: int | None, floor: int | None) -> bool:
    """Whether a provider with ``compliance`` comfort may serve a workspace that asks
    for at least ``floor``. Unrated fails any floor: a floor is a compliance promise,
    and a provider nobody vouched for cannot keep it."""
    return floor is None or (compliance is not None and compliance >= floor)
