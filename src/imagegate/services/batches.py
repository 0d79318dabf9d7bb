"""Batches: up to ``MAX_ITEMS`` job bodies submitted in one request.

Each item is submitted alone, through ``services.jobs.submit`` with the batch's id, so
it meets every rule a single create meets (validation, the job rate, idempotency). An
item that is refused is reported with its problem and the others run. A batch where
no item became a job is refused whole and leaves nothing behind: ``rate_limited``
when the job rate refused every item, else ``batch_invalid`` with each item's problem.

Idempotency: with an ``Idempotency-Key`` the batch as a whole is the idempotent unit,
and a retry creates nothing the first try created, even when the first try died
half-way through its items:

1. The batch's key is claimed like any POST's (services.idempotency): a retry once the
   answer is stored replays it; one while the first try is in flight is 409; one
   after the first try died takes the abandoned claim over.
2. The batch's id is recorded before any job is: as the stored answer of a second key
   derived from the batch's (``batch-id:<sha256 of the key>``). A retry that took the
   claim over finds the same id there.
3. Item *i* is submitted under a key derived from that id (``batch:<batch id>:<i>``),
   so a retry of an item the first try got to replays that item's job.
4. The batch's row and its stored answer commit together, after the items.

The derived keys are claimed after the batch's key, so they expire after it. A key
reused once its retention is over is a new batch, with a new id and new item keys;
in the instant where the batch's key has expired and the id's not yet, the reuse is
told to retry shortly (409) rather than file new jobs under the old batch.

Without a key, a request that dies half-way leaves the jobs it made, filed under a
batch id that never gets its row."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from imagegate.db import batches_repo, jobs_repo
from imagegate.domain.batches import MAX_ITEMS, BatchRecord, Summary, Tally, summarize
from imagegate.domain.ids import new_id, well_formed
from imagegate.domain.rates import Allowance
from imagegate.domain.records import JobRecord, Principal
from imagegate.errors import (
    BatchEmpty,
    BatchInvalid,
    BatchNotFound,
    BatchTooManyItems,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    ImagegateError,
    RateLimited,
)
from imagegate.runtime import Runtime
from imagegate.services import idempotency as idempotency_service
from imagegate.services import jobs as jobs_service
from imagegate.services.idempotency import Answer, Claim, IdempotentRequest
from imagegate.services.pagination import decode_cursor, encode_cursor
from imagegate.services.submission import JobSpec

ProblemOf = Callable[[ImagegateError], dict[str, Any]]
BatchPresenter = Callable[[BatchRecord], dict[str, Any]]


@dataclass(frozen=True)
class Item:
    """One item of a batch request: a job to submit (``spec``, and ``fingerprint``,
    what it asks, for its idempotency key), or the problem that kept it from being
    read (``problem``)."""

    index: int
    spec: JobSpec | None = None
    fingerprint: str = ""
    problem: dict[str, Any] | None = None


@dataclass(frozen=True)
class Created:
    answer: Answer
    # Where the workspace stands against the job rate after the last item it counted.
    rate_limit: Allowance | None = None


def check_size(count: int) -> None:
    """Refuse a batch of no items or more than ``MAX_ITEMS``, before reading any."""
    if count < 1:
        raise BatchEmpty(field="items")
    if count > MAX_ITEMS:
        raise BatchTooManyItems(
            f"A batch holds at most {MAX_ITEMS} items; this one has {count}. Split it.",
            field="items",
        )


async def create(
    rt: Runtime,
    principal: Principal,
    items: Sequence[Item],
    metadata: dict[str, str],
    *,
    present_job: jobs_service.Presenter,
    present_batch: BatchPresenter,
    problem_of: ProblemOf,
    idempotency: IdempotentRequest | None = None,
) -> Created:
    """Submit each item as a job of a new batch, once per ``idempotency`` key; the
    answer is 202 with the per-item report ``present_batch`` makes of the batch."""
    check_size(len(items))
    held: Claim | None = None
    if idempotency is not None:
        replay = await idempotency_service.stored_answer(rt, principal, idempotency)
        if replay is not None:
            return Created(replay)
        claimed = await idempotency_service.claim(rt, principal, idempotency)
        if isinstance(claimed, Answer):
            return Created(claimed)
        held = claimed
    try:
        batch_id = await _batch_id(rt, principal, idempotency)
        run = await _submit_items(
            rt, principal, batch_id, items, present_job, problem_of, idempotency is not None
        )
        run.refuse_if_empty()
        now = rt.clock.now()
        async with rt.db.begin() as conn:
            batch = await batches_repo.insert_batch(
                conn, batch_id=batch_id, workspace_id=principal.workspace_id,
                items=run.report, metadata=metadata, now=now,
            )  # fmt: skip
            answer = Answer(202, present_batch(batch), batch.id)
            # As submit does: a claim taken over meanwhile belongs to a retry now,
            # which records the batch itself.
            if held is not None and not await idempotency_service.complete(conn, rt, held, answer):
                raise IdempotencyKeyInUse()
    except BaseException:
        if held is not None:
            await idempotency_service.release(rt, held)
        raise
    return Created(answer, run.allowance)


async def _batch_id(
    rt: Runtime, principal: Principal, idempotency: IdempotentRequest | None
) -> str:
    """A new batch id, or, for a retry of a batch whose first try died, that try's."""
    if idempotency is None:
        return new_id("bat")
    digest = hashlib.sha256(idempotency.key.encode()).hexdigest()
    anchor = IdempotentRequest(f"batch-id:{digest}", idempotency.fingerprint)
    held = await idempotency_service.claim(rt, principal, anchor)
    if isinstance(held, Answer):
        batch_id = str(held.body["batch_id"])
        async with rt.db.connect() as conn:
            recorded = await batches_repo.get_batch(conn, batch_id, principal.workspace_id)
        if recorded is not None:
            # That batch finished and its key expired: this is the key's reuse for a
            # new batch, a moment before the anchor expires too.
            raise IdempotencyKeyInUse()
        return batch_id
    batch_id = new_id("bat")
    async with rt.db.begin() as conn:
        if not await idempotency_service.complete(
            conn, rt, held, Answer(200, {"batch_id": batch_id}, batch_id)
        ):
            raise IdempotencyKeyInUse()
    return batch_id


