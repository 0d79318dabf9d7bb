"""Job, image and lifecycle-event queries, in SQLAlchemy Core on a connection: this is
the hot path, and the ORM's unit of work would cost more than the SQL itself.

Status changes are guarded updates ("set Y where status in X"), so a step that runs
twice changes nothing the second time."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db import webhooks_repo
from imagegate.db.models import Image, Job, JobEvent
from imagegate.domain.jobs import JobStatus, sources_of
from imagegate.domain.records import JobRecord, StoredImage

jobs: Table = Job.__table__  # type: ignore[assignment]
images: Table = Image.__table__  # type: ignore[assignment]
events: Table = JobEvent.__table__  # type: ignore[assignment]

_IMAGE_COLUMNS = ("kind", "index", "storage_key", "width", "height", "seed", "content_type")


# A job lists at most this many children (the oldest); list by parent for all of them.
MAX_CHILDREN_SHOWN = 100


def to_record(
    row: Mapping[Any, Any],
    stored: Sequence[Mapping[Any, Any]] = (),
    children: Sequence[tuple[str, str]] = (),
) -> JobRecord:
    return JobRecord(
        id=row["id"],
        workspace_id=row["workspace_id"],
        api_key_id=row["api_key_id"],
        user=row["end_user"],
        status=JobStatus(row["status"]),
        action=row["action"],
        parent_job_id=row["parent_job_id"],
        prompt=row["prompt"],
        negative_prompt=row["negative_prompt"],
        params=dict(row["params"]),
        progress=row["progress"],
        provider=row["provider"],
        model=row["model"],
        attempts=row["attempts"],
        runs=row["runs"],
        error_code=row["error_code"],
        error_message=row["error_message"],
        dead_letter=bool(row["dead_letter"]),
        estimated_credits=row["estimated_credits"],
        charged_credits=row["charged_credits"],
        metadata=dict(row["metadata"]),
        created_at=row["created_at"],
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        provider_job_id=row["provider_job_id"],
        webhook_url=row.get("webhook_url"),
        root_job_id=row.get("root_job_id"),
        batch_id=row.get("batch_id"),
        result_texts=tuple(row.get("result_texts") or ()),
        children=tuple(children),
        traceparent=row.get("traceparent"),
        images=tuple(
            StoredImage(**{c: i[c] for c in _IMAGE_COLUMNS})
            for i in sorted(stored, key=lambda i: (i["kind"], i["index"]))
        ),
    )


async def insert_job(conn: AsyncConnection, values: dict[str, Any]) -> JobRecord:
    """Insert a job; ``values`` are column values (``metadata``, ``end_user``, …)."""
    row = {
        "progress": 0, "attempts": 0, "runs": 1, "dead_letter": False, "charged_credits": 0,
        "error_code": None, "error_message": None, "started_at": None, "completed_at": None,
        "provider_job_id": None, "parent_job_id": None, "root_job_id": None,
        "batch_id": None, "result_texts": None, "traceparent": None, **values,
    }  # fmt: skip
    await conn.execute(insert(jobs), row)
    return to_record(row)


async def _images_of(conn: AsyncConnection, job_ids: list[str]) -> dict[str, list[Any]]:
    rows = await conn.execute(select(images).where(images.c.job_id.in_(job_ids)))
    by_job: dict[str, list[Any]] = {}
    for image in rows.mappings():
        by_job.setdefault(image["job_id"], []).append(image)
    return by_job


async def get_job(
    conn: AsyncConnection,
    job_id: str,
    workspace_id: str | None = None,
    *,
    children: bool = True,
    images: bool = True,
) -> JobRecord | None:
    """The job with its images (and, unless ``children`` is false, its children: what
    the job's public form shows, a query the engine's own reads skip); ``None`` if
    absent or in another workspace. ``images=False`` skips the images too (an attempt
    about to make them reads none)."""
    query = select(jobs).where(jobs.c.id == job_id)
    if workspace_id is not None:
        query = query.where(jobs.c.workspace_id == workspace_id)
    row = (await conn.execute(query)).mappings().first()
    if row is None:
        return None
    kids = (
        (await _children_of(conn, row["workspace_id"], [job_id])).get(job_id, [])
        if children
        else []
    )
    stored = (await _images_of(conn, [job_id])).get(job_id, []) if images else []
    return to_record(row, stored, kids)


async def _children_of(
    conn: AsyncConnection, workspace_id: str, job_ids: list[str]
) -> dict[str, list[tuple[str, str]]]:
    """Each job's children (id, action), oldest first, at most MAX_CHILDREN_SHOWN each."""
    rows = await conn.execute(
        select(jobs.c.parent_job_id, jobs.c.id, jobs.c.action)
        .where(jobs.c.workspace_id == workspace_id, jobs.c.parent_job_id.in_(job_ids))
        .order_by(jobs.c.id)
        .limit(MAX_CHILDREN_SHOWN * len(job_ids))
    )
    by_parent: dict[str, list[tuple[str, str]]] = {}
    for parent, child, action in rows:
        listed = by_parent.setdefault(str(parent), [])
        if len(listed) < MAX_CHILDREN_SHOWN:
            listed.append((str(child), str(action)))
    return by_parent


