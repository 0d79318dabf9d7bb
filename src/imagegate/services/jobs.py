"""Job use cases: submit (with idempotency), read, list, cancel, requeue."""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from imagegate.db import idempotency_repo, jobs_repo
from imagegate.domain.ids import new_id, well_formed
from imagegate.domain.jobs import JobAction, JobStatus
from imagegate.domain.rates import Allowance
from imagegate.domain.records import JobRecord, Principal
from imagegate.engine import dbos_engine, routing
from imagegate.engine.lifecycle import record
from imagegate.errors import (
    Forbidden,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    InvalidCursor,
    InvalidState,
    JobNotFound,
    UnsupportedModel,
)
from imagegate.providers.base import GenerationRequest
from imagegate.runtime import Runtime
from imagegate.services import rate_limits, webhooks
from imagegate.services.submission import JobSpec, resolve

# An in-flight claim older than this belongs to a request that died mid-way.
ABANDONED_CLAIM = timedelta(seconds=60)

Presenter = Callable[[JobRecord], dict[str, Any]]


@dataclass(frozen=True)
class Submitted:
    status_code: int
    body: dict[str, Any]
    job_id: str
    replayed: bool
    # Where the workspace stands against the job-creation rate, when it was counted.
    rate_limit: Allowance | None = None


async def submit(
    rt: Runtime,
    principal: Principal,
    spec: JobSpec,
    present: Presenter,
    idempotency: tuple[str, str] | None = None,
) -> Submitted:
    """Record a job and queue it. ``idempotency`` is (key, hash of the request body)."""
    resolved = resolve(spec)
    if spec.webhook_url is not None:
        await webhooks.check_url(rt, spec.webhook_url, "webhook_url")
    choice = rt.providers.resolve(spec.model or "auto")
    if choice is None:
        raise UnsupportedModel(
            f"no provider serves model {spec.model!r}; available: auto, "
            + ", ".join(rt.providers.models()),
            field="model",
        )
    provider = rt.providers.get(choice.provider)
    p = resolved.params
    if not routing.candidates_for(rt, {**p, "requested_model": spec.model or "auto"}):
        raise UnsupportedModel(
            f"no configured provider can make {p['variations']} {p['mode']} image(s) of "
            f"{p['width']}x{p['height']} with model {spec.model or 'auto'!r}",
            field="model",
        )
    estimate = provider.estimate_credits(
        GenerationRequest.from_params(resolved.prompt, resolved.negative_prompt, p, choice.model)
    )
    now = rt.clock.now()
    # A replay creates nothing, so it answers without counting against the job rate;
    # the rate is checked before the claim, so that a refused create leaves no record.
    if idempotency is not None:
        replay = await _stored_answer(rt, principal, idempotency, now)
        if replay is not None:
            return replay
    allowance = await rate_limits.check_job(rt, principal)
    if idempotency is not None:
        replay = await _claim(rt, principal, idempotency, now)
        if replay is not None:
            return replay
    job_id = new_id("job")
    try:
        async with rt.db.begin() as conn:
            job = await jobs_repo.insert_job(
                conn,
                {
                    "id": job_id, "workspace_id": principal.workspace_id,
                    "api_key_id": principal.key_id, "end_user": spec.user,
                    "status": JobStatus.QUEUED.value, "action": JobAction.IMAGINE.value,
                    "prompt": resolved.prompt, "negative_prompt": resolved.negative_prompt,
                    "params": {
                        **p, "model": choice.name, "requested_model": spec.model or "auto",
                        "routing": spec.routing
                        or rt.providers.config.policy_for(principal.workspace_name),
                    },
                    "provider": choice.provider,
                    "model": choice.model, "estimated_credits": estimate,
                    "metadata": spec.metadata, "created_at": now, "updated_at": now,
                    "webhook_url": spec.webhook_url,
                },
            )  # fmt: skip
            await record(
                conn, job_id=job_id, workspace_id=principal.workspace_id, event="job.queued",
                now=now, user=spec.user, provider=choice.provider, model=choice.model,
                estimated_credits=estimate,
            )  # fmt: skip
            body = present(job)
            if idempotency is not None:
                await idempotency_repo.complete(
                    conn, principal.workspace_id, idempotency[0], 202, body, job_id
                )
    except BaseException:
        if idempotency is not None:
            async with rt.db.begin() as conn:
                await idempotency_repo.release(conn, principal.workspace_id, idempotency[0])
        raise
    await dbos_engine.enqueue(job_id, principal.workspace_id)
    return Submitted(202, body, job_id, replayed=False, rate_limit=allowance)


async def _claim(
    rt: Runtime, principal: Principal, idempotency: tuple[str, str], now: Any
) -> Submitted | None:
    key, request_hash = idempotency
    expires = now + timedelta(seconds=rt.settings.idempotency_ttl_s)
    async with rt.db.begin() as conn:
        held = await idempotency_repo.claim(
            conn, principal.workspace_id, key, request_hash, now, expires
        )
        if held is None:
            return None
        if _stale(held, now):
            if await idempotency_repo.take_over(
                conn, principal.workspace_id, key, request_hash, now, expires
            ):
                return None
            raise IdempotencyKeyInUse()
    return _answer(held, request_hash)


