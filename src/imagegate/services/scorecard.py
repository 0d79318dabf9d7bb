"""Each provider's capabilities, breaker and scorecard, from imagegate's own telemetry
(``provider_calls``): the brief's provider checklist, with measured values."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from imagegate.db import providers_repo
from imagegate.db.providers_repo import MODERATED, OK, CallRow
from imagegate.domain.circuit_breaker import Breaker
from imagegate.domain.routing import percentile
from imagegate.providers.registry import ModelChoice, ProviderEntry
from imagegate.runtime import Runtime

WINDOW = timedelta(hours=24)
# Percentiles and rates over at most this many recent calls per provider.
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


@dataclass(frozen=True)
class ProviderReport:
    entry: ProviderEntry
    breaker: Breaker
    scorecard: Scorecard


async def report(rt: Runtime) -> list[ProviderReport]:
    now = rt.clock.now()
    async with rt.db.connect() as conn:
        recent = await providers_repo.recent_calls(conn, now - WINDOW, SAMPLE)
        breakers = await providers_repo.all_breakers(conn)
    return [
        ProviderReport(
            entry, breakers.get(entry.name, Breaker()), score(recent.get(entry.name, []))
        )
        for entry in rt.providers.entries()
    ]


def score(calls: list[CallRow]) -> Scorecard:
    if not calls:
        return Scorecard(0, None, None, None, None, None, None)
    ok = [c for c in calls if c.outcome == OK]
    images = sum(c.images for c in ok)
    failures = [c for c in calls if c.outcome not in {OK, MODERATED}]
    last = max(failures, key=lambda c: c.started_at) if failures else None
    return Scorecard(
        calls=len(calls),
        success_rate=round(len(ok) / len(calls), 4),
        moderation_rate=round(sum(c.outcome == MODERATED for c in calls) / len(calls), 4),
        p50_ms=percentile([c.duration_ms for c in ok], 50),
        p95_ms=percentile([c.duration_ms for c in ok], 95),
        mean_cost_per_image_usd=round(sum(c.cost_usd for c in ok) / images, 6) if images else None,
        last_error=_error(last) if last else None,
    )


def _error(call: CallRow) -> dict[str, Any]:
    at: datetime = call.started_at
    return {"code": call.error_code, "message": call.error_message, "at": at.isoformat()}


def model_names(entry: ProviderEntry) -> list[str]:
    return [ModelChoice(entry.name, model).name for model in entry.models]
