"""One lifecycle event = one row in ``job_events`` + one JSON log line."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db import jobs_repo
from imagegate.observability.logging import get_logger

log = get_logger("imagegate.lifecycle")


async def record(
    conn: AsyncConnection,
    *,
    job_id: str,
    workspace_id: str,
    event: str,
    now: datetime,
    **fields: Any,
) -> None:
    """Add the event to the job's log (in the caller's transaction) and log it."""
    await jobs_repo.add_event(conn, job_id, workspace_id, event, fields, now)
    log.info(event, job_id=job_id, workspace=workspace_id, **fields)
