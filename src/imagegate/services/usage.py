"""Usage: what a workspace made and spent, by day, end user, provider, action or key,
and what each *final usable image* cost (docs/usage.md).

Cost per final usable image = everything spent on the jobs counted (drafts,
variations, rerolls, retries, failed attempts: their credits, the providers' bills
and a month of the storage their files take) ÷ the images marked final among them —
an upscale's images, or any the client marks with ``POST /api/image/jobs/{id}/images/
{index}/final``. Per period it spreads a period's spend over the finals made in it;
per job chain (``GET /api/image/jobs/{id}/cost``) over the lineage from its root."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from imagegate.db import usage_repo
from imagegate.domain.records import Principal
from imagegate.errors import InvalidRequest, InvalidState
from imagegate.runtime import Runtime
from imagegate.services import jobs as jobs_service

GROUPS = ("day", "user", "provider", "action", "key")
MAX_RANGE = timedelta(days=366)
DEFAULT_RANGE = timedelta(days=30)
GB = 1_000_000_000


@dataclass(frozen=True)
class Figures:
    values: dict[str, Any]

    def costed(self, storage_usd_per_gb: float) -> dict[str, Any]:
        """The figures with the storage's cost, the total and the cost per final."""
        v = dict(self.values)
        v["storage_usd"] = round(v["storage_bytes"] / GB * storage_usd_per_gb, 6)
        v["provider_usd"] = round(v["provider_usd"], 6)
        v["total_usd"] = round(v["provider_usd"] + v["storage_usd"], 6)
        finals = v["final_images"]
        v["credits_per_final_image"] = round(v["credits_charged"] / finals, 4) if finals else None
        v["usd_per_final_image"] = round(v["total_usd"] / finals, 6) if finals else None
        return v


@dataclass(frozen=True)
class Report:
    start: datetime
    end: datetime
    group_by: str
    groups: list[tuple[str | None, dict[str, Any]]]
    totals: dict[str, Any]


def _range(rt: Runtime, start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = end or rt.clock.now()
    start = start or end - DEFAULT_RANGE
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidRequest("from and to need a time zone (e.g. Z)", field="from")
    if not start < end:
        raise InvalidRequest("from must be before to", field="from")
    if end - start > MAX_RANGE:
        raise InvalidRequest("at most 366 days at a time", field="from")
    return start, end


async def report(
    rt: Runtime,
    principal: Principal,
    *,
    start: datetime | None,
    end: datetime | None,
    group_by: str,
) -> Report:
    if group_by not in GROUPS:
        raise InvalidRequest(f"group_by must be one of {', '.join(GROUPS)}", field="group_by")
    start, end = _range(rt, start, end)
    async with rt.db.connect() as conn:
        rows = await usage_repo.grouped(conn, principal.workspace_id, start, end, group_by)
    price = rt.settings.storage_usd_per_gb
    totals: dict[str, Any] = {name: 0 for name in usage_repo.FIGURES}
    for _, values in rows:
        for name in usage_repo.FIGURES:
            totals[name] += values[name]
    return Report(
        start, end, group_by,
        [(group, Figures(values).costed(price)) for group, values in rows],
        Figures(totals).costed(price),
    )  # fmt: skip


def as_csv(found: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    columns = list(found.totals)
    writer.writerow([found.group_by, *columns])
    for group, values in found.groups:
        writer.writerow(
            [group or "", *(values[c] if values[c] is not None else "" for c in columns)]
        )
    return out.getvalue()


async def chain(rt: Runtime, principal: Principal, job_id: str) -> tuple[str, dict[str, Any]]:
    """(root job id, the lineage's figures) for the chain ``job_id`` belongs to."""
    job = await jobs_service.get(rt, principal, job_id)
    root = job.root_job_id or job.id
    async with rt.db.connect() as conn:
        values = await usage_repo.lineage(conn, principal.workspace_id, root)
    return root, Figures(values).costed(rt.settings.storage_usd_per_gb)


async def mark_final(
    rt: Runtime, principal: Principal, job_id: str, index: int, final: bool = True
) -> None:
    """Mark one of a completed job's images as a final, usable one (or not)."""
    job = await jobs_service.get(rt, principal, job_id)
    if job.status.value != "completed":
        raise InvalidState(f"the job is {job.status}; only a completed job's images")
    async with rt.db.begin() as conn:
        if not await usage_repo.mark_final(conn, job.id, index, final):
            raise InvalidRequest(f"the job has no image {index}", field="index")
