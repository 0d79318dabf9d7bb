"""The circuit breaker as pure rules: when a provider's circuit opens, lets a probe
through, and closes. engine/routing.py applies them to what the database knows of
recent calls (db/providers_repo.py keeps each provider's state)."""

from __future__ import annotations

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
