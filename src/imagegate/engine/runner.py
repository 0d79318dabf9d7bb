"""The steps of running one job, as plain async functions over a Runtime.

Each is safe to run twice (a crash between a step's effect and DBOS recording it
replays the step): status changes are guarded, files are overwritten in place, and
image rows are written in the transaction that completes the job, so once. The happy
path is one step, ``attempt``, so a job costs the engine one step record."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

from PIL import Image

from imagegate.db import jobs_repo, ledger_repo, moderation_repo
from imagegate.db.providers_repo import FAILED, MODERATED, OK
from imagegate.domain.ids import new_id
from imagegate.domain.jobs import JobStatus
from imagegate.domain.ledger import EntryKind
from imagegate.domain.params import OutputFormat
from imagegate.domain.records import JobRecord, ModerationRecord
from imagegate.engine import inputs, routing
from imagegate.engine.lifecycle import record
from imagegate.imaging import cell_size, encode, make_grid
from imagegate.imaging.watermark import watermarked
from imagegate.observability import metrics, tracing
from imagegate.observability.logging import get_logger
from imagegate.providers.base import (
    Action,
    Cancellable,
    Capabilities,
    GeneratedImage,
    GenerationRequest,
)
from imagegate.providers.errors import ModeratedError, ProviderError, RateLimitedError
from imagegate.runtime import Runtime
from imagegate.storage.base import image_key

log = get_logger("imagegate.runner")

PROGRESS_WRITE_INTERVAL_S = 0.25
PROGRESS_EVENT_INTERVAL_S = 0.5
# How long the clean-up of an interrupted attempt (a provider's cancel call) may take.
CANCEL_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Outcome:
    """What one attempt came to, as data: done, skipped, or an error to decide on."""

    ok: bool
    attempt: int = 0
    skipped: bool = False
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None
    provider_job_id: str | None = None
    # No provider could take the job now: wait ``retry_after_s``, not an attempt.
    deferred: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(**data)


SKIPPED = Outcome(ok=False, skipped=True)


@tracing.job_step("job.attempt")
async def attempt(rt: Runtime, job_id: str, worker_id: str) -> Outcome:
    """One attempt on ``worker_id``: route the job to a provider, mark it running,
    call the provider, store the images and complete the job. Failures come back as
    data for the retry policy; a job no provider can take now comes back deferred."""
    # The job and what routing reads, in one transaction.
    async with rt.db.connect() as conn:
        job = await jobs_repo.get_job(conn, job_id, children=False, images=False)
        active = job is not None and job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
        health = await routing.read_health(conn, rt, job) if job is not None and active else None
    if job is None or health is None:
        return SKIPPED
    tracing.enter_job(job, worker=worker_id)
    route = await routing.choose(rt, job, holder=f"{job_id}:{job.attempts + 1}", health=health)
    if isinstance(route, routing.Wait):
        return _unroutable(job, route)
    now = rt.clock.now()
    # The params are this job's own while it runs (only the runner writes them), so the
    # copy read above is the one to add the reason to.
    reason = route.reason
    params = None
    if reason is not None and job.params.get("routing_reason") != reason:
        params = {**job.params, "routing_reason": reason}
    async with rt.db.begin() as conn:
        started = await jobs_repo.start_attempt(
            conn, job_id, now, worker_id, provider=route.provider, model=route.model,
            params=params,
        )  # fmt: skip
        if started is not None:
            await record(
                conn, job_id=job_id, workspace_id=started.workspace_id, event="job.running",
                now=now, user=started.user, provider=route.provider, model=route.model,
                attempt=started.attempts, worker=worker_id, probe=route.probe or None,
                reason=reason,
            )  # fmt: skip
            metrics.job_started(started, now)
    if started is None:
        if route.slot_holder:
            await routing.release(rt, route.provider, route.slot_holder)
        return SKIPPED
    return await _call(rt, started, route)


def _unroutable(job: JobRecord, wait: routing.Wait) -> Outcome:
    if wait.retry_after_s <= 0:
        # Nothing configured can ever do it (capabilities): fail now, not after retries.
        return Outcome(
            ok=False, attempt=job.attempts, error_code="no_provider",
            error_message=wait.reason, retryable=False,
        )  # fmt: skip
    return Outcome(
        ok=False, attempt=job.attempts, deferred=True, retry_after_s=wait.retry_after_s,
        error_code="provider_unavailable", error_message=wait.reason, retryable=True,
    )  # fmt: skip


async def _call(rt: Runtime, job: JobRecord, route: routing.Route) -> Outcome:
    provider = rt.providers.get(route.provider)
    correlation = _JobCorrelation(rt, job)
    report = routing.CallReport(
        job.id, job.attempts, rt.clock.now(), time.monotonic(), OK, workspace_id=job.workspace_id
    )
    try:
        request = await inputs.request_for(rt, job)
        async with asyncio.timeout(rt.settings.attempt_timeout_s):
            result = await provider.generate(request, _ProgressWriter(rt, job), correlation)
        if not result.images and not (request.action is Action.DESCRIBE and result.texts):
            raise ProviderError("the provider returned no images")
        cost = result.cost_usd or _list_price(rt, job, route, max(1, len(result.images)))
        done = replace(
            report, images=len(result.images), cost_usd=cost,
            duration_ms=int((time.monotonic() - report.started_mono) * 1000),
        )  # fmt: skip
        try:
            stored = await _store(rt, job, list(result.images)) if result.images else []
        except BaseException:
            await _shielded(routing.record(rt, route, done))  # the provider's work was done
            raise
        ignored = _ignored_params(request, provider.capabilities())
        # The call's telemetry rides on the completing transaction.
        await _complete(
            rt, job, stored, result.provider_job_id, result.texts, ignored, (route, done)
        )
        await routing.after_record(rt, route, done)
    except inputs.InputMissing as error:
        if route.slot_holder:
            await routing.release(rt, route.provider, route.slot_holder)
        return Outcome(
            ok=False, attempt=job.attempts, error_code="input_missing",
            error_message=str(error), retryable=False,
        )  # fmt: skip
    except ProviderError as error:
        if not error.resumable:
            await correlation.forget()
        verdict = MODERATED if isinstance(error, ModeratedError) else FAILED
        await routing.record(
            rt, route, replace(report, outcome=verdict, error_code=error.code,
                               error_message=error.message),
        )  # fmt: skip
        return Outcome(
            ok=False,
            attempt=job.attempts,
            error_code=error.code,
            error_message=error.message,
            retryable=error.retryable,
            retry_after_s=error.retry_after if isinstance(error, RateLimitedError) else None,
            provider_job_id=error.provider_job_id,
        )
    except asyncio.CancelledError:
        # The step was interrupted: preempted because the job was canceled (the attempt
        # step is preemptible, dbos_engine), or the process is stopping. The call in
        # flight has ended on our side either way; the rest runs shielded, as a second
        # cancellation must not cut it short.
        await _shielded(_interrupted(rt, job, route, correlation.current))
        raise
    except TimeoutError:
        message = f"no result within {rt.settings.attempt_timeout_s:g} s"
        await routing.record(
            rt, route,
            replace(report, outcome=FAILED, error_code="provider_timeout", error_message=message),
        )  # fmt: skip
        return Outcome(
            ok=False,
            attempt=job.attempts,
            error_code="provider_timeout",
            error_message=message,
            retryable=True,
        )
    except Exception as error:
        # A bug or a full disk must not leave the job running forever: it becomes an
        # attempt that failed, retried a bounded number of times like any other.
        log.exception("job.attempt_crashed", job_id=job.id, attempt=job.attempts)
        if route.slot_holder:
            await routing.release(rt, route.provider, route.slot_holder)
        return Outcome(
            ok=False,
            attempt=job.attempts,
            error_code="internal_error",
            error_message=f"{type(error).__name__}: {error}"[:500],
            retryable=True,
        )
    return Outcome(ok=True, attempt=job.attempts, provider_job_id=result.provider_job_id)


# Clean-ups of interrupted attempts still running, held so none is collected mid-way
# (the loop keeps only weak references to tasks); one per interrupted attempt at most.
_CLEANUPS: set[asyncio.Task[None]] = set()


async def _shielded(work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.ensure_future(work)
    _CLEANUPS.add(task)
    task.add_done_callback(_CLEANUPS.discard)
    await asyncio.shield(task)


async def _interrupted(
    rt: Runtime, job: JobRecord, route: routing.Route, provider_job_id: str | None
) -> None:
    """After an interrupted call: for a canceled job, free the provider's slot and ask a
    provider with a cancel API to stop the provider job, which would otherwise run on
    (and be billed) there. A stopping worker's job is left as it is, for the next
    attempt to resume (correlation), slot included."""
    try:
        # Bounded: a worker stopping waits for this, and a database or provider that
        # does not answer must not hold it up.
        async with asyncio.timeout(CANCEL_TIMEOUT_S):
            if not await _canceled(rt, job.id):
                return
            log.info("job.attempt_interrupted", job_id=job.id, attempt=job.attempts)
            if route.slot_holder:
                await routing.release(rt, route.provider, route.slot_holder)
            provider = rt.providers.get(route.provider)
            if provider_job_id is not None and isinstance(provider, Cancellable):
                await provider.cancel(provider_job_id, route.model)
    except Exception as error:  # best effort: the job is canceled on our side anyway
        log.warning(
            "job.provider_cancel_failed", job_id=job.id, provider_job_id=provider_job_id,
            error=f"{type(error).__name__}: {error}"[:300],
        )  # fmt: skip


def _list_price(rt: Runtime, job: JobRecord, route: routing.Route, images: int) -> float:
    """The configured price of the images, when the provider does not report one."""
    key = job.params.get("action") or job.params["mode"]
    price = rt.providers.entry(route.provider).price(route.model, str(key))
    if price is None:
        price = rt.providers.entry(route.provider).price(route.model, str(job.params["mode"]))
    return (price or 0.0) * images


def _ignored_params(request: GenerationRequest, caps: Capabilities) -> list[str]:
    """The Midjourney parameters of the job that the chosen provider has no
    equivalent for: recorded on the job, so the client sees what did not apply."""
    ignored = sorted(k for k in request.tuning if k not in caps.tuning)
    if request.style_image is not None and not caps.style_reference:
        ignored.append("style_reference")
    return ignored


class _JobCorrelation:
    """The job row as the keeper of the provider's job id (providers.base.Correlation)."""

    def __init__(self, rt: Runtime, job: JobRecord) -> None:
        self._rt, self._job = rt, job
        self._current = job.provider_job_id

    @property
    def existing(self) -> str | None:
        return self._job.provider_job_id

    @property
    def current(self) -> str | None:
        """The provider job this attempt resumed or submitted, if any."""
        return self._current

    async def record(self, provider_job_id: str) -> None:
        if provider_job_id == self._current:
            return
        async with self._rt.db.begin() as conn:
            await jobs_repo.set_provider_job_id(
                conn, self._job.id, provider_job_id, self._job.attempts
            )
        self._current = provider_job_id

    async def forget(self) -> None:
        """The provider's job ended (failed, refused): the next attempt submits anew."""
        if self._current is not None:
            async with self._rt.db.begin() as conn:
                await jobs_repo.set_provider_job_id(conn, self._job.id, None, self._job.attempts)
            self._current = None


