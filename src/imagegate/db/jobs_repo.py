"""Job, image and lifecycle-event queries. Status changes are guarded updates
("set Y where status in X"), so a step that runs twice changes nothing the second time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import Image, Job, JobEvent
from imagegate.domain.jobs import JobStatus
from imagegate.domain.records import JobRecord, StoredImage


def _record(job: Job, images: Sequence[Image] = ()) -> JobRecord:
    return JobRecord(
        id=job.id,
        workspace_id=job.workspace_id,
        api_key_id=job.api_key_id,
        user=job.end_user,
        status=JobStatus(job.status),
        action=job.action,
        parent_job_id=job.parent_job_id,
        prompt=job.prompt,
        negative_prompt=job.negative_prompt,
        params=dict(job.params),
        progress=job.progress,
        provider=job.provider,
        model=job.model,
        attempts=job.attempts,
        runs=job.runs,
        error_code=job.error_code,
        error_message=job.error_message,
        dead_letter=job.dead_letter,
        estimated_credits=job.estimated_credits,
        charged_credits=job.charged_credits,
        metadata=dict(job.job_metadata),
        created_at=job.created_at,
        started_at=job.started_at,
        completed_at=job.completed_at,
        images=tuple(
            StoredImage(
                kind=i.kind,
                index=i.index,
                storage_key=i.storage_key,
                width=i.width,
                height=i.height,
                seed=i.seed,
                content_type=i.content_type,
            )
            for i in sorted(images, key=lambda i: (i.kind, i.index))
        ),
    )


async def insert_job(session: AsyncSession, **values: Any) -> None:
    metadata = values.pop("metadata")
    user = values.pop("user")
    session.add(Job(job_metadata=metadata, end_user=user, **values))


async def get_job(
    session: AsyncSession, job_id: str, workspace_id: str | None = None
) -> JobRecord | None:
    """The job with its images; ``None`` if absent or in another workspace."""
    job = await session.get(Job, job_id)
    if job is None or (workspace_id is not None and job.workspace_id != workspace_id):
        return None
    images = (await session.scalars(select(Image).where(Image.job_id == job_id))).all()
    return _record(job, images)


async def list_jobs(
    session: AsyncSession,
    workspace_id: str,
    *,
    statuses: Iterable[JobStatus] = (),
    dead_letter: bool | None = None,
    before_id: str | None = None,
    limit: int,
) -> list[JobRecord]:
    """Newest first. Ids are time-ordered, so ``before_id`` is a stable cursor."""
    query = select(Job).where(Job.workspace_id == workspace_id)
    wanted = [s.value for s in statuses]
    if wanted:
        query = query.where(Job.status.in_(wanted))
    if dead_letter is not None:
        query = query.where(Job.dead_letter.is_(dead_letter))
    if before_id is not None:
        query = query.where(Job.id < before_id)
    jobs = (await session.scalars(query.order_by(Job.id.desc()).limit(limit))).all()
    if not jobs:
        return []
    rows = await session.scalars(select(Image).where(Image.job_id.in_([j.id for j in jobs])))
    by_job: dict[str, list[Image]] = {}
    for image in rows:
        by_job.setdefault(image.job_id, []).append(image)
    return [_record(j, by_job.get(j.id, [])) for j in jobs]


async def move(
    session: AsyncSession,
    job_id: str,
    sources: Iterable[JobStatus],
    target: JobStatus,
    **values: Any,
) -> bool:
    """Set ``status = target`` (and ``values``) only if the job is in one of ``sources``."""
    result = await session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_([s.value for s in sources]))
        .values(status=target.value, **values)
    )
    return bool(getattr(result, "rowcount", 0))


async def increment_attempts(session: AsyncSession, job_id: str, now: datetime) -> int:
    await session.execute(
        update(Job).where(Job.id == job_id).values(attempts=Job.attempts + 1, updated_at=now)
    )
    attempts = await session.scalar(select(Job.attempts).where(Job.id == job_id))
    return int(attempts or 0)


async def set_progress(session: AsyncSession, job_id: str, progress: int, now: datetime) -> bool:
    """Progress only moves forward, and only while running."""
    result = await session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.status == JobStatus.RUNNING.value,
            Job.progress < progress,
        )
        .values(progress=progress, updated_at=now)
    )
    return bool(getattr(result, "rowcount", 0))


async def replace_images(
    session: AsyncSession,
    job_id: str,
    images: Sequence[StoredImage],
    sizes: Sequence[int],
    now: datetime,
) -> None:
    """Record the job's images; a repeated step replaces rather than duplicates."""
    await session.execute(delete(Image).where(Image.job_id == job_id))
    if images:
        await session.execute(
            insert(Image),
            [
                {
                    "job_id": job_id,
                    "kind": image.kind,
                    "index": image.index,
                    "storage_key": image.storage_key,
                    "width": image.width,
                    "height": image.height,
                    "seed": image.seed,
                    "content_type": image.content_type,
                    "size_bytes": size,
                    "created_at": now,
                }
                for image, size in zip(images, sizes, strict=True)
            ],
        )


async def add_event(
    session: AsyncSession,
    job_id: str,
    workspace_id: str,
    type_: str,
    data: dict[str, Any],
    now: datetime,
) -> None:
    session.add(
        JobEvent(job_id=job_id, workspace_id=workspace_id, type=type_, data=data, created_at=now)
    )


async def event_types(session: AsyncSession, job_id: str) -> list[str]:
    rows = await session.scalars(
        select(JobEvent.type).where(JobEvent.job_id == job_id).order_by(JobEvent.id)
    )
    return list(rows)


async def unfinished(session: AsyncSession) -> list[tuple[str, str, int]]:
    """(job id, workspace id, run number) of every job that still has to reach an end."""
    rows = await session.execute(
        select(Job.id, Job.workspace_id, Job.runs).where(
            Job.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value])
        )
    )
    return [(r[0], r[1], r[2]) for r in rows]


async def count_jobs(session: AsyncSession, workspace_id: str) -> int:
    return int(
        await session.scalar(
            select(func.count()).select_from(Job).where(Job.workspace_id == workspace_id)
        )
        or 0
    )
