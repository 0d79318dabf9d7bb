"""The pure routing rules: ordering by policy, and the circuit breaker's thresholds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from imagegate.domain.circuit_breaker import Breaker, BreakerRules, BreakerState, should_open
from imagegate.domain.routing import Candidate, percentile, ranked

A = Candidate("a", "m", priority=0, order=0, price=0.04, median_ms=900)
B = Candidate("b", "m", priority=5, order=1, price=0.02, median_ms=None)
C = Candidate("c", "m", priority=0, order=2, price=None, median_ms=300)


def names(candidates: list[Candidate]) -> list[str]:
    return [c.provider for c in candidates]


def test_priority_then_file_order() -> None:
    assert names(ranked([A, B, C], "priority")) == ["b", "a", "c"]


def test_cheapest_puts_unpriced_last() -> None:
    assert names(ranked([A, B, C], "cheapest")) == ["b", "a", "c"]


def test_fastest_trusts_only_measured_latency() -> None:
    assert names(ranked([A, B, C], "fastest")) == ["c", "a", "b"]


def test_breaker_opens_on_failure_rate_with_enough_calls() -> None:
    rules = BreakerRules(window_s=60, min_calls=10, failure_rate=0.5, open_s=30)
    assert not should_open(calls=9, failures=9, rules=rules)  # too few calls to judge
    assert not should_open(calls=10, failures=4, rules=rules)
    assert should_open(calls=10, failures=5, rules=rules)


def test_an_open_breaker_lets_a_probe_through_after_open_s() -> None:
    rules = BreakerRules(open_s=30)
    opened = datetime(2026, 1, 1, tzinfo=UTC)
    breaker = Breaker(BreakerState.OPEN, opened)
    assert not breaker.probe_due(opened + timedelta(seconds=29), rules)
    assert breaker.seconds_to_probe(opened + timedelta(seconds=20), rules) == 10
    assert breaker.probe_due(opened + timedelta(seconds=30), rules)
    assert not Breaker().probe_due(opened, rules)


def test_percentile_nearest_rank() -> None:
    values = list(range(1, 101))
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile([7], 95) == 7
    assert percentile([], 50) is None
