"""Job use cases: submit (with idempotency), read, list, cancel, requeue."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db import batches_repo, jobs_repo
from imagegate.domain.ids import new_id, well_formed
from imagegate.domain.jobs import JobAction, JobStatus
from imagegate.domain.params import MAX_SEED
from imagegate.domain.rates import Allowance
from imagegate.domain.records import JobRecord, Principal
from imagegate.engine import dbos_engine, routing
from imagegate.engine.lifecycle import record
from imagegate.errors import (
    Forbidden,
    IdempotencyKeyInUse,
    InvalidRequest,
    InvalidState,
    JobNotFound,
    UnsupportedAction,
    UnsupportedModel,
)
from imagegate.observability import metrics, tracing
from imagegate.observability.logging import get_logger
from imagegate.providers.base import GenerationRequest, action_for_job
from imagegate.providers.registry import ModelChoice
from imagegate.runtime import Runtime
from imagegate.services import audit, credits, quotas, rate_limits, sources, webhooks
from imagegate.services import idempotency as idempotency_service
from imagegate.services.audit import Actor
from imagegate.services.idempotency import Answer, Claim, IdempotentRequest
from imagegate.services.keys import require_writer
from imagegate.services.pagination import decode_cursor, encode_cursor
from imagegate.services.submission import JobSpec, resolve_for

log = get_logger("imagegate.jobs")

Presenter = Callable[[JobRecord], dict[str, Any]]


@dataclass(frozen=True)
class Submitted:
    status_code: int
    body: dict[str, Any]
    job_id: str
    replayed: bool
    # Where the workspace stands against the job-creation rate, when it was counted.
    rate_limit: Allowance | None = None


@dataclass(frozen=True)
class NewJob:
    """A validated job, ready to record: what both create and the follow-up actions
    (services.actions) write."""

    action: JobAction
    prompt: str
    negative_prompt: str | None
    params: dict[str, Any]
    choice: ModelChoice
    estimate: int
    user: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    webhook_url: str | None = None
    parent_job_id: str | None = None
    root_job_id: str | None = None
    batch_id: str | None = None


async def submit(
    rt: Runtime,
    principal: Principal,
    spec: JobSpec,
    present: Presenter,
    idempotency: IdempotentRequest | None = None,
    batch_id: str | None = None,
) -> Submitted:
    """Record a job and queue it, once per ``idempotency`` key (services.idempotency).
    ``batch_id`` files it under a batch (services.batches) that exists already."""
    resolved = await resolve_for(rt, principal, spec)
    if spec.webhook_url is not None:
        await webhooks.check_url(rt, spec.webhook_url, "webhook_url")
    action = JobAction(spec.action or JobAction.IMAGINE)
    requested = str(resolved.params.get("requested_model") or spec.model or "auto")
    images = await sources.attach(rt, principal, spec, resolved)
    p = {**resolved.params, **images, "requested_model": requested}
    if action is not JobAction.IMAGINE:
        p["action"] = action.value
    p.update(workspace_params(rt, principal))
    p.update(
        quotas.check_job(
            rt, principal, mode=str(p["mode"]), action=action.value,
            variations=int(p["variations"]),
        )
    )  # fmt: skip
    choice = choose_model(rt, requested, p, action)
    estimate = estimate_credits(rt, choice, resolved.prompt, resolved.negative_prompt, p, action)
    repeat = int(p.pop("repeat", 1) or 1)
    if repeat > 1 and batch_id is not None:
        raise InvalidRequest(
            "--repeat makes a batch of its own; a batch item cannot repeat (list the "
            "item several times instead)",
            field="prompt",
        )
    new = NewJob(
        action=action,
        prompt=resolved.prompt,
        negative_prompt=resolved.negative_prompt,
        params={
            **p,
            "model": choice.name,
            "routing": spec.routing or rt.providers.config.policy_for(principal.workspace_name),
        },
        choice=choice,
        estimate=estimate,
        user=spec.user,
        metadata=spec.metadata,
        webhook_url=spec.webhook_url,
        batch_id=batch_id,
    )
    return await record_and_queue(rt, principal, new, present, idempotency, repeat=repeat)


def workspace_params(rt: Runtime, principal: Principal) -> dict[str, int | bool]:
    """The workspace's settings a job's params freeze: ``min_compliance`` (routing
    reads it there, as it reads the policy) and ``private_prompts`` (the webhook
    bodies read it), each only when set."""
    config = rt.providers.config
    floor = config.min_compliance_for(principal.workspace_name)
    frozen: dict[str, int | bool] = {"min_compliance": floor} if floor is not None else {}
    if config.private_prompts(principal.workspace_name):
        frozen["private_prompts"] = True
    return frozen


def choose_model(
    rt: Runtime, requested: str, params: dict[str, Any], action: JobAction
) -> ModelChoice:
    """The provider and model a job names (``auto`` or ``provider[:model]``), checked
    against what the configured providers can do for ``action`` with ``params``."""
    choice = rt.providers.resolve(requested)
    if choice is None:
        raise UnsupportedModel(
            f"no provider serves model {requested!r}; available: auto, "
            + ", ".join(rt.providers.models()),
            field="model",
        )
    if not routing.candidates_for(rt, params, action):
        floor = params.get("min_compliance")
        if floor is not None and routing.candidates_for(
            rt, {**params, "min_compliance": None}, action
        ):
            raise UnsupportedModel(
                f"your workspace's min_compliance of {floor} keeps out every provider that "
                f"can do this job with model {requested!r}",
                field="model",
            )
        able = [
            e.name
            for e in rt.providers.entries()
            if action_for_job(action, params) in e.provider.capabilities().actions
        ]
        if action is not JobAction.IMAGINE or params.get("source"):
            doing = action_for_job(action, params).value
            raise UnsupportedAction(
                f"no configured provider can do {doing} with model {requested!r} for "
                f"{params['variations']} {params['mode']} image(s) of "
                f"{params['width']}x{params['height']}"
                + (f"; providers that do {doing}: {', '.join(able)}" if able else ""),
                field="model" if able else "action",
            )
        raise UnsupportedModel(
            f"no configured provider can make {params['variations']} {params['mode']} "
            f"image(s) of {params['width']}x{params['height']} with model {requested!r}",
            field="model",
        )
    return choice


def estimate_credits(
    rt: Runtime,
    choice: ModelChoice,
    prompt: str,
    negative_prompt: str | None,
    params: dict[str, Any],
    action: JobAction,
) -> int:
    request = GenerationRequest.from_params(
        prompt, negative_prompt, params, choice.model, job_action=action, provider=choice.provider
    )
    return rt.providers.get(choice.provider).estimate_credits(request)


async def record_and_queue(
    rt: Runtime,
    principal: Principal,
    new: NewJob,
    present: Presenter,
    idempotency: IdempotentRequest | None,
    repeat: int = 1,
) -> Submitted:
    """Record ``new`` and queue it: a replay of ``idempotency``'s key answers as the
    first time did, and creates nothing. With ``repeat`` > 1 (a prompt's ``--repeat``)
    that many jobs, each with its own seeds, filed under a new batch in the same
    transaction; the answer is the first of them (its ``batch_id`` leads to the rest)."""
    require_writer(principal)
    now = rt.clock.now()
    # A replay creates nothing, so it answers without counting against the job rate;
    # the rate is checked before the claim, so that a refused create leaves no record.
    if idempotency is not None:
        replay = await idempotency_service.stored_answer(rt, principal, idempotency)
        if replay is not None:
            return _replayed(replay)
    allowance = await rate_limits.check_job(rt, principal, jobs=repeat)
    held: Claim | None = None
    if idempotency is not None:
        claimed = await idempotency_service.claim(rt, principal, idempotency)
        if isinstance(claimed, Answer):
            return _replayed(claimed)
        held = claimed
    job_ids = [new_id("job") for _ in range(repeat)]
    batch_id = new_id("bat") if repeat > 1 else new.batch_id
    try:
        async with rt.db.begin() as conn:
            jobs = [
                await _insert(
                    conn, rt, principal, new, job_id, now, batch_id, _repeated(new, k, repeat)
                )
                for k, job_id in enumerate(job_ids)
            ]
            if repeat > 1:
                await batches_repo.insert_batch(
                    conn, batch_id=str(batch_id), workspace_id=principal.workspace_id,
                    items=[{"index": k, "job_id": j} for k, j in enumerate(job_ids)],
                    metadata={"repeat": str(repeat)}, now=now,
                )  # fmt: skip
            body = present(jobs[0])
            # In the job's own transaction: the job and its replayable answer commit
            # together. A claim taken over meanwhile (this request ran long enough to
            # count as abandoned) means the key now belongs to a retry: this job goes.
            if held is not None and not await idempotency_service.complete(
                conn, rt, held, Answer(202, body, job_ids[0])
            ):
                raise IdempotencyKeyInUse()
    except BaseException:
        if held is not None:
            await idempotency_service.release(rt, held)
        raise
    metrics.job_created(new.action.value, new.choice.provider, len(job_ids))
    for job_id in job_ids:
        await _enqueue_or_leave_to_sweep(job_id, principal.workspace_id, 1)
    return Submitted(202, body, job_ids[0], replayed=False, rate_limit=allowance)


def _repeated(new: NewJob, k: int, repeat: int) -> dict[str, Any]:
    """The params of the ``k``-th of ``repeat`` jobs: seeds that follow on from the
    previous job's, so no two of them draw the same image."""
    if repeat == 1:
        return new.params
    seed = (int(new.params["seed"]) + k * int(new.params["variations"])) % (MAX_SEED + 1)
    return {**new.params, "seed": seed, "repeat": repeat, "repeat_index": k + 1}


async def _insert(
    conn: AsyncConnection,
    rt: Runtime,
    principal: Principal,
    new: NewJob,
    job_id: str,
    now: datetime,
    batch_id: str | None,
    params: dict[str, Any],
) -> JobRecord:
    job = await jobs_repo.insert_job(
        conn,
        {
            "id": job_id, "workspace_id": principal.workspace_id,
            "api_key_id": principal.key_id, "end_user": new.user,
            "status": JobStatus.QUEUED.value, "action": new.action.value,
            "prompt": new.prompt, "negative_prompt": new.negative_prompt,
            "params": params, "provider": new.choice.provider,
            "model": new.choice.model, "estimated_credits": new.estimate,
            "metadata": new.metadata, "created_at": now, "updated_at": now,
            "webhook_url": new.webhook_url, "parent_job_id": new.parent_job_id,
            "root_job_id": new.root_job_id or job_id, "batch_id": batch_id,
            "traceparent": tracing.current_traceparent(),
        },
    )  # fmt: skip
    await record(
        conn, job_id=job_id, workspace_id=principal.workspace_id, event="job.queued",
        now=now, user=new.user, provider=new.choice.provider, model=new.choice.model,
        estimated_credits=new.estimate, action=new.action.value,
        parent_job_id=new.parent_job_id, batch_id=batch_id,
    )  # fmt: skip
    await audit.record(
        conn, rt, principal.workspace_id, Actor.of(principal), "job.created", job_id,
        job_action=new.action.value,
    )  # fmt: skip
    # In the creating transaction: a job that cannot hold its estimate is not made.
    await credits.reserve(conn, rt, principal, job_id, new.estimate)
    images = 0 if new.action is JobAction.DESCRIBE else int(params.get("variations", 1))
    await quotas.spend(conn, rt, principal, user=new.user, images=images, credits=new.estimate)
    return job


def _replayed(answer: Answer) -> Submitted:
    return Submitted(answer.status_code, answer.body, str(answer.body.get("job_id")), True)


async def get(rt: Runtime, principal: Principal, job_id: str) -> JobRecord:
    if not well_formed(job_id, "job"):
        raise JobNotFound()
    async with rt.db.connect() as conn:
        job = await jobs_repo.get_job(conn, job_id, principal.workspace_id)
    if job is None:
        raise JobNotFound()
    return job


# Where counting the queue ahead of a job stops (a client shows "N ahead" or "N+").
QUEUE_COUNT_CAP = 1000


async def waiting_behind(rt: Runtime, principal: Principal, job_id: str) -> int:
    """How many of the workspace's queued jobs a just-queued job waits behind: 0 when
    its workspace's concurrency cap leaves room for it and those ahead (it starts now),
    else those ahead of it (at most QUEUE_COUNT_CAP)."""
    async with rt.db.connect() as conn:
        running, ahead = await jobs_repo.ahead_of(
            conn, principal.workspace_id, job_id, QUEUE_COUNT_CAP
        )
    return ahead if running + ahead >= rt.settings.workspace_concurrency else 0


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
    parent_job_id: str | None = None,
    root_job_id: str | None = None,
    batch_id: str | None = None,
) -> Page:
    before = decode_cursor(cursor, "job") if cursor else None
    async with rt.db.connect() as conn:
        jobs = await jobs_repo.list_jobs(
            conn,
            principal.workspace_id,
            statuses=statuses,
            dead_letter=dead_letter,
            parent_job_id=parent_job_id,
            root_job_id=root_job_id,
            batch_id=batch_id,
            before_id=before,
            limit=limit + 1,
        )
    more = len(jobs) > limit
    jobs = jobs[:limit]
    return Page(jobs, encode_cursor(jobs[-1].id) if more and jobs else None)


