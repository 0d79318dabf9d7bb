"""The steps of running one job, as plain async functions over a Runtime.

Each is safe to run twice (a crash between a step's effect and DBOS recording it
replays the step): status changes are guarded, files are overwritten in place,
image rows replaced."""

from __future__ import annotations

import asyncio
import io
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from PIL import Image

from imagegate.db import jobs_repo
from imagegate.domain.jobs import JobStatus
from imagegate.domain.params import Mode
from imagegate.domain.records import JobRecord, StoredImage
from imagegate.engine.lifecycle import record
from imagegate.providers.base import GeneratedImage, GenerationRequest
from imagegate.providers.errors import ProviderError, RateLimitedError
from imagegate.providers.render.grid import make_grid
from imagegate.runtime import Runtime
from imagegate.storage.base import image_key

PROGRESS_WRITE_INTERVAL_S = 0.25
PROGRESS_EVENT_INTERVAL_S = 0.5


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced: images, or an error described as data."""

    ok: bool
    images: list[dict[str, Any]] = field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool = False
    retry_after_s: float | None = None
    provider_job_id: str | None = None
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Outcome:
        return cls(**data)


async def begin_attempt(rt: Runtime, job_id: str) -> int | None:
    """Mark the job running and count the attempt; ``None`` if it must not run."""
    now = rt.clock.now()
    async with rt.sessions.begin() as session:
        job = await jobs_repo.get_job(session, job_id)
        if job is None or job.status.is_terminal():
            return None
        if job.status is JobStatus.QUEUED:
            await jobs_repo.move(
                session,
                job_id,
                [JobStatus.QUEUED],
                JobStatus.RUNNING,
                started_at=now,
                updated_at=now,
            )
        attempt = await jobs_repo.increment_attempts(session, job_id, now)
        await record(
            session,
            job_id=job_id,
            workspace_id=job.workspace_id,
            event="job.running",
            now=now,
            user=job.user,
            provider=job.provider,
            model=job.model,
            attempt=attempt,
        )
    return attempt


def _request(job: JobRecord, attempt: int) -> GenerationRequest:
    p = job.params
    return GenerationRequest(
        prompt=job.prompt,
        negative_prompt=job.negative_prompt,
        width=int(p["width"]),
        height=int(p["height"]),
        seeds=tuple(int(p["seed"]) + i for i in range(int(p["variations"]))),
        style=str(p["style"]),
        mode=Mode(p["mode"]),
        model=str(job.model),
        attempt=attempt,
    )


class _ProgressWriter:
    """Writes progress to the job at a bounded rate: a fast provider must not turn
    into a write storm."""

    def __init__(self, rt: Runtime, job: JobRecord) -> None:
        self._rt, self._job = rt, job
        self._last_write = 0.0
        self._last_event = 0.0
        self._last_value = 0

    async def __call__(self, fraction: float) -> None:
        # Leave 100 for completion: a job is done when its images are stored.
        value = max(0, min(99, int(fraction * 100)))
        now_mono = time.monotonic()
        if value <= self._last_value or now_mono - self._last_write < PROGRESS_WRITE_INTERVAL_S:
            return
        self._last_write, self._last_value = now_mono, value
        now = self._rt.clock.now()
        async with self._rt.sessions.begin() as session:
            moved = await jobs_repo.set_progress(session, self._job.id, value, now)
            if moved and now_mono - self._last_event >= PROGRESS_EVENT_INTERVAL_S:
                self._last_event = now_mono
                await jobs_repo.add_event(
                    session,
                    self._job.id,
                    self._job.workspace_id,
                    "job.progress",
                    {"progress": value},
                    now,
                )


async def generate(rt: Runtime, job_id: str, attempt: int) -> Outcome:
    """Call the provider and store what it returns. Errors come back as data."""
    async with rt.sessions() as session:
        job = await jobs_repo.get_job(session, job_id)
    if job is None or job.status is not JobStatus.RUNNING:
        return Outcome(ok=False, skipped=True)
    provider = rt.providers.get(str(job.provider))
    try:
        result = await provider.generate(_request(job, attempt), _ProgressWriter(rt, job))
    except ProviderError as error:
        return Outcome(
            ok=False,
            error_code=error.code,
            error_message=error.message,
            retryable=error.retryable,
            retry_after_s=error.retry_after if isinstance(error, RateLimitedError) else None,
            provider_job_id=error.provider_job_id,
        )
    images = await _store(rt, job, list(result.images))
    return Outcome(ok=True, images=images, provider_job_id=result.provider_job_id)


async def _store(rt: Runtime, job: JobRecord, images: list[GeneratedImage]) -> list[dict[str, Any]]:
    stored: list[dict[str, Any]] = []
    for index, image in enumerate(images, start=1):
        key = image_key(job.workspace_id, job.id, f"{index}.png")
        await rt.storage.put(key, image.data, image.content_type)
        stored.append(
            _image_row(
                "image",
                index,
                key,
                image.width,
                image.height,
                image.seed,
                image.content_type,
                len(image.data),
            )
        )
    if len(images) > 1:
        data, width, height = await asyncio.to_thread(_grid_png, [i.data for i in images])
        key = image_key(job.workspace_id, job.id, "grid.png")
        await rt.storage.put(key, data, "image/png")
        stored.append(_image_row("grid", 0, key, width, height, None, "image/png", len(data)))
    return stored


def _image_row(
    kind: str,
    index: int,
    key: str,
    width: int,
    height: int,
    seed: int | None,
    content_type: str,
    size: int,
) -> dict[str, Any]:
    return {
        "kind": kind,
        "index": index,
        "storage_key": key,
        "width": width,
        "height": height,
        "seed": seed,
        "content_type": content_type,
        "size_bytes": size,
    }


def _grid_png(datas: list[bytes]) -> tuple[bytes, int, int]:
    grid = make_grid([Image.open(io.BytesIO(d)).convert("RGB") for d in datas])
    out = io.BytesIO()
    grid.save(out, format="PNG", compress_level=1)
    return out.getvalue(), grid.width, grid.height


async def complete(rt: Runtime, job_id: str, outcome: Outcome) -> None:
    now = rt.clock.now()
    images = [
        StoredImage(**{k: v for k, v in i.items() if k != "size_bytes"}) for i in outcome.images
    ]
    async with rt.sessions.begin() as session:
        job = await jobs_repo.get_job(session, job_id)
        if job is None:
            return
        moved = await jobs_repo.move(
            session,
            job_id,
            [JobStatus.RUNNING],
            JobStatus.COMPLETED,
            progress=100,
            completed_at=now,
            updated_at=now,
            charged_credits=job.estimated_credits,
            provider_job_id=outcome.provider_job_id,
            error_code=None,
            error_message=None,
        )
        if moved:
            await jobs_repo.replace_images(
                session, job_id, images, [i["size_bytes"] for i in outcome.images], now
            )
            await record(
                session,
                job_id=job_id,
                workspace_id=job.workspace_id,
                event="job.completed",
                now=now,
                user=job.user,
                provider=job.provider,
                model=job.model,
                attempt=job.attempts,
                duration_ms=_elapsed_ms(job, now),
                estimated_credits=job.estimated_credits,
                stored_keys=[i.storage_key for i in images],
            )
    if not moved:
        # Canceled while generating: the files have no job to belong to.
        for image in images:
            await rt.storage.delete(image.storage_key)


async def fail(rt: Runtime, job_id: str, outcome: Outcome) -> None:
    now = rt.clock.now()
    async with rt.sessions.begin() as session:
        job = await jobs_repo.get_job(session, job_id)
        if job is None:
            return
        moved = await jobs_repo.move(
            session,
            job_id,
            [JobStatus.RUNNING, JobStatus.QUEUED],
            JobStatus.FAILED,
            dead_letter=True,
            completed_at=now,
            updated_at=now,
            error_code=outcome.error_code,
            error_message=outcome.error_message,
        )
        if moved:
            await record(
                session,
                job_id=job_id,
                workspace_id=job.workspace_id,
                event="job.failed",
                now=now,
                user=job.user,
                provider=job.provider,
                attempt=job.attempts,
                duration_ms=_elapsed_ms(job, now),
                error_code=outcome.error_code,
                error_message=outcome.error_message,
            )


async def note_retry(rt: Runtime, job_id: str, outcome: Outcome, delay_s: float) -> None:
    now = rt.clock.now()
    async with rt.sessions.begin() as session:
        job = await jobs_repo.get_job(session, job_id)
        if job is None or job.status is not JobStatus.RUNNING:
            return
        await record(
            session,
            job_id=job_id,
            workspace_id=job.workspace_id,
            event="job.retrying",
            now=now,
            provider=job.provider,
            attempt=job.attempts,
            delay_s=delay_s,
            error_code=outcome.error_code,
            error_message=outcome.error_message,
        )


def _elapsed_ms(job: JobRecord, now: datetime) -> int | None:
    if job.started_at is None:
        return None
    return int((now - job.started_at).total_seconds() * 1000)
