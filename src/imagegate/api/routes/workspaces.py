"""/api/image/workspaces (the operator key): every workspace, and a new one with its
first admin key."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from imagegate.api.deps import ActorDep, PrincipalDep, RuntimeDep
from imagegate.api.idempotency import IdempotencyKeyHeader, idempotent, respond
from imagegate.api.key_schemas import (
    KeyPublic,
    KeyWithSecret,
    WorkspaceCreate,
    WorkspaceCreated,
    WorkspacePublic,
    WorkspacesPublic,
)
from imagegate.api.openapi import AUTHENTICATED, WITH_BODY, problems
from imagegate.api.plan_schemas import PlanAssign
from imagegate.services import idempotency, keys, quotas
from imagegate.services import workspaces as service
from imagegate.services.idempotency import Answer

router = APIRouter(prefix="/api/image/workspaces", tags=["keys"])


@router.get("", response_model=WorkspacesPublic, operation_id="list_workspaces",
            responses=problems(*AUTHENTICATED, 403))  # fmt: skip
async def list_workspaces(
    rt: RuntimeDep,
    principal: PrincipalDep,
    after: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> WorkspacesPublic:
    """Every workspace by name, with its count of active keys."""
    found = await service.list_all(rt, principal, after=after, limit=limit + 1)
    page = found[:limit]
    more = len(found) > limit
    return WorkspacesPublic(
        data=[WorkspacePublic.from_info(w) for w in page],
        next_cursor=page[-1].name if more and page else None,
    )


@router.post("", status_code=201, response_model=WorkspaceCreated,
             operation_id="create_workspace",
             responses=problems(*AUTHENTICATED, *WITH_BODY, 403))  # fmt: skip
async def create_workspace(
    body: WorkspaceCreate,
    rt: RuntimeDep,
    principal: PrincipalDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """A new workspace and its first admin key (the secret in this answer only);
    409 `invalid_state` if one of that name exists."""

    async def create() -> Answer:
        new = await service.open_workspace(rt, principal, actor, body.name)
        info = await keys.key_info(rt, new.key_id)
        key = KeyWithSecret(**KeyPublic.from_info(info).model_dump(), secret=new.secret)
        created = WorkspaceCreated(workspace_id=new.workspace_id, name=new.workspace, admin_key=key)
        return Answer(201, created.model_dump(mode="json"), new.workspace_id)

    request = idempotent(idempotency_key, "create_workspace", body)
    answer = await idempotency.run(rt, principal, request, create, sealed=("admin_key",))
    return respond(answer)


@router.put("/{name}/plan", status_code=204, operation_id="assign_plan",
            responses=problems(*AUTHENTICATED, *WITH_BODY, 403, 404))  # fmt: skip
async def assign_plan(
    name: str, body: PlanAssign, rt: RuntimeDep, principal: PrincipalDep, actor: ActorDep
) -> Response:
    """Put the workspace on a plan of the configuration file (`null`: back to the
    file's own choice); its keys see it within the key cache's TTL. Audited."""
    await quotas.assign(rt, principal, actor, name, body.plan)
    return Response(status_code=204)