async def list_jobs(
    conn: AsyncConnection,
    workspace_id: str,
    *,
    statuses: Iterable[JobStatus] = (),
    dead_letter: bool | None = None,
    parent_job_id: str | None = None,
    root_job_id: str | None = None,
    batch_id: str | None = None,
    before_id: str | None = None,
    limit: int,
) -> list[JobRecord]:
    """Newest first. Ids are time-ordered, so ``before_id`` is a stable cursor."""
    query = select(jobs).where(jobs.c.workspace_id == workspace_id)
    if parent_job_id is not None:
        query = query.where(jobs.c.parent_job_id == parent_job_id)
    if root_job_id is not None:
        query = query.where(jobs.c.root_job_id == root_job_id)
    if batch_id is not None:
        query = query.where(jobs.c.batch_id == batch_id)
    wanted = [s.value for s in statuses]
    if wanted:
        query = query.where(jobs.c.status.in_(wanted))
    if dead_letter is not None:
        query = query.where(jobs.c.dead_letter.is_(dead_letter))
    if before_id is not None:
        query = query.where(jobs.c.id < before_id)
    rows = (await conn.execute(query.order_by(jobs.c.id.desc()).limit(limit))).mappings().all()
    if not rows:
        return []
    ids = [r["id"] for r in rows]
    by_job = await _images_of(conn, ids)
    children = await _children_of(conn, workspace_id, ids)
    return [to_record(r, by_job.get(r["id"], []), children.get(r["id"], [])) for r in rows]


async def move(
    conn: AsyncConnection,
    job_id: str,
    target: JobStatus,
    *,
    attempt: int | None = None,
    **values: Any,
) -> bool:
    """Set ``status = target`` (and ``values``) if the job's status may become ``target``
    (``domain.jobs.ALLOWED``); ``False`` if it may not, or the job is gone.

    ``attempt`` fences a worker's result: the move happens only if no later attempt
    has started since (one begun by another worker after this one was declared dead)."""
    statement = update(jobs).where(
        jobs.c.id == job_id, jobs.c.status.in_([s.value for s in sources_of(target)])
    )
    if attempt is not None:
        statement = statement.where(jobs.c.attempts == attempt)
    result = await conn.execute(statement.values(status=target.value, **values))
    return bool(result.rowcount)


async def start_attempt(
    conn: AsyncConnection,
    job_id: str,
    now: datetime,
    worker_id: str,
    *,
    provider: str,
    model: str,
    params: dict[str, Any] | None = None,
) -> JobRecord | None:
    """Mark a queued or running job running on ``worker_id`` with ``provider`` and
    count one more attempt, in one statement; ``None`` if the job is gone or already
    finished. ``params``, if given, replaces the job's (the routing reason rides on
    this statement rather than costing one of its own)."""
    extra = {"params": params} if params is not None else {}
    row = (
        (
            await conn.execute(
                update(jobs)
                .where(
                    jobs.c.id == job_id,
                    jobs.c.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value]),
                )
                .values(
                    status=JobStatus.RUNNING.value,
                    attempts=jobs.c.attempts + 1,
                    worker_id=worker_id,
                    provider=provider,
                    model=model,
                    started_at=func.coalesce(jobs.c.started_at, now),
                    updated_at=now,
                    **extra,
                )
                .returning(*jobs.c)
            )
        )
        .mappings()
        .first()
    )
    return to_record(row) if row is not None else None


