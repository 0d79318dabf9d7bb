"""The worker's attempt step on a real SQLite database, with providers that misbehave."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from imagegate.db import jobs_repo
from imagegate.db.migrate import upgrade
from imagegate.domain.jobs import JobStatus
from imagegate.domain.params import Mode
from imagegate.engine import runner
from imagegate.providers.base import (
    Capabilities,
    Correlation,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
)
from imagegate.providers.errors import ModeratedError
from imagegate.providers.registry import ProviderRegistry
from imagegate.runtime import Runtime
from imagegate.services.keys import create_key
from imagegate.settings import Settings
from tests.support.jobs import insert_unqueued_job


class Broken:
    """A provider whose behaviour a test chooses."""

    name = "broken"

    def __init__(self, error: Exception | None) -> None:
        self.error = error

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=("broken",), max_images=4, modes=(Mode.DRAFT, Mode.STANDARD), styles=()
        )

    def estimate_credits(self, request: GenerationRequest) -> int:
        return 1

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        if self.error is not None:
            raise self.error
        return GenerationResult(images=())


async def _runtime_with_job(tmp_path: Path, provider: Broken) -> tuple[Runtime, str]:
    settings = Settings(data_dir=tmp_path)
    settings.ensure_data_dir()
    upgrade(settings.resolved_database_url)
    rt = Runtime.build(settings)
    rt.providers = ProviderRegistry({"broken": provider})
    key = await create_key(rt, "w", "k")
    job_id = await insert_unqueued_job(rt, key.workspace_id, key.key_id, "broken", "x")
    return rt, job_id


@pytest.mark.parametrize(
    ("error", "code", "retryable"),
    [
        (RuntimeError("bug in an adapter"), "internal_error", True),
        (None, "provider_error", True),  # returned no images
        (ModeratedError("refused"), "content_policy_violation", False),
    ],
)
async def test_failed_attempts_come_back_as_data(
    tmp_path: Path, error: Exception | None, code: str, retryable: bool
) -> None:
    rt, job_id = await _runtime_with_job(tmp_path, Broken(error))
    try:
        outcome = await runner.attempt(rt, job_id, "test-worker")
        assert not outcome.ok and outcome.error_code == code
        assert outcome.retryable is retryable and outcome.attempt == 1
        await runner.fail(rt, job_id, outcome)
        async with rt.db.connect() as conn:
            job = await jobs_repo.get_job(conn, job_id)
        assert job is not None and job.status is JobStatus.FAILED and job.dead_letter
        assert job.error_code == code and job.charged_credits == 0 and job.images == ()
        # A replayed attempt after the job ended changes nothing.
        assert (await runner.attempt(rt, job_id, "test-worker")).skipped
    finally:
        await rt.close()


class Hanging(Broken):
    """A provider job that never ends by itself: the call waits until it is interrupted,
    and the provider's cancel API records what it was asked to cancel."""

    def __init__(self) -> None:
        super().__init__(None)
        self.started = asyncio.Event()
        self.interrupted = False
        self.cancels: list[tuple[str, str | None]] = []

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        await correlation.record("pred-1")
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.interrupted = True
            raise
        return GenerationResult(images=())

    async def cancel(self, provider_job_id: str, model: str | None = None) -> None:
        self.cancels.append((provider_job_id, model))


async def _interrupt(rt: Runtime, job_id: str, provider: Hanging, *, cancel_job: bool) -> None:
    """Start an attempt, then interrupt its step as DBOS does (a preemptible step's task
    is cancelled), after moving the job to canceled as the cancel route does, or not
    (a worker stopping)."""
    attempt = asyncio.create_task(runner.attempt(rt, job_id, "test-worker"))
    await asyncio.wait_for(provider.started.wait(), 10)
    if cancel_job:
        now = rt.clock.now()
        async with rt.db.begin() as conn:
            assert await jobs_repo.move(conn, job_id, JobStatus.CANCELED, completed_at=now)
    attempt.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(attempt, 10)
    assert provider.interrupted


async def test_an_interrupted_attempt_of_a_canceled_job_cancels_the_provider_job(
    tmp_path: Path,
) -> None:
    provider = Hanging()
    rt, job_id = await _runtime_with_job(tmp_path, provider)
    try:
        await _interrupt(rt, job_id, provider, cancel_job=True)
        assert provider.cancels == [("pred-1", "broken")]
    finally:
        await rt.close()


async def test_a_stopping_worker_leaves_the_provider_job_to_resume(tmp_path: Path) -> None:
    provider = Hanging()
    rt, job_id = await _runtime_with_job(tmp_path, provider)
    try:
        await _interrupt(rt, job_id, provider, cancel_job=False)
        assert provider.cancels == []
        async with rt.db.connect() as conn:
            job = await jobs_repo.get_job(conn, job_id)
        assert job is not None and job.status is JobStatus.RUNNING
        assert job.provider_job_id == "pred-1"  # the next attempt polls it again
    finally:
        await rt.close()
