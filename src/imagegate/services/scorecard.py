"""Each provider's capabilities, breaker and scorecard, from imagegate's own telemetry
(``provider_calls``): the brief's provider checklist, with measured values beside the
configured facts and the overall score (domain/scorecard.py has the formula)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from imagegate.db import providers_repo
from imagegate.db.providers_repo import CallCounts, CallError
from imagegate.domain import scorecard as checklist
from imagegate.domain.circuit_breaker import Breaker
from imagegate.providers.registry import ModelChoice, ProviderEntry
from imagegate.runtime import Runtime

WINDOW = timedelta(hours=24)
# Latency percentiles over at most this many of a provider's latest successful calls
# (counts and rates cover the whole window: the database sums them).
SAMPLE = 1000


@dataclass(frozen=True)
class Scorecard:
    calls: int
    success_rate: float | None
    moderation_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    mean_cost_per_image_usd: float | None
    last_error: dict[str, Any] | None
    # The checklist's measured item, 1-5 (None over too few calls).
    reliability: int | None = None


@dataclass(frozen=True)
class ProviderReport:
    entry: ProviderEntry
    breaker: Breaker
    scorecard: Scorecard

    @property
    def overall(self) -> checklist.Overall:
        facts = {name: fact.score for name, fact in self.entry.table.facts.given().items()}
        return checklist.overall(facts, self.scorecard.reliability)


async def report(rt: Runtime, workspace_id: str) -> list[ProviderReport]:
    """Every configured provider as seen by ``workspace_id``: the figures are
    everyone's, but an error's text only its own workspace's (it can echo a prompt)."""
    since = rt.clock.now() - WINDOW
    names = [entry.name for entry in rt.providers.entries()]
    async with rt.db.connect() as conn:
        counts = await providers_repo.call_counts(conn, since, names)
        latencies = await providers_repo.latency_percentiles(
            conn, since, {name: c.ok for name, c in counts.items()}, (50, 95), SAMPLE
        )
        errors = await providers_repo.last_errors(conn, since, names)
        breakers = await providers_repo.all_breakers(conn)
    return [
        ProviderReport(
            entry,
            breakers.get(entry.name, Breaker()),
            score(
                counts.get(entry.name),
                latencies.get(entry.name, {}),
                errors.get(entry.name),
                workspace_id,
            ),
        )
        for entry in rt.providers.entries()
    ]


def score(
    counts: CallCounts | None,
    latencies: dict[float, float],
    error: CallError | None,
    workspace_id: str,
) -> Scorecard:
    if counts is None or counts.calls == 0:
        return Scorecard(0, None, None, None, None, None, None)
    return Scorecard(
        calls=counts.calls,
        success_rate=round(counts.ok / counts.calls, 4),
        moderation_rate=round(counts.moderated / counts.calls, 4),
        p50_ms=latencies.get(50.0),
        p95_ms=latencies.get(95.0),
        mean_cost_per_image_usd=(
            round(counts.cost_usd / counts.images, 6) if counts.images else None
        ),
        last_error=_error(error, workspace_id) if error else None,
        reliability=checklist.reliability_points(counts.calls, counts.ok, counts.moderated),
    )


def _error(error: CallError, workspace_id: str) -> dict[str, Any]:
    at: datetime = error.at
    own = error.workspace_id is not None and error.workspace_id == workspace_id
    return {"code": error.code, "message": error.message if own else None, "at": at.isoformat()}


def model_names(entry: ProviderEntry) -> list[str]:
    return [ModelChoice(entry.name, model).name for model in entry.models]
