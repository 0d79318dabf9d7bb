"""engine.inputs.request_for: a follow-up's request carries its source's place in the
parent and, for a parent that ran on the same provider, the parent's provider job id
(midjourney_proxy presses a button on that upstream task)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import update

from imagegate.db import jobs_repo
from imagegate.db.migrate import upgrade
from imagegate.db.models import Job
from imagegate.domain.records import JobRecord
from imagegate.engine.inputs import request_for
from imagegate.providers.base import Action
from imagegate.runtime import Runtime
from imagegate.services.keys import create_key
from imagegate.settings import Settings
from tests.support.jobs import insert_unqueued_job


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    settings = Settings(data_dir=tmp_path)
    settings.ensure_data_dir()
    upgrade(settings.resolved_database_url)
    runtime = Runtime.build(settings)
    try:
        yield runtime
    finally:
        await runtime.close()


async def _parent_and_child(rt: Runtime, parent_provider: str, child_provider: str) -> JobRecord:
    """A finished parent on ``parent_provider`` (upstream task ``task-42``) and an
    upscale of its second image about to run on ``child_provider``."""
    key = await create_key(rt, "w", "k")
    parent_id = await insert_unqueued_job(rt, key.workspace_id, key.key_id, parent_provider, "a")
    child_id = await insert_unqueued_job(rt, key.workspace_id, key.key_id, child_provider, "a")
    await rt.storage.put("inputs/source.png", b"source bytes", "image/png")
    async with rt.db.begin() as conn:
        await conn.execute(
            update(Job.__table__).where(Job.__table__.c.id == parent_id)
            .values(status="completed", provider_job_id="task-42")
        )  # fmt: skip
        child = await jobs_repo.get_job(conn, child_id)
    assert child is not None
    source = {"job_id": parent_id, "index": 2, "key": "inputs/source.png", "width": 64,
              "height": 64, "content_type": "image/png"}  # fmt: skip
    params = {**child.params, "source": source, "source_index": 2, "upscale_factor": 2,
              "upscale_mode": "subtle"}  # fmt: skip
    return replace(child, action="upscale", params=params)


async def test_a_child_on_the_parents_provider_gets_its_task_id(rt: Runtime) -> None:
    child = await _parent_and_child(rt, "mj", "mj")
    request = await request_for(rt, child)
    assert request.action is Action.UPSCALE
    assert request.source_image == b"source bytes"
    assert (request.parent_provider_job_id, request.source_index) == ("task-42", 2)


async def test_a_child_elsewhere_does_not(rt: Runtime) -> None:
    # Another provider's id means nothing upstream: it must not be sent there.
    child = await _parent_and_child(rt, "bfl", "mj")
    request = await request_for(rt, child)
    assert request.parent_provider_job_id is None and request.source_index == 2


async def test_a_job_without_a_source_has_no_parent_task(rt: Runtime) -> None:
    key = await create_key(rt, "w", "k")
    job_id = await insert_unqueued_job(rt, key.workspace_id, key.key_id, "mj", "a")
    async with rt.db.connect() as conn:
        job = await jobs_repo.get_job(conn, job_id)
    assert job is not None
    request = await request_for(rt, job)
    assert request.parent_provider_job_id is None and request.source_index is None
