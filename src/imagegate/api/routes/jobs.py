"""/api/image/jobs: create, get, list, cancel, requeue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse

from imagegate.api.deps import ActorDep, PrincipalDep, RuntimeDep
from imagegate.api.idempotency import IdempotencyKeyHeader, idempotent, respond
from imagegate.api.openapi import AUTHENTICATED, WITH_BODY, problems
from imagegate.api.rate_limit_headers import remember
from imagegate.api.schemas import ActionCreate, JobCreate, JobPublic, JobsPublic
from imagegate.domain.jobs import JobStatus
from imagegate.errors import InvalidRequest
from imagegate.services import actions as actions_service
from imagegate.services import erasure, event_feed, idempotency
from imagegate.services import jobs as jobs_service
from imagegate.services.idempotency import Answer

router = APIRouter(prefix="/api/image/jobs", tags=["jobs"])

POST_ERRORS = problems(*AUTHENTICATED, *WITH_BODY, 404)


@router.post(
    "",
    status_code=202,
    response_model=JobPublic,
    operation_id="create_job",
    responses={
        200: {"model": JobPublic, "description": "With `Prefer: wait=N`: the job ended in time"},
        **problems(*AUTHENTICATED, *WITH_BODY),
    },
)
async def create_job(
    request: Request,
    body: JobCreate,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
    prefer: Annotated[str | None, Header(alias="Prefer")] = None,
) -> JSONResponse:
    """Queue an image job. Answers 202 with the job; poll its ``Location``. With
    ``Prefer: wait=N`` the answer waits up to N seconds for the job to end: 200 with the
    finished job, or 202 as usual if it has not."""
    spec = body.to_spec()
    result = await jobs_service.submit(
        rt,
        principal,
        spec,
        present=lambda job: JobPublic.from_record(job, rt.storage).model_dump(mode="json"),
        idempotency=idempotent(idempotency_key, "create_job", body),
    )
    headers = {"Location": f"/api/image/jobs/{result.job_id}"}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    remember(request, result.rate_limit)
    answer, status = result.body, result.status_code
    wait_s = wait_preference(prefer, rt.settings.prefer_wait_max_s)
    if wait_s is not None and status == 202 and result.job_id:
        await event_feed.wait_for_end(
            request.app.state.event_feed, rt, workspace_id=principal.workspace_id,
            job_id=result.job_id, timeout_s=wait_s,
        )  # fmt: skip
        job = await jobs_service.get(rt, principal, result.job_id)
        answer = JobPublic.from_record(job, rt.storage).model_dump(mode="json")
        status = 200 if job.status.is_terminal() else 202
        headers["Preference-Applied"] = f"wait={wait_s}"
    return JSONResponse(answer, status_code=status, headers=headers)


def wait_preference(prefer: str | None, cap_s: int) -> int | None:
    """The ``wait`` of a ``Prefer`` header (RFC 7240), capped; None if absent. Other
    or malformed preferences are ignored, as the RFC asks."""
    for preference in (prefer or "").split(","):
        name, _, value = preference.split(";", 1)[0].strip().partition("=")
        if name.strip().lower() == "wait" and value.strip().isdigit():
            return min(int(value.strip()), cap_s)
    return None


@router.get(
    "", response_model=JobsPublic, operation_id="list_jobs", responses=problems(*AUTHENTICATED, 400)
)
async def list_jobs(
    rt: RuntimeDep,
    principal: PrincipalDep,
    status: Annotated[
        list[str] | None, Query(description="Filter; repeat or comma-separate")
    ] = None,
    dead_letter: bool | None = None,
    parent_job_id: Annotated[
        str | None, Query(max_length=64, description="Only the children of this job")
    ] = None,
    root_job_id: Annotated[
        str | None, Query(max_length=64, description="Only this chain: its root and descendants")
    ] = None,
    batch_id: Annotated[str | None, Query(max_length=64, description="Only this batch")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> JobsPublic:
    """Your workspace's jobs, newest first."""
    wanted = [s for value in status or [] for s in value.split(",") if s]
    try:
        statuses = [JobStatus(s) for s in wanted]
    except ValueError as error:
        choices = ", ".join(s.value for s in JobStatus)
        raise InvalidRequest(f"status must be one of {choices}", field="status") from error
    page = await jobs_service.list_jobs(
        rt, principal, statuses=statuses, dead_letter=dead_letter, cursor=cursor, limit=limit,
        parent_job_id=parent_job_id, root_job_id=root_job_id, batch_id=batch_id,
    )  # fmt: skip
    return JobsPublic(
        data=[JobPublic.from_record(j, rt.storage) for j in page.jobs],
        next_cursor=page.next_cursor,
        has_more=page.next_cursor is not None,
    )


