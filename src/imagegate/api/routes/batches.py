"""/api/image/batches: submit up to 100 jobs at once, follow them as one (docs/batches.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from imagegate.api import batch_body
from imagegate.api.batch_schemas import BatchCreated, BatchesPublic, BatchPublic, BatchSummary
from imagegate.api.deps import PrincipalDep, RuntimeDep
from imagegate.api.idempotency import IdempotencyKeyHeader, respond
from imagegate.api.openapi import AUTHENTICATED, WITH_BODY, problems
from imagegate.api.rate_limit_headers import remember
from imagegate.api.schemas import JobPublic
from imagegate.services import batches as batches_service

PATH = "/api/image/batches"
# This path's body cap, over the 256 KiB of the others: 100 items of the largest size a
# create body may have (prompt, negative prompt, metadata: about 15 KiB) fit.
MAX_BODY_BYTES = 2 * 1024 * 1024

router = APIRouter(prefix=PATH, tags=["batches"])


@router.post(
    "",
    status_code=202,
    response_model=BatchCreated,
    operation_id="create_batch",
    responses={**problems(*AUTHENTICATED, *WITH_BODY), **batch_body.UNSUPPORTED_MEDIA_TYPE},
    openapi_extra=batch_body.OPENAPI_BODY,
)
async def create_batch(
    request: Request,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Queue up to 100 jobs (JSON ``{items, metadata}``, or JSONL: one create body per
    line). Each item is validated alone; the answer reports each item's job or
    problem. 422 ``batch_invalid`` when no item is valid: nothing is created."""
    parsed = await batch_body.read(request)
    created = await batches_service.create(
        rt,
        principal,
        parsed.items,
        parsed.metadata,
        present_job=lambda job: JobPublic.from_record(job, rt.storage).model_dump(mode="json"),
        present_batch=lambda batch: BatchCreated.from_record(batch).model_dump(mode="json"),
        problem_of=batch_body.problem_of,
        idempotency=batch_body.idempotent_request(idempotency_key, parsed),
    )
    remember(request, created.rate_limit)
    # Built from the stored answer: only a real batch's id reaches a header.
    location = f"/api/image/batches/{created.answer.body['batch_id']}"
    return respond(created.answer, {"Location": location})


@router.get(
    "",
    response_model=BatchesPublic,
    operation_id="list_batches",
    responses=problems(*AUTHENTICATED, 400),
)
async def list_batches(
    rt: RuntimeDep,
    principal: PrincipalDep,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> BatchesPublic:
    """Your workspace's batches, newest first, each with its counts and progress."""
    page = await batches_service.list_batches(rt, principal, cursor=cursor, limit=limit)
    return BatchesPublic(
        data=[BatchSummary.from_view(view) for view in page.batches],
        next_cursor=page.next_cursor,
        has_more=page.next_cursor is not None,
    )


@router.get(
    "/{batch_id}",
    response_model=BatchPublic,
    operation_id="get_batch",
    responses=problems(*AUTHENTICATED, 404),
)
async def get_batch(batch_id: str, rt: RuntimeDep, principal: PrincipalDep) -> BatchPublic:
    """One batch: its jobs per status, overall progress, whether all have ended, and
    each item with its job's status (or the problem that refused it)."""
    view = await batches_service.get(rt, principal, batch_id)
    return BatchPublic.from_view_with_items(view, rt.storage)
