"""/api/image/quotas: the workspace's plan and where it stands against its limits."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from imagegate.api.deps import PrincipalDep, RuntimeDep
from imagegate.api.openapi import AUTHENTICATED, problems
from imagegate.api.plan_schemas import QuotasPublic
from imagegate.services import quotas as service

router = APIRouter(prefix="/api/image/quotas", tags=["credits"])


@router.get("", response_model=QuotasPublic, operation_id="get_quotas",
            responses=problems(*AUTHENTICATED))  # fmt: skip
async def get_quotas(
    rt: RuntimeDep,
    principal: PrincipalDep,
    user: Annotated[str | None, Query(max_length=200)] = None,
) -> QuotasPublic:
    """The plan, what it allows, and each limit's use this period (the per-user
    limits for `user`, when given)."""
    plan, standing = await service.standing(rt, principal, user)
    return QuotasPublic.from_plan(plan, standing)
