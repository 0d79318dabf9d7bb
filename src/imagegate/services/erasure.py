"""Deleting jobs: on request (``DELETE /api/image/jobs/{id}``) and when they age out
(a retention period, globally or per workspace).

A job's files go first (everything under its storage folder, previews and grid
included), then its rows in one transaction (db.erasure_repo says which); a failure
in between leaves rows that point at nothing, which a second delete finishes, never a
file that nothing points at. Only a finished job is deleted: a queued or running one
is canceled first."""

from __future__ import annotations

from datetime import datetime, timedelta

from imagegate.db import accounts_repo, erasure_repo
from imagegate.domain.ids import well_formed
from imagegate.domain.jobs import JobStatus
from imagegate.domain.records import Principal
from imagegate.errors import InvalidState, JobNotFound
from imagegate.observability.logging import get_logger
from imagegate.runtime import Runtime
from imagegate.services import audit
from imagegate.services import jobs as jobs_service
from imagegate.services.audit import Actor

log = get_logger("imagegate.erasure")

FINISHED = tuple(status.value for status in JobStatus if status.is_terminal())


async def delete_job(rt: Runtime, principal: Principal, actor: Actor, job_id: str) -> None:
    """Delete one of the workspace's finished jobs with everything of it."""
    if not well_formed(job_id, "job"):
        raise JobNotFound()
    job = await jobs_service.get(rt, principal, job_id)
    if not job.status.is_terminal():
        raise InvalidState(
            f"the job is {job.status}; cancel it first, then delete it", field="job_id"
        )
    if not await _erase(rt, principal.workspace_id, job_id, actor):
        raise InvalidState("the job changed while being deleted; fetch it and try again")


async def _erase(rt: Runtime, workspace_id: str, job_id: str, actor: Actor | None) -> bool:
    await rt.storage.delete_prefix(f"{workspace_id}/{job_id}/")
    try:
        async with rt.db.begin() as conn:
            erased = await erasure_repo.erase_job(conn, workspace_id, job_id, FINISHED)
            if erased and actor is not None:
                await audit.record(conn, rt, workspace_id, actor, "job.deleted", job_id)
    except erasure_repo.JobChanged:
        return False
    return erased


async def sweep_expired(
    rt: Runtime, now: datetime, *, batch: int, max_batches: int
) -> tuple[int, bool]:
    """Delete jobs past their workspace's retention; (deleted, all done)."""
    config = rt.providers.config.workspaces
    own = {name: t.retention_days for name, t in config.items() if t.retention_days is not None}
    async with rt.sessions() as session:
        ids = await accounts_repo.workspace_ids(session, sorted(own))
    groups: list[tuple[int, list[str] | None, list[str] | None]] = [
        (days, [ids[name]], None) for name, days in own.items() if name in ids and days > 0
    ]
    if rt.settings.retention_jobs_days > 0:
        groups.append((rt.settings.retention_jobs_days, None, sorted(ids.values())))
    total, done = 0, True
    for days, only, besides in groups:
        before = now - timedelta(days=days)
        for _ in range(max_batches):
            async with rt.db.connect() as conn:
                expired = await erasure_repo.expired_jobs(
                    conn, before, batch, FINISHED, workspace_ids=only,
                    except_workspace_ids=besides,
                )  # fmt: skip
            for workspace_id, job_id in expired:
                total += await _erase(rt, workspace_id, job_id, None)
            if len(expired) < batch:
                break
        else:
            done = False
    return total, done
