"""/api/image/moderation: what the moderation pipeline refused (admin keys)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from imagegate.api.deps import PrincipalDep, RuntimeDep
from imagegate.api.moderation_schemas import ModerationDecisionPublic, ModerationDecisionsPublic
from imagegate.api.openapi import AUTHENTICATED, problems
from imagegate.services import moderation as service

router = APIRouter(prefix="/api/image/moderation", tags=["moderation"])


@router.get(
    "",
    response_model=ModerationDecisionsPublic,
    operation_id="list_moderation_decisions",
    responses=problems(*AUTHENTICATED, 400, 403, 422),
)
async def list_decisions(
    rt: RuntimeDep,
    principal: PrincipalDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    stage: str | None = None,
    category: str | None = None,
) -> ModerationDecisionsPublic:
    """The workspace's refusals, newest first: prompts refused at create and jobs a
    provider refused. Admin keys only (403 otherwise): they hold prompts."""
    page = await service.list_decisions(
        rt, principal, cursor=cursor, limit=limit, stage=stage, category=category
    )
    return ModerationDecisionsPublic(
        data=[ModerationDecisionPublic.from_record(d) for d in page.decisions],
        next_cursor=page.next_cursor,
        has_more=page.next_cursor is not None,
    )
