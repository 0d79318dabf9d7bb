"""/api/image/credits: the workspace's balance and ledger, and grants (admin keys)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from imagegate.api.credit_schemas import (
    BalancePublic,
    CreditsPublic,
    GrantCreate,
    LedgerEntryPublic,
    LedgerPublic,
)
from imagegate.api.deps import ActorDep, PrincipalDep, RuntimeDep
from imagegate.api.idempotency import IdempotencyKeyHeader, idempotent, respond
from imagegate.api.openapi import AUTHENTICATED, CSV_TOO, WITH_BODY, problems
from imagegate.domain.ids import new_id
from imagegate.services import credits as service
from imagegate.services import idempotency
from imagegate.services.idempotency import Answer

router = APIRouter(prefix="/api/image/credits", tags=["credits"])


@router.get("", response_model=CreditsPublic, operation_id="get_credits",
            responses=problems(*AUTHENTICATED))  # fmt: skip
async def get_credits(rt: RuntimeDep, principal: PrincipalDep) -> CreditsPublic:
    """The balance (granted, charged, reserved, available) and the last 20 entries."""
    found = await service.account(rt, principal)
    return CreditsPublic(
        **BalancePublic.from_balance(found.balance).model_dump(),
        required=found.required,
        recent=[LedgerEntryPublic.from_entry(e) for e in found.recent],
    )


@router.get("/ledger", response_model=LedgerPublic, operation_id="list_ledger",
            responses={**CSV_TOO, **problems(*AUTHENTICATED, 400)})  # fmt: skip
async def list_ledger(
    rt: RuntimeDep,
    principal: PrincipalDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    format: Literal["json", "csv"] = "json",
) -> Response:
    """The ledger, newest first; `format=csv` for a spreadsheet (the same page)."""
    page = await service.ledger(rt, principal, cursor=cursor, limit=limit)
    if format == "csv":
        headers = {"Link": f'<?cursor={page.next_cursor}>; rel="next"'} if page.next_cursor else {}
        return PlainTextResponse(service.as_csv(page.entries), media_type="text/csv",
                                 headers=headers)  # fmt: skip
    body = LedgerPublic(
        data=[LedgerEntryPublic.from_entry(e) for e in page.entries],
        next_cursor=page.next_cursor,
        has_more=page.next_cursor is not None,
    )
    return JSONResponse(body.model_dump(mode="json"))


@router.post("/grants", status_code=201, response_model=BalancePublic,
             operation_id="grant_credits",
             responses=problems(*AUTHENTICATED, *WITH_BODY, 403, 404))  # fmt: skip
async def grant_credits(
    body: GrantCreate,
    rt: RuntimeDep,
    principal: PrincipalDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Add credits (admin keys; the operator's to any workspace): the balance after.
    With an Idempotency-Key, a retried grant adds nothing twice."""
    key = idempotency_key or new_id("grant")

    async def grant() -> Answer:
        after = await service.grant(rt, principal, actor, amount=body.amount, key=key,
                                    note=body.note, workspace=body.workspace)  # fmt: skip
        return Answer(201, BalancePublic.from_balance(after).model_dump(mode="json"), None)

    request = idempotent(idempotency_key, "grant_credits", body)
    return respond(await idempotency.run(rt, principal, request, grant))