@router.get(
    "/{job_id}",
    response_model=JobPublic,
    operation_id="get_job",
    responses=problems(*AUTHENTICATED, 404),
)
async def get_job(job_id: str, rt: RuntimeDep, principal: PrincipalDep) -> JobPublic:
    """One job: status, progress, images."""
    return JobPublic.from_record(await jobs_service.get(rt, principal, job_id), rt.storage)


@router.delete(
    "/{job_id}",
    status_code=204,
    operation_id="delete_job",
    responses=problems(*AUTHENTICATED, 403, 404, 409),
)
async def delete_job(
    job_id: str, rt: RuntimeDep, principal: PrincipalDep, actor: ActorDep
) -> Response:
    """Delete a finished job with its images, events, webhook deliveries and
    idempotency records (409 `invalid_state` while it is queued or running: cancel it
    first). Its children stay; the job answers 404 from then on."""
    await erasure.delete_job(rt, principal, actor, job_id)
    return Response(status_code=204)


@router.post(
    "/{job_id}/actions",
    status_code=202,
    response_model=JobPublic,
    operation_id="act_on_job",
    responses=problems(*AUTHENTICATED, *WITH_BODY, 404, 409),
)
async def act_on_job(
    job_id: str,
    request: Request,
    body: ActionCreate,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Make a new job from a completed one: ``upscale``, ``variation`` (a remix with a
    ``prompt``), ``reroll``, ``zoom_out``, ``pan`` or ``vary_region``. Answers 202 with
    the child job (``parent_job_id``, ``source_index``); 409 if the job is not
    completed, 422 ``unsupported_action`` if no configured provider can do it."""
    fields = body.model_dump(exclude_unset=True, exclude={"action"})
    if "mask" in fields:
        fields["mask"] = body.mask.model_dump(exclude_none=True)  # type: ignore[union-attr]
    spec = actions_service.ActionSpec(action=body.action, **fields)
    result = await actions_service.act(
        rt,
        principal,
        job_id,
        spec,
        present=lambda job: JobPublic.from_record(job, rt.storage).model_dump(mode="json"),
        idempotency=idempotent(idempotency_key, "act_on_job", body, job_id=job_id),
    )
    headers = {"Location": f"/api/image/jobs/{result.job_id}"}
    if result.replayed:
        headers["Idempotent-Replayed"] = "true"
    remember(request, result.rate_limit)
    return JSONResponse(result.body, status_code=result.status_code, headers=headers)


@router.post(
    "/{job_id}/cancel", response_model=JobPublic, operation_id="cancel_job", responses=POST_ERRORS
)
async def cancel_job(
    job_id: str,
    rt: RuntimeDep,
    principal: PrincipalDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Cancel a queued or running job."""

    async def cancel() -> Answer:
        job = await jobs_service.cancel(rt, principal, job_id, actor)
        return Answer(200, JobPublic.from_record(job, rt.storage).model_dump(mode="json"), job_id)

    request = idempotent(idempotency_key, "cancel_job", job_id=job_id)
    return respond(await idempotency.run(rt, principal, request, cancel))


@router.post(
    "/{job_id}/retry",
    response_model=JobPublic,
    status_code=202,
    operation_id="retry_job",
    responses=problems(*AUTHENTICATED, *WITH_BODY, 403, 404),
)
async def retry_job(
    job_id: str,
    rt: RuntimeDep,
    principal: PrincipalDep,
    actor: ActorDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Requeue a dead-lettered job (admin keys only)."""

    async def requeue() -> Answer:
        job = await jobs_service.requeue(rt, principal, job_id, actor)
        return Answer(202, JobPublic.from_record(job, rt.storage).model_dump(mode="json"), job.id)

    request = idempotent(idempotency_key, "retry_job", job_id=job_id)
    answer = await idempotency.run(rt, principal, request, requeue)
    # Built from the stored id, not the path: only a real job's id reaches a header.
    return respond(answer, {"Location": f"/api/image/jobs/{answer.resource_id}"})