@dataclass
class _Run:
    """What submitting the items came to."""

    report: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[ImagegateError] = field(default_factory=list)
    allowance: Allowance | None = None

    def refuse_if_empty(self) -> None:
        if any("job_id" in item for item in self.report):
            return
        limited = [e for e in self.refusals if isinstance(e, RateLimited)]
        if limited and len(limited) == len(self.report):
            raise limited[-1]
        raise BatchInvalid(
            f"None of the {len(self.report)} items is a valid job; nothing was created.",
            items=self.report,
        )


async def _submit_items(
    rt: Runtime,
    principal: Principal,
    batch_id: str,
    items: Sequence[Item],
    present_job: jobs_service.Presenter,
    problem_of: ProblemOf,
    keyed: bool,
) -> _Run:
    run = _Run()
    for item in items:
        if item.spec is None:
            run.report.append({"index": item.index, "error": item.problem})
            continue
        key = IdempotentRequest(f"batch:{batch_id}:{item.index}", item.fingerprint)
        try:
            submitted = await jobs_service.submit(
                rt, principal, item.spec, present_job, key if keyed else None, batch_id=batch_id
            )
        except (IdempotencyKeyInUse, IdempotencyKeyReused):
            # About the batch's key, not the item: the whole request is retried.
            raise
        except ImagegateError as error:
            run.refusals.append(error)
            run.report.append({"index": item.index, "error": problem_of(error)})
            continue
        run.report.append({"index": item.index, "job_id": submitted.job_id})
        run.allowance = submitted.rate_limit or run.allowance
    return run


@dataclass(frozen=True)
class BatchView:
    batch: BatchRecord
    summary: Summary
    # The batch's jobs by id (only in a single batch's view).
    jobs: dict[str, JobRecord] = field(default_factory=dict)


async def get(rt: Runtime, principal: Principal, batch_id: str) -> BatchView:
    if not well_formed(batch_id, "bat"):
        raise BatchNotFound()
    async with rt.db.connect() as conn:
        batch = await batches_repo.get_batch(conn, batch_id, principal.workspace_id)
        if batch is None:
            raise BatchNotFound()
        found = await jobs_repo.list_jobs(
            conn, principal.workspace_id, batch_id=batch_id, limit=MAX_ITEMS
        )
    # Counted from the same rows the items show, so the two always agree.
    tallies: dict[str, Tally] = {}
    for job in found:
        was = tallies.get(job.status.value, Tally(0, 0))
        tallies[job.status.value] = Tally(was.jobs + 1, was.progress + job.progress)
    return BatchView(batch, summarize(tallies), {job.id: job for job in found})


@dataclass(frozen=True)
class Page:
    batches: list[BatchView]
    next_cursor: str | None


async def list_batches(
    rt: Runtime, principal: Principal, *, cursor: str | None, limit: int
) -> Page:
    """The workspace's batches, newest first, each with its summary."""
    before = decode_cursor(cursor, "bat") if cursor else None
    async with rt.db.connect() as conn:
        found = await batches_repo.list_batches(
            conn, principal.workspace_id, before_id=before, limit=limit + 1
        )
        more = len(found) > limit
        found = found[:limit]
        tallies = await batches_repo.tallies(
            conn, principal.workspace_id, [batch.id for batch in found]
        )
    views = [BatchView(batch, summarize(tallies.get(batch.id, {}))) for batch in found]
    return Page(views, encode_cursor(found[-1].id) if more and found else None)
