"""/api/image/usage (the workspace's usage and cost per final usable image),
/api/image/jobs/{id}/cost (one job chain's), and marking images final."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from imagegate.api.deps import PrincipalDep, RuntimeDep
from imagegate.api.openapi import AUTHENTICATED, CSV_TOO, problems
from imagegate.services import usage as service

router = APIRouter(prefix="/api/image/usage", tags=["credits"])
jobs_router = APIRouter(prefix="/api/image/jobs", tags=["jobs"])

Index = Annotated[int, Path(ge=1, le=4)]


@router.get("", operation_id="get_usage", responses={**CSV_TOO, **problems(*AUTHENTICATED)})
async def get_usage(
    rt: RuntimeDep,
    principal: PrincipalDep,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    group_by: Literal["day", "user", "provider", "action", "key"] = "day",
    format: Literal["json", "csv"] = "json",
) -> Response:
    """Jobs, images, final images, storage, credits charged and provider spend of the
    jobs created in [`from`, `to`) (default: the last 30 days; at most 366), by
    `group_by`, with totals and the cost per final usable image (docs/usage.md)."""
    found = await service.report(rt, principal, start=start, end=end, group_by=group_by)
    if format == "csv":
        return PlainTextResponse(service.as_csv(found), media_type="text/csv")
    body: dict[str, Any] = {
        "from": found.start.isoformat(), "to": found.end.isoformat(),
        "group_by": found.group_by,
        "groups": [{"group": g, **values} for g, values in found.groups],
        "totals": found.totals,
    }  # fmt: skip
    return JSONResponse(body)


@jobs_router.get("/{job_id}/cost", operation_id="get_job_cost",
                 responses=problems(*AUTHENTICATED, 404))  # fmt: skip
async def get_job_cost(job_id: str, rt: RuntimeDep, principal: PrincipalDep) -> JSONResponse:
    """What the whole chain the job belongs to (from its root: drafts, variations,
    rerolls, upscales, retries) cost, and its cost per final usable image."""
    root, values = await service.chain(rt, principal, job_id)
    return JSONResponse({"root_job_id": root, **values})


@jobs_router.post("/{job_id}/images/{index}/final", status_code=204,
                  operation_id="mark_image_final",
                  responses=problems(*AUTHENTICATED, 404, 409))  # fmt: skip
async def mark_final(
    job_id: str, index: Index, rt: RuntimeDep, principal: PrincipalDep
) -> Response:
    """Count this image as a final, usable one (an upscale's images count already)."""
    await service.mark_final(rt, principal, job_id, index, True)
    return Response(status_code=204)


@jobs_router.delete("/{job_id}/images/{index}/final", status_code=204,
                    operation_id="unmark_image_final",
                    responses=problems(*AUTHENTICATED, 404, 409))  # fmt: skip
async def unmark_final(
    job_id: str, index: Index, rt: RuntimeDep, principal: PrincipalDep
) -> Response:
    """Take the mark back."""
    await service.mark_final(rt, principal, job_id, index, False)
    return Response(status_code=204)
