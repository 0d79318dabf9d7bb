"""/api/image/keys (admin keys): the workspace's API keys — create, list, read,
rotate, revoke — and /api/image/audit, its audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from imagegate.api.deps import ActorDep, PrincipalDep, RuntimeDep
from imagegate.api.idempotency import IdempotencyKeyHeader, idempotent, respond
from imagegate.api.key_schemas import (
    AuditEntryPublic,
    AuditPublic,
    KeyCreate,
    KeyPublic,
    KeyRotate,
    KeysPublic,
    KeyWithSecret,
)
from imagegate.api.openapi import AUTHENTICATED, WITH_BODY, problems
from imagegate.services import audit, idempotency
from imagegate.services import keys as service
from imagegate.services.idempotency import Answer

router = APIRouter(prefix="/api/image/keys", tags=["keys"])
audit_router = APIRouter(prefix="/api/image/audit", tags=["keys"])

ADMIN = (*AUTHENTICATED, 403)
READ_ONE = problems(*ADMIN, 404)
WRITE = problems(*ADMIN, *WITH_BODY)
WRITE_ONE = problems(*ADMIN, *WITH_BODY, 404)
PAGE = problems(*ADMIN, 400)
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post("", status_code=201, response_model=KeyWithSecret, operation_id="create_key",
             responses=WRITE)  # fmt: skip
async def create_key(
    body: KeyCreate,
    rt: RuntimeDep,
    principal: PrincipalDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """A new key for the workspace; its `secret` is in this answer only (a replay with
    the same Idempotency-Key shows it again, sealed at rest in between)."""

    async def create() -> Answer:
        new = await service.create_for(
            rt, principal, actor, name=body.name, role=body.role,
            expires_at=body.expires_at, workspace=body.workspace,
        )  # fmt: skip
        info = await service.key_info(rt, new.key_id)
        public = KeyWithSecret(**KeyPublic.from_info(info).model_dump(), secret=new.secret)
        return Answer(201, public.model_dump(mode="json"), new.key_id)

    request = idempotent(idempotency_key, "create_key", body)
    answer = await idempotency.run(rt, principal, request, create, sealed=("secret",))
    return respond(answer, {"Location": f"/api/image/keys/{answer.body['key_id']}"})


@router.get("", response_model=KeysPublic, operation_id="list_keys", responses=PAGE)
async def list_keys(
    rt: RuntimeDep, principal: PrincipalDep, cursor: str | None = None, limit: Limit = 20
) -> KeysPublic:
    """The workspace's keys, newest first, revoked ones included."""
    page = await service.list_for(rt, principal, cursor=cursor, limit=limit)
    return KeysPublic(
        data=[KeyPublic.from_info(k) for k in page.keys],
        next_cursor=page.next_cursor,
        has_more=page.next_cursor is not None,
    )


@router.get("/{key_id}", response_model=KeyPublic, operation_id="get_key", responses=READ_ONE)
async def get_key(key_id: str, rt: RuntimeDep, principal: PrincipalDep) -> KeyPublic:
    """One of the workspace's keys."""
    return KeyPublic.from_info(await service.get_for(rt, principal, key_id))


@router.post("/{key_id}/rotate", response_model=KeyWithSecret, operation_id="rotate_key",
             responses=WRITE_ONE)  # fmt: skip
async def rotate_key(
    key_id: str,
    rt: RuntimeDep,
    principal: PrincipalDep,
    actor: ActorDep,
    body: KeyRotate | None = None,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """A new secret for the key (in this answer only); the current secret keeps
    working for `grace_s` (default 24 h, at most 7 days)."""
    grace = timedelta(seconds=body.grace_s) if body is not None else None

    async def rotate() -> Answer:
        info, secret = await service.rotate_for(rt, principal, actor, key_id, grace)
        public = KeyWithSecret(**KeyPublic.from_info(info).model_dump(), secret=secret)
        return Answer(200, public.model_dump(mode="json"), key_id)

    request = idempotent(idempotency_key, "rotate_key", body, key_id=key_id)
    return respond(await idempotency.run(rt, principal, request, rotate, sealed=("secret",)))


@router.delete("/{key_id}", status_code=204, operation_id="revoke_key", responses=READ_ONE)
async def revoke_key(
    key_id: str, rt: RuntimeDep, principal: PrincipalDep, actor: ActorDep
) -> Response:
    """Revoke the key: servers refuse it within their key cache's TTL (30 s)."""
    await service.revoke_for(rt, principal, actor, key_id)
    return Response(status_code=204)


@audit_router.get("", response_model=AuditPublic, operation_id="list_audit", responses=PAGE)
async def list_audit(
    rt: RuntimeDep,
    principal: PrincipalDep,
    cursor: str | None = None,
    limit: Limit = 20,
    action: str | None = None,
    key_id: str | None = None,
) -> AuditPublic:
    """Who did what to the workspace, newest first: keys created, rotated, revoked;
    jobs canceled and requeued. Filter by `action` or by the acting `key_id`."""
    page = await audit.list_entries(
        rt, principal, cursor=cursor, limit=limit, action=action, key_id=key_id
    )
    return AuditPublic(
        data=[AuditEntryPublic.from_record(e) for e in page.entries],
        next_cursor=page.next_cursor,
        has_more=page.next_cursor is not None,
    )