async def _stored_answer(
    rt: Runtime, principal: Principal, idempotency: tuple[str, str], now: datetime
) -> Submitted | None:
    """What an earlier request with this key answers, read without claiming the key."""
    async with rt.db.connect() as conn:
        held = await idempotency_repo.find(conn, principal.workspace_id, idempotency[0])
    if held is None or _stale(held, now):
        return None
    return _answer(held, idempotency[1])


def _stale(held: idempotency_repo.StoredResponse, now: datetime) -> bool:
    return held.expires_at < now or (
        held.state == idempotency_repo.IN_FLIGHT and now - held.created_at > ABANDONED_CLAIM
    )


def _answer(held: idempotency_repo.StoredResponse, request_hash: str) -> Submitted:
    """The replay of a held key, or why there is none yet."""
    if held.request_hash != request_hash:
        raise IdempotencyKeyReused()
    if held.state == idempotency_repo.IN_FLIGHT or held.response is None:
        raise IdempotencyKeyInUse()
    return Submitted(
        held.status_code or 202, held.response, str(held.response.get("job_id")), replayed=True
    )


async def get(rt: Runtime, principal: Principal, job_id: str) -> JobRecord:
    if not well_formed(job_id, "job"):
        raise JobNotFound()
    async with rt.db.connect() as conn:
        job = await jobs_repo.get_job(conn, job_id, principal.workspace_id)
    if job is None:
        raise JobNotFound()
    return job


def encode_cursor(job_id: str) -> str:
    return base64.urlsafe_b64encode(job_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError as error:  # binascii.Error, UnicodeDecodeError, non-ASCII input
        raise InvalidCursor() from error
    if not well_formed(value, "job") or len(value) > 40:
        raise InvalidCursor()
    return value


@dataclass(frozen=True)
class Page:
    jobs: list[JobRecord]
    next_cursor: str | None


async def list_jobs(
    rt: Runtime,
    principal: Principal,
    *,
    statuses: list[JobStatus],
    dead_letter: bool | None,
    cursor: str | None,
    limit: int,
) -> Page:
    before = decode_cursor(cursor) if cursor else None
    async with rt.db.connect() as conn:
        jobs = await jobs_repo.list_jobs(
            conn,
            principal.workspace_id,
            statuses=statuses,
            dead_letter=dead_letter,
            before_id=before,
            limit=limit + 1,
        )
    more = len(jobs) > limit
    jobs = jobs[:limit]
    return Page(jobs, encode_cursor(jobs[-1].id) if more and jobs else None)


async def cancel(rt: Runtime, principal: Principal, job_id: str) -> JobRecord:
    if not well_formed(job_id, "job"):
        raise JobNotFound()
    now = rt.clock.now()
    async with rt.db.begin() as conn:
        job = await jobs_repo.get_job(conn, job_id, principal.workspace_id)
        if job is None:
            raise JobNotFound()
        moved = await jobs_repo.move(
            conn,
            job_id,
            JobStatus.CANCELED,
            completed_at=now,
            updated_at=now,
        )
        if not moved:
            raise InvalidState(
                f"the job is {job.status}; only queued or running jobs can be canceled"
            )
        await record(
            conn,
            job_id=job_id,
            workspace_id=job.workspace_id,
            event="job.canceled",
            now=now,
            user=job.user,
            provider=job.provider,
            attempt=job.attempts,
        )
    await dbos_engine.cancel(job_id, job.runs)
    return await get(rt, principal, job_id)


async def requeue(rt: Runtime, principal: Principal, job_id: str) -> JobRecord:
    """Give a dead-lettered job another run (admin keys only)."""
    if not principal.is_admin:
        raise Forbidden("Only an admin key can requeue a dead-lettered job.")
    if not well_formed(job_id, "job"):
        raise JobNotFound()
    now = rt.clock.now()
    async with rt.db.begin() as conn:
        job = await jobs_repo.get_job(conn, job_id, principal.workspace_id)
        if job is None:
            raise JobNotFound()
        if not job.dead_letter:
            raise InvalidState(f"the job is {job.status}, not in the dead-letter queue")
        run = job.runs + 1
        moved = await jobs_repo.move(
            conn,
            job_id,
            JobStatus.QUEUED,
            dead_letter=False,
            runs=run,
            error_code=None,
            error_message=None,
            progress=0,
            completed_at=None,
            updated_at=now,
        )
        if not moved:
            raise InvalidState("the job changed while being requeued; fetch it and try again")
        await record(
            conn,
            job_id=job_id,
            workspace_id=job.workspace_id,
            event="job.requeued",
            now=now,
            user=job.user,
            provider=job.provider,
            run=run,
            by_key=principal.key_id,
        )
    await dbos_engine.enqueue(job_id, job.workspace_id, run)
    return await get(rt, principal, job_id)


async def reconcile(rt: Runtime) -> int:
    """Queue any unfinished job whose run never reached the queue (a crash between
    recording the job and queueing it); returns how many there were."""
    async with rt.db.connect() as conn:
        pending = await jobs_repo.unfinished(conn)
    return await dbos_engine.ensure_queued(pending)


async def purge_expired_idempotency(rt: Runtime) -> int:
    """Forget idempotency records past their retention."""
    async with rt.db.begin() as conn:
        return await idempotency_repo.purge_expired(conn, rt.clock.now())