class _ProgressWriter:
    """Writes progress to the job at a bounded rate. A job that finishes within the
    first interval writes none: a fast provider must not turn into a write storm."""

    def __init__(self, rt: Runtime, job: JobRecord) -> None:
        self._rt, self._job = rt, job
        self._last_write = self._last_event = time.monotonic()
        self._last_value = 0

    async def __call__(self, fraction: float) -> None:
        if fraction >= 1.0:
            return  # completion, written next, says 100 anyway
        value = max(0, int(fraction * 100))
        now_mono = time.monotonic()
        if value <= self._last_value or now_mono - self._last_write < PROGRESS_WRITE_INTERVAL_S:
            return
        self._last_write, self._last_value = now_mono, value
        now = self._rt.clock.now()
        async with self._rt.db.begin() as conn:
            moved = await jobs_repo.set_progress(conn, self._job.id, value, now)
            if moved and now_mono - self._last_event >= PROGRESS_EVENT_INTERVAL_S:
                self._last_event = now_mono
                await jobs_repo.add_event(
                    conn, self._job.id, self._job.workspace_id, "job.progress",
                    {"progress": value}, now,
                )  # fmt: skip


async def _store(rt: Runtime, job: JobRecord, made: list[GeneratedImage]) -> list[dict[str, Any]]:
    """Each image decoded at most once, and only when it must be (transcoding, or its
    grid cell), one at a time per job and ``rt.decodes`` at a time per process; the
    grid is built from the shrunk cells, so no two full bitmaps are held at once."""
    stored: list[dict[str, Any]] = []
    fmt = OutputFormat(job.params.get("output_format", OutputFormat.PNG))
    quality = job.params.get("output_quality")  # JPEG/WebP only (services.submission)
    mark = bool(job.params.get("watermark"))  # a plan's (services.quotas)
    grid_size = (made[0].width, made[0].height)
    cells: list[Image.Image] = []
    for index, image in enumerate(made, start=1):
        data = image.data
        # Providers answer in the formats they know; the client asked for one.
        transcode = image.content_type != fmt.content_type or mark or quality is not None
        cell = cell_size(index - 1, grid_size) if len(made) > 1 else None
        if transcode or cell:
            async with rt.decodes:
                data, shrunk = await asyncio.to_thread(
                    _decode, image.data, fmt, transcode, cell, mark, quality
                )
            if shrunk is not None:
                cells.append(shrunk)
        key = image_key(job.workspace_id, job.id, f"{index}.{fmt.extension}")
        await rt.storage.put(key, data, fmt.content_type)
        stored.append(
            _row("image", index, key, image.width, image.height, image.seed, fmt, len(data))
        )
    if cells:
        async with rt.decodes:
            data = await asyncio.to_thread(_grid, cells, grid_size, fmt, quality)
        key = image_key(job.workspace_id, job.id, f"grid.{fmt.extension}")
        await rt.storage.put(key, data, fmt.content_type)
        stored.append(_row("grid", 0, key, *grid_size, None, fmt, len(data)))
    return stored