async def cancel(
    rt: Runtime, principal: Principal, job_id: str, actor: Actor | None = None
) -> JobRecord:
    require_writer(principal)
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
        await credits.void(conn, rt, job)
        who = actor or Actor.of(principal)
        await audit.record(conn, rt, job.workspace_id, who, "job.canceled", job_id)
    metrics.job_finished(job, JobStatus.CANCELED.value, now)
    await dbos_engine.cancel(job_id, job.runs)
    return await get(rt, principal, job_id)


async def requeue(
    rt: Runtime, principal: Principal, job_id: str, actor: Actor | None = None
) -> JobRecord:
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
        # The new run holds the estimate again (the failed one's hold was released).
        await credits.reserve(conn, rt, principal, job_id, job.estimated_credits, run)
        who = actor or Actor.of(principal)
        await audit.record(conn, rt, job.workspace_id, who, "job.requeued", job_id, run=run)
    await _enqueue_or_leave_to_sweep(job_id, job.workspace_id, run)
    return await get(rt, principal, job_id)


async def _enqueue_or_leave_to_sweep(job_id: str, workspace_id: str, run: int) -> None:
    """Queue the run just committed. If that fails the job is still recorded (the 202
    holds): the elected reaper's enqueue sweep (services.enqueue_sweep) queues it
    within a few seconds, so the caller gets its answer rather than a 500 for a job
    that will run anyway."""
    try:
        await dbos_engine.enqueue(job_id, workspace_id, run)
    except Exception as error:
        log.warning("job.enqueue_failed", job_id=job_id, run=run, error=repr(error))


async def reconcile(rt: Runtime) -> int:
    """Queue any unfinished job whose run never reached the queue (a crash between
    recording the job and queueing it); returns how many there were."""
    async with rt.db.connect() as conn:
        pending = await jobs_repo.unfinished(conn)
    return await dbos_engine.ensure_queued(pending)


async def purge_expired_idempotency(rt: Runtime) -> int:
    """Forget idempotency records past their retention."""
    return await idempotency_service.purge_expired(rt)
