"""The reads /metrics makes at scrape time: a few aggregates, bounded whatever the
size of the tables (one row per status asked for)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Table, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import Job
from imagegate.domain.jobs import JobStatus

jobs: Table = Job.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class StatusCount:
    jobs: int
    oldest_created_at: datetime | None


async def unfinished_jobs(conn: AsyncConnection) -> dict[JobStatus, StatusCount]:
    """Queued and running jobs: how many, and when the oldest of each was created.
    One aggregate over ``ix_jobs_status``."""
    wanted = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
    rows = await conn.execute(
        select(jobs.c.status, func.count(), func.min(jobs.c.created_at))
        .where(jobs.c.status.in_(wanted))
        .group_by(jobs.c.status)
    )
    found = {JobStatus(row[0]): StatusCount(int(row[1]), row[2]) for row in rows.tuples()}
    for status in wanted:
        found.setdefault(JobStatus(status), StatusCount(0, None))
    return found