def _row(
    kind: str,
    index: int,
    key: str,
    width: int,
    height: int,
    seed: int | None,
    fmt: OutputFormat,
    size: int,
) -> dict[str, Any]:
    return {
        "kind": kind, "index": index, "storage_key": key, "width": width, "height": height,
        "seed": seed, "content_type": fmt.content_type, "size_bytes": size,
    }  # fmt: skip


def _decode(
    data: bytes,
    fmt: OutputFormat,
    transcode: bool,
    cell: tuple[int, int] | None,
    mark: bool = False,
    quality: int | None = None,
) -> tuple[bytes, Image.Image | None]:
    """One decode of ``data``: the bytes to store (re-encoded in ``fmt`` at
    ``quality`` if ``transcode``, watermarked first if ``mark``) and, if ``cell``, the
    image shrunk to its grid cell."""
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        image = watermarked(opened) if mark else opened
        out = encode(image, fmt, quality) if transcode else data
        if cell is None:
            return out, None
        with image.convert("RGB") as rgb:
            return out, rgb.resize(cell, Image.Resampling.BILINEAR)


def _grid(
    cells: list[Image.Image], size: tuple[int, int], fmt: OutputFormat, quality: int | None
) -> bytes:
    try:
        with make_grid(cells, size) as grid:
            return encode(grid, fmt, quality)
    finally:
        for cell in cells:
            cell.close()


