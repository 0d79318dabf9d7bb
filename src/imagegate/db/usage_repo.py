"""Usage figures in SQL: jobs of a workspace aggregated by day, end user, provider,
action or API key — or over one lineage — with their images, storage, credits and
provider spend. Each query is one GROUP BY over the jobs of a bounded time range
(``ix_jobs_workspace_created``) joined to per-job sums of images and provider calls."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Table, case, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import Image, Job, ProviderCall

jobs: Table = Job.__table__  # type: ignore[assignment]
images: Table = Image.__table__  # type: ignore[assignment]
calls: Table = ProviderCall.__table__  # type: ignore[assignment]

MAX_GROUPS = 1000
FIGURES = (
    "jobs", "completed", "failed", "canceled", "retries", "images", "final_images",
    "storage_bytes", "credits_charged", "provider_usd",
)  # fmt: skip


def _group(group_by: str) -> ColumnElement[Any]:
    return {
        "day": func.date(jobs.c.created_at),
        "user": jobs.c.end_user,
        "provider": jobs.c.provider,
        "action": jobs.c.action,
        "key": jobs.c.api_key_id,
    }[group_by]


def _per_job() -> tuple[Any, Any]:
    """Per-job sums: images (count, final ones, bytes) and provider calls (USD)."""
    is_image = images.c.kind == "image"
    final = is_image & or_(images.c.final, jobs.c.action == "upscale")
    made = (
        select(
            images.c.job_id.label("job_id"),
            func.sum(case((is_image, 1), else_=0)).label("images"),
            func.sum(case((final, 1), else_=0)).label("finals"),
            func.sum(images.c.size_bytes).label("bytes"),
        )
        .join(jobs, jobs.c.id == images.c.job_id)
        .group_by(images.c.job_id)
        .subquery()
    )
    spent = (
        select(calls.c.job_id.label("job_id"), func.sum(calls.c.cost_usd).label("usd"))
        .group_by(calls.c.job_id)
        .subquery()
    )
    return made, spent


def _figures(made: Any, spent: Any) -> list[ColumnElement[Any]]:
    def count(status: str) -> ColumnElement[Any]:
        return func.sum(case((jobs.c.status == status, 1), else_=0))

    return [
        func.count().label("jobs"),
        count("completed").label("completed"),
        count("failed").label("failed"),
        count("canceled").label("canceled"),
        func.sum(case((jobs.c.attempts > 1, jobs.c.attempts - 1), else_=0)).label("retries"),
        func.coalesce(func.sum(made.c.images), 0).label("images"),
        func.coalesce(func.sum(made.c.finals), 0).label("final_images"),
        func.coalesce(func.sum(made.c.bytes), 0).label("storage_bytes"),
        func.coalesce(func.sum(jobs.c.charged_credits), 0).label("credits_charged"),
        func.coalesce(func.sum(spent.c.usd), 0).label("provider_usd"),
    ]


def _row(row: Any) -> dict[str, Any]:
    out = {name: row._mapping[name] for name in FIGURES}
    out = {k: float(v) if k == "provider_usd" else int(v or 0) for k, v in out.items()}
    return out


async def grouped(
    conn: AsyncConnection, workspace_id: str, start: datetime, end: datetime, group_by: str
) -> list[tuple[str | None, dict[str, Any]]]:
    """(group, figures) for the workspace's jobs created in [start, end), by group."""
    made, spent = _per_job()
    group = _group(group_by).label("grp")
    query = (
        select(group, *_figures(made, spent))
        .select_from(
            jobs.outerjoin(made, made.c.job_id == jobs.c.id).outerjoin(
                spent, spent.c.job_id == jobs.c.id
            )
        )
        .where(
            jobs.c.workspace_id == workspace_id,
            jobs.c.created_at >= start,
            jobs.c.created_at < end,
        )
        .group_by(group)
        .order_by(group)
        .limit(MAX_GROUPS)
    )
    rows = await conn.execute(query)
    return [(None if r.grp is None else str(r.grp), _row(r)) for r in rows]


async def lineage(conn: AsyncConnection, workspace_id: str, root_job_id: str) -> dict[str, Any]:
    """The figures of every job descended from ``root_job_id`` (itself included)."""
    made, spent = _per_job()
    query = (
        select(*_figures(made, spent))
        .select_from(
            jobs.outerjoin(made, made.c.job_id == jobs.c.id).outerjoin(
                spent, spent.c.job_id == jobs.c.id
            )
        )
        .where(jobs.c.workspace_id == workspace_id, jobs.c.root_job_id == root_job_id)
    )
    return _row((await conn.execute(query)).one())


async def mark_final(conn: AsyncConnection, job_id: str, index: int, final: bool) -> bool:
    """Mark (or unmark) the job's image ``index`` final; False if it has none such."""
    result = await conn.execute(
        update(images)
        .where(images.c.job_id == job_id, images.c.kind == "image", images.c.index == index)
        .values(final=final)
    )
    return bool(result.rowcount)
