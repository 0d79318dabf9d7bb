"""A resumed attempt (a provider job already in flight) goes through the same gates as
a new call: the circuit breaker and the provider's concurrency slots."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import update

from imagegate.db import jobs_repo, providers_repo
from imagegate.db.migrate import upgrade
from imagegate.db.models import Job
from imagegate.domain.records import JobRecord
from imagegate.engine import routing
from imagegate.providers.config import ProviderTable
from imagegate.providers.registry import ProviderEntry, ProviderRegistry
from imagegate.runtime import Runtime
from imagegate.services.keys import create_key
from imagegate.settings import Settings
from tests.integration.test_runner import Broken
from tests.support.jobs import insert_unqueued_job


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(data_dir=tmp_path)
    settings.ensure_data_dir()
    upgrade(settings.resolved_database_url)
    runtime = Runtime.build(settings)
    runtime.providers = ProviderRegistry(
        [
            # A network provider (its breaker is on) that takes one call at a time,
            # and a spare that a new job could fall back to.
            ProviderEntry("remote", "replicate", Broken(None), ProviderTable(concurrency=1), 0),
            ProviderEntry("spare", "replicate", Broken(None), ProviderTable(), 1),
        ]
    )
    try:
        yield runtime
    finally:
        await runtime.close()


async def _resumable_job(rt: Runtime) -> JobRecord:
    """A running job whose earlier attempt left a provider job in flight on ``remote``."""
    key = await create_key(rt, "w", "k")
    job_id = await insert_unqueued_job(rt, key.workspace_id, key.key_id, "remote", "x")
    async with rt.db.begin() as conn:
        await conn.execute(
            update(Job.__table__)
            .where(Job.__table__.c.id == job_id)
            .values(status="running", attempts=1, model="broken", provider_job_id="pred_1")
        )
        job = await jobs_repo.get_job(conn, job_id)
    assert job is not None and job.provider == "remote"
    return job


async def test_a_resumed_attempt_takes_a_slot(rt: Runtime) -> None:
    job = await _resumable_job(rt)
    route = await routing.choose(rt, job, holder=f"{job.id}:2")
    assert isinstance(route, routing.Route)
    assert (route.provider, route.model, route.slot_holder) == ("remote", "broken", f"{job.id}:2")
    # The slot is held now: another resumed attempt waits for it.
    waiting = await routing.choose(rt, job, holder=f"{job.id}:3")
    assert isinstance(waiting, routing.Wait) and waiting.retry_after_s > 0
    await routing.release(rt, "remote", f"{job.id}:2")
    again = await routing.choose(rt, job, holder=f"{job.id}:3")
    assert isinstance(again, routing.Route) and again.provider == "remote"


async def test_a_resumed_attempt_waits_for_an_open_circuit_and_never_falls_back(
    rt: Runtime,
) -> None:
    job = await _resumable_job(rt)
    async with rt.db.begin() as conn:
        assert await providers_repo.trip(conn, "remote", rt.clock.now())
    route = await routing.choose(rt, job, holder=f"{job.id}:2")
    # Not "remote" (its circuit is open) and not "spare": the provider job runs on remote.
    assert isinstance(route, routing.Wait)
    assert 0 < route.retry_after_s <= rt.providers.config.breaker.open_s
