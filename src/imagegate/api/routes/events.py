"""Server-Sent Events: a job's lifecycle until it ends, or a whole workspace's.

Each event's SSE ``id`` is its row in the lifecycle log; a client that reconnects with
``Last-Event-ID`` (browsers' EventSource do it themselves) gets every event after it,
none twice."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from sse_starlette.event import ServerSentEvent
from sse_starlette.sse import EventSourceResponse

from imagegate.api.deps import PrincipalDep, RuntimeDep
from imagegate.api.openapi import AUTHENTICATED, Responses, problems
from imagegate.api.schemas import JobPublic
from imagegate.domain.records import EventRecord, Principal
from imagegate.errors import InvalidRequest
from imagegate.runtime import Runtime
from imagegate.services import event_feed
from imagegate.services import jobs as jobs_service

router = APIRouter(tags=["events"])

# A comment line this often keeps proxies from closing a quiet stream.
PING_S = 15
_STREAM: Responses = {
    200: {
        "description": "A Server-Sent Events stream of job events",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def _resume_from(header: str | None, query: int | None) -> int:
    value = header if header is not None else query
    if value is None:
        return 0
    try:
        after = int(value)
    except ValueError:
        raise InvalidRequest("Last-Event-ID must be an event id from this stream") from None
    if after < 0:
        raise InvalidRequest("Last-Event-ID must be an event id from this stream")
    return after


@router.get(
    "/api/image/jobs/{job_id}/events",
    operation_id="job_events",
    response_class=EventSourceResponse,
    responses={**_STREAM, **problems(*AUTHENTICATED, 404)},
)
async def job_events(
    job_id: str,
    request: Request,
    rt: RuntimeDep,
    principal: PrincipalDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[int | None, Query(ge=0, description="Resume after this event id")] = None,
) -> EventSourceResponse:
    """The job's events — ``job.queued``, ``job.running``, ``job.progress``,
    ``job.retrying``, then ``job.completed``, ``job.failed`` or ``job.canceled`` —
    after which the stream ends."""
    await jobs_service.get(rt, principal, job_id)  # 404 for another workspace's job
    feed: event_feed.EventFeed = request.app.state.event_feed
    events = event_feed.follow(
        feed, rt, workspace_id=principal.workspace_id, job_id=job_id,
        after_id=_resume_from(last_event_id, after),
    )  # fmt: skip
    return EventSourceResponse(_messages(rt, principal, events), ping=PING_S)


@router.get(
    "/api/image/events",
    operation_id="workspace_events",
    response_class=EventSourceResponse,
    responses={**_STREAM, **problems(*AUTHENTICATED)},
)
async def workspace_events(
    request: Request,
    rt: RuntimeDep,
    principal: PrincipalDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    after: Annotated[int | None, Query(ge=0, description="Resume after this event id")] = None,
) -> EventSourceResponse:
    """Every job event of the workspace, as it happens; the stream stays open."""
    feed: event_feed.EventFeed = request.app.state.event_feed
    events = event_feed.follow(
        feed, rt, workspace_id=principal.workspace_id,
        after_id=_resume_from(last_event_id, after),
    )  # fmt: skip
    return EventSourceResponse(_messages(rt, principal, events), ping=PING_S)


async def _messages(
    rt: Runtime, principal: Principal, events: AsyncIterator[EventRecord]
) -> AsyncIterator[ServerSentEvent]:
    async for row in events:
        yield ServerSentEvent(
            data=json.dumps(await _body(rt, principal, row), separators=(",", ":")),
            event=row.type,
            id=str(row.id),
        )


async def _body(rt: Runtime, principal: Principal, row: EventRecord) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": row.type,
        "job_id": row.job_id,
        "timestamp": row.created_at.isoformat(),
        "data": row.data,
    }
    if row.type in event_feed.TERMINAL:
        # The end of a job: its whole public state, result URLs included.
        job = await jobs_service.get(rt, principal, row.job_id)
        body["job"] = JobPublic.from_record(job, rt.storage).model_dump(mode="json")
    return body