async def _complete(
    rt: Runtime,
    job: JobRecord,
    stored: list[dict[str, Any]],
    provider_job_id: str | None,
    texts: tuple[str, ...] = (),
    ignored_params: list[str] | None = None,
    call: tuple[routing.Route, routing.CallReport] | None = None,
) -> None:
    """Move the job to completed with its images and event (and, given ``call``, the
    provider call's telemetry), in one transaction."""
    now = rt.clock.now()
    extra: dict[str, Any] = {}
    if texts:
        extra["result_texts"] = list(texts)
    if ignored_params or "ignored_params" in job.params:
        extra["params"] = {**job.params, "ignored_params": ignored_params or []}
    async with rt.db.begin() as conn:
        if call is not None:
            await routing.record_in(conn, rt, *call)
        moved = await jobs_repo.move(
            conn, job.id, JobStatus.COMPLETED, attempt=job.attempts,
            progress=100, completed_at=now, updated_at=now,
            charged_credits=job.estimated_credits, provider_job_id=provider_job_id,
            error_code=None, error_message=None, **extra,
        )  # fmt: skip
        if moved:
            await jobs_repo.add_images(conn, job.id, stored, now)
            # Guarded by the move, and keyed by the run: charged once.
            await ledger_repo.finish(
                conn,
                job.workspace_id,
                job.id,
                EntryKind.SETTLE,
                job.estimated_credits,
                now,
                job.runs,
            )
            await record(
                conn, job_id=job.id, workspace_id=job.workspace_id, event="job.completed",
                now=now, user=job.user, provider=job.provider, model=job.model,
                attempt=job.attempts, duration_ms=_elapsed_ms(job, now),
                estimated_credits=job.estimated_credits,
                stored_keys=[i["storage_key"] for i in stored],
            )  # fmt: skip
    if moved:
        metrics.job_finished(job, JobStatus.COMPLETED.value, now)
    if not moved and await _canceled(rt, job.id):
        # Canceled while generating: the files have no job to belong to. (Not moved for
        # another reason, a later attempt on another worker owns the job and its keys.)
        for image in stored:
            await rt.storage.delete(image["storage_key"])


