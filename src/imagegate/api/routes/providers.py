"""``GET /api/image/providers``: what each provider can do and how it is doing."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from imagegate.api.deps import PrincipalDep, RuntimeDep
from imagegate.api.openapi import AUTHENTICATED, problems
from imagegate.services import scorecard

router = APIRouter(prefix="/api/image/providers", tags=["providers"])


class ProviderPublic(BaseModel):
    name: str
    type: str
    models: list[str]
    capabilities: dict[str, Any]
    priority: int
    concurrency: int | None
    rate_limit: str | None
    prices_usd_per_image: dict[str, dict[str, float]]
    breaker: dict[str, Any]
    scorecard: dict[str, Any]
    # The checklist items an operator configured: {item: {"score": 1-5, "note"}}.
    facts: dict[str, dict[str, Any]]
    # The checklist's overall 1-5 (None: nothing rated or measured) and its items.
    overall: dict[str, Any]


class ProvidersPublic(BaseModel):
    data: list[ProviderPublic]
    routing: dict[str, Any]


@router.get(
    "",
    response_model=ProvidersPublic,
    operation_id="list_providers",
    responses=problems(*AUTHENTICATED),
)
async def list_providers(rt: RuntimeDep, principal: PrincipalDep) -> ProvidersPublic:
    """Capabilities, prices, circuit breaker and a live scorecard (last 24 h; latency
    over the 1,000 latest successful calls) for every configured provider, with the
    configured facts and the overall 1-5 score of the provider checklist. An error's
    text is shown only to the workspace whose job it was; others see its code."""
    reports = await scorecard.report(rt, principal.workspace_id)
    config = rt.providers.config
    return ProvidersPublic(
        data=[_public(r) for r in reports],
        routing={
            "policy": config.policy_for(principal.workspace_name).value,
            "max_providers": config.routing.max_providers,
            "min_compliance": config.min_compliance_for(principal.workspace_name),
            "prefer": config.routing.prefer.model_dump(mode="json"),
            "breaker": config.breaker.model_dump(),
        },
    )


def _public(r: scorecard.ProviderReport) -> ProviderPublic:
    caps = r.entry.provider.capabilities()
    card = r.scorecard
    overall = r.overall
    return ProviderPublic(
        name=r.entry.name,
        type=r.entry.type,
        models=scorecard.model_names(r.entry),
        capabilities={
            "actions": [a.value for a in caps.actions],
            "modes": [m.value for m in caps.modes],
            "max_images": caps.max_images,
            "seeds": caps.seeds,
            "negative_prompt": caps.negative_prompt,
            "max_pixels": caps.max_pixels,
        },
        priority=r.entry.table.priority,
        concurrency=r.entry.table.concurrency,
        rate_limit=r.entry.table.rate_limit,
        prices_usd_per_image=r.entry.table.prices,
        breaker={
            "state": r.breaker.state.value,
            "opened_at": r.breaker.opened_at.isoformat() if r.breaker.opened_at else None,
        },
        scorecard={
            "window_s": int(scorecard.WINDOW.total_seconds()),
            "calls": card.calls,
            "success_rate": card.success_rate,
            "moderation_rate": card.moderation_rate,
            "latency_ms": {"p50": card.p50_ms, "p95": card.p95_ms},
            "mean_cost_per_image_usd": card.mean_cost_per_image_usd,
            "last_error": card.last_error,
        },
        facts={name: fact.model_dump() for name, fact in r.entry.table.facts.given().items()},
        overall={"score": overall.score, "items": overall.items},
    )
