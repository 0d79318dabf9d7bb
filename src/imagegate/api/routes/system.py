"""Health, readiness and stored files."""

from __future__ import annotations

import mimetypes
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, JSONResponse
from sqlalchemy import text

from imagegate.api.deps import AdminCallerDep, RuntimeDep
from imagegate.api.openapi import Responses, problems
from imagegate.errors import FileLinkInvalid, NotFound
from imagegate.observability.logging import get_logger
from imagegate.rate_limits import CountersUnavailable
from imagegate.runtime import Runtime

router = APIRouter(tags=["system"])
log = get_logger("imagegate.readiness")
# What an anonymous caller learns of a dependency that is down: which one, not why
# (error text can name hosts, buckets, users and library internals).
DOWN = "unavailable"


@router.get("/healthz", operation_id="healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    operation_id="readyz",
    responses={
        503: {
            "description": "A dependency is down; the body says which",
            "content": {"application/json": {}},
        }
    },
)
async def readyz(rt: RuntimeDep, admin: AdminCallerDep) -> JSONResponse:
    """The process can reach its database and its storage, and is ready for traffic.
    Each dependency reads ``ok`` or ``unavailable``; the reason is logged, and shown
    only to a caller with an admin key."""
    problems = {"database": await _database_problem(rt), "storage": await rt.storage.check()}
    counters_problem = await _counters_problem(rt)
    for name, problem in problems.items():  # (the counters log their own outage)
        if problem:
            log.warning("readiness.dependency_down", dependency=name, reason=problem)
    body = {
        name: "ok" if not problem else (problem if admin else DOWN)
        for name, problem in problems.items()
    }
    # Rate limits fail open, so the counters' outage is reported but does not make the
    # process unready: a load balancer must not drop every API process.
    if counters_problem is None:
        body["counters"] = f"ok ({rt.counters.backend})"
    else:
        detail = f": {counters_problem}" if admin else ""
        body["counters"] = f"{DOWN}, not limiting{detail}"
    if any(problems.values()):
        return JSONResponse({"status": "unavailable", **body}, status_code=503)
    return JSONResponse({"status": "ready", **body})


async def _counters_problem(rt: Runtime) -> str | None:
    try:
        await rt.counters.ping()
    except CountersUnavailable as error:
        return str(error)
    return None


async def _database_problem(rt: Runtime) -> str | None:
    try:
        async with rt.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as error:
        return repr(error)
    return None


_IMAGE: Responses = {
    200: {
        "description": "The image",
        "content": {
            media: {"schema": {"type": "string", "format": "binary"}}
            for media in ("image/png", "image/jpeg", "image/webp")
        },
    }
}


@router.get(
    "/files/{key:path}",
    operation_id="get_file",
    response_class=FileResponse,
    # 422: an `exp` that is not a number.
    responses={**_IMAGE, **problems(403, 404, 422)},
)
async def get_file(
    key: str,
    rt: RuntimeDep,
    exp: Annotated[int, Query()] = 0,
    sig: Annotated[str, Query(max_length=64)] = "",
) -> FileResponse:
    """A stored image, through a signed link that expires."""
    storage = rt.local_storage
    if storage is None:
        # Images live in object storage and their links point there, never here.
        raise NotFound("This server does not serve files.")
    if not storage.signer.verify(key, exp, sig):
        raise FileLinkInvalid()
    path = storage.path_for(key)
    if path is None or not path.is_file():
        raise NotFound("The file no longer exists.")
    return FileResponse(
        path,
        media_type=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
        headers={"Cache-Control": "private, max-age=3600"},
    )
