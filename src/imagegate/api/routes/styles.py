"""/api/image/styles: the built-in style presets and the workspace's own."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from imagegate.api.deps import PrincipalDep, RuntimeDep
from imagegate.api.idempotency import IdempotencyKeyHeader, idempotent, respond
from imagegate.api.openapi import AUTHENTICATED, WITH_BODY, problems
from imagegate.api.style_schemas import StyleCreate, StylePublic, StylesPublic, StyleUpdate
from imagegate.domain.presets import Preset
from imagegate.services import idempotency
from imagegate.services import styles as service
from imagegate.services.idempotency import Answer

router = APIRouter(prefix="/api/image/styles", tags=["styles"])

READ_ONE = problems(*AUTHENTICATED, 404)
WRITE = problems(*AUTHENTICATED, *WITH_BODY)
WRITE_ONE = problems(*AUTHENTICATED, *WITH_BODY, 404)


def _answer(status: int, preset: Preset) -> Answer:
    return Answer(status, StylePublic.from_preset(preset).model_dump(mode="json"), preset.name)


@router.get(
    "", response_model=StylesPublic, operation_id="list_styles", responses=problems(*AUTHENTICATED)
)
async def list_styles(rt: RuntimeDep, principal: PrincipalDep) -> StylesPublic:
    """The built-in presets (``builtin: true``), then the workspace's own by name."""
    found = await service.list_presets(rt, principal)
    return StylesPublic(data=[StylePublic.from_preset(p) for p in found])


@router.post(
    "", status_code=201, response_model=StylePublic, operation_id="create_style", responses=WRITE
)
async def create_style(
    body: StyleCreate,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Add a preset to the workspace: 409 ``style_exists`` if it has one of that name,
    ``builtin_style`` for a built-in name, ``style_limit_reached`` past the limit."""

    async def create() -> Answer:
        fields = body.model_dump(exclude_unset=True, exclude={"name"})
        return _answer(201, await service.create(rt, principal, body.name, fields))

    answer = await idempotency.run(
        rt, principal, idempotent(idempotency_key, "create_style", body), create
    )
    # From the stored answer: a replay has no resource id of its own.
    return respond(answer, {"Location": f"/api/image/styles/{answer.body['name']}"})


@router.get("/{name}", response_model=StylePublic, operation_id="get_style", responses=READ_ONE)
async def get_style(name: str, rt: RuntimeDep, principal: PrincipalDep) -> StylePublic:
    """A built-in preset or one of the workspace's."""
    return StylePublic.from_preset(await service.get(rt, principal, name))


@router.patch(
    "/{name}", response_model=StylePublic, operation_id="update_style", responses=WRITE_ONE
)
async def update_style(
    name: str,
    body: StyleUpdate,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Change the fields given (jobs already made keep the preset as it was)."""

    async def update() -> Answer:
        changes = body.model_dump(exclude_unset=True)
        return _answer(200, await service.update(rt, principal, name, changes))

    request = idempotent(idempotency_key, "update_style", body, name=name)
    return respond(await idempotency.run(rt, principal, request, update))


@router.delete("/{name}", status_code=204, operation_id="delete_style", responses=WRITE_ONE)
async def delete_style(
    name: str,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Response:
    """Remove the preset (jobs made with it keep their copy)."""

    async def delete() -> Answer:
        await service.delete(rt, principal, name)
        return Answer(204, {}, name)

    answer = await idempotency.run(
        rt, principal, idempotent(idempotency_key, "delete_style", name=name), delete
    )
    headers = {"Idempotent-Replayed": "true"} if answer.replayed else None
    return Response(status_code=204, headers=headers)