async def _canceled(rt: Runtime, job_id: str) -> bool:
    async with rt.db.connect() as conn:
        job = await jobs_repo.get_job(conn, job_id, children=False)
    return job is not None and job.status is JobStatus.CANCELED


async def fail(rt: Runtime, job_id: str, outcome: Outcome) -> None:
    """The job gave up: failed, in the dead-letter queue, not charged."""
    now = rt.clock.now()
    async with rt.db.begin() as conn:
        job = await jobs_repo.get_job(conn, job_id, children=False)
        if job is None:
            return
        tracing.enter_job(job)
        moved = await jobs_repo.move(
            conn, job_id, JobStatus.FAILED, attempt=outcome.attempt or None,
            dead_letter=True, completed_at=now, updated_at=now,
            error_code=outcome.error_code, error_message=outcome.error_message,
        )  # fmt: skip
        if moved:
            await record(
                conn, job_id=job_id, workspace_id=job.workspace_id, event="job.failed",
                now=now, user=job.user, provider=job.provider, attempt=job.attempts,
                duration_ms=_elapsed_ms(job, now), error_code=outcome.error_code,
                error_message=outcome.error_message,
            )  # fmt: skip
            # Failed for good: not charged, whatever the provider cost us.
            await ledger_repo.finish(
                conn, job.workspace_id, job_id, EntryKind.VOID, 0, now, job.runs
            )
            if outcome.error_code == ModeratedError.code:
                # In the failing transaction, guarded by the move: recorded once.
                await moderation_repo.insert_decision(conn, _provider_verdict(job, outcome, now))
            metrics.job_finished(job, JobStatus.FAILED.value, now)


async def note_retry(rt: Runtime, job_id: str, outcome: Outcome, delay_s: float) -> None:
    now = rt.clock.now()
    async with rt.db.begin() as conn:
        job = await jobs_repo.get_job(conn, job_id, children=False)
        if job is None or job.status is not JobStatus.RUNNING:
            return
        tracing.enter_job(job)
        await record(
            conn, job_id=job_id, workspace_id=job.workspace_id, event="job.retrying",
            now=now, provider=job.provider, attempt=job.attempts, delay_s=delay_s,
            error_code=outcome.error_code, error_message=outcome.error_message,
        )  # fmt: skip


def _provider_verdict(job: JobRecord, outcome: Outcome, now: datetime) -> ModerationRecord:
    """A provider's refusal of the job, for the workspace's moderation log."""
    return ModerationRecord(
        id=new_id("mod"), workspace_id=job.workspace_id, stage="provider", category=None,
        reason=(outcome.error_message or "")[:500] or None, job_id=job.id,
        key_id=job.api_key_id, end_user=job.user, created_at=now,
        excerpt=None if job.params.get("private_prompts") else job.prompt[:500],
    )  # fmt: skip


def _elapsed_ms(job: JobRecord, now: datetime) -> int | None:
    if job.started_at is None:
        return None
    return int((now - job.started_at).total_seconds() * 1000)