async def set_provider_job_id(
    conn: AsyncConnection, job_id: str, provider_job_id: str | None, attempt: int
) -> bool:
    """Remember (or forget, with ``None``) the provider's id for the job's work, if
    ``attempt`` is still the job's latest and it is running."""
    result = await conn.execute(
        update(jobs)
        .where(
            jobs.c.id == job_id,
            jobs.c.attempts == attempt,
            jobs.c.status == JobStatus.RUNNING.value,
        )
        .values(provider_job_id=provider_job_id)
    )
    return bool(result.rowcount)


async def set_progress(conn: AsyncConnection, job_id: str, progress: int, now: datetime) -> bool:
    """Progress only moves forward, and only while running."""
    result = await conn.execute(
        update(jobs)
        .where(
            jobs.c.id == job_id,
            jobs.c.status == JobStatus.RUNNING.value,
            jobs.c.progress < progress,
        )
        .values(progress=progress, updated_at=now)
    )
    return bool(result.rowcount)


async def add_images(
    conn: AsyncConnection, job_id: str, stored: Sequence[dict[str, Any]], now: datetime
) -> None:
    """Record the job's images. Call it in the transaction that moves the job to
    completed: the guarded move makes it happen once per run."""
    if stored:
        await conn.execute(
            insert(images), [{**image, "job_id": job_id, "created_at": now} for image in stored]
        )


async def add_event(
    conn: AsyncConnection,
    job_id: str,
    workspace_id: str,
    type_: str,
    data: dict[str, Any],
    now: datetime,
) -> int:
    """Log the event, and in the same transaction its webhook deliveries (the outbox:
    every event, lifecycle or progress, passes here). Returns the event's id."""
    row = {"job_id": job_id, "workspace_id": workspace_id, "type": type_, "data": data,
           "created_at": now}  # fmt: skip
    event_id = int(await conn.scalar(insert(events).returning(events.c.id), row))
    await webhooks_repo.add_deliveries(
        conn, event_id=event_id, job_id=job_id, workspace_id=workspace_id, event_type=type_,
        event_at=now,
    )  # fmt: skip
    return event_id


async def running_on(conn: AsyncConnection, worker_id: str) -> int:
    """How many jobs are mid-attempt on ``worker_id``."""
    count = await conn.scalar(
        select(func.count())
        .select_from(jobs)
        .where(jobs.c.status == JobStatus.RUNNING.value, jobs.c.worker_id == worker_id)
    )
    return int(count or 0)


async def ahead_of(
    conn: AsyncConnection, workspace_id: str, job_id: str, limit: int
) -> tuple[int, int]:
    """(running, queued before ``job_id``) of the workspace's jobs, each counted to at
    most ``limit`` (ids sort by time): two ranges of ix_jobs_workspace_status."""

    def count(status: JobStatus, *where: Any) -> Any:
        found = (
            select(jobs.c.id)
            .where(jobs.c.workspace_id == workspace_id, jobs.c.status == status.value, *where)
            .limit(limit)
            .subquery()
        )
        return select(func.count()).select_from(found).scalar_subquery()

    row = (
        await conn.execute(
            select(count(JobStatus.RUNNING), count(JobStatus.QUEUED, jobs.c.id < job_id))
        )
    ).one()
    return int(row[0]), int(row[1])


async def queued_since_before(
    conn: AsyncConnection, cutoff: datetime, after_id: str | None, limit: int
) -> list[tuple[str, str, int]]:
    """(job id, workspace id, run) of queued jobs last changed before ``cutoff``, in id
    order after ``after_id``: one bounded page of the enqueue sweep."""
    query = select(jobs.c.id, jobs.c.workspace_id, jobs.c.runs).where(
        jobs.c.status == JobStatus.QUEUED.value, jobs.c.updated_at < cutoff
    )
    if after_id is not None:
        query = query.where(jobs.c.id > after_id)
    rows = await conn.execute(query.order_by(jobs.c.id).limit(limit))
    return [(r[0], r[1], r[2]) for r in rows]


async def unfinished(conn: AsyncConnection) -> list[tuple[str, str, int]]:
    """(job id, workspace id, run number) of every job that still has to reach an end."""
    rows = await conn.execute(
        select(jobs.c.id, jobs.c.workspace_id, jobs.c.runs).where(
            jobs.c.status.in_([JobStatus.QUEUED.value, JobStatus.RUNNING.value])
        )
    )
    return [(r[0], r[1], r[2]) for r in rows]
