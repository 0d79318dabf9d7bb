"""Deleting jobs, on real SQLite and PostgreSQL: DELETE /api/image/jobs/{id} removes
the job, its files, events and idempotency records and answers 404 from then on; a
running job is refused until canceled; another workspace's job is untouched; the
retention sweep deletes finished jobs past their workspace's period, files first."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update

from imagegate.db.models import Image, Job, JobEvent
from imagegate.sandbox.openai import API_KEY as EMULATOR_KEY
from imagegate.services import retention
from imagegate.services.keys import create_key
from imagegate.storage.base import image_key
from tests.support.api import client, wait_for_job
from tests.support.jobs import insert_unqueued_job
from tests.support.runtime import MovableClock, migrated_runtime
from tests.support.sandbox import SandboxProcess
from tests.support.server import ServerProcess, wait_until

DAY = timedelta(days=1)


def _job_files(data_dir: Path, job_id: str) -> list[Path]:
    return [p for p in data_dir.rglob("*") if job_id in p.parts and p.is_file()]


def test_delete_a_finished_job(server: ServerProcess, http: httpx.Client) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    created = http.post("/api/image/jobs", json={"prompt": "a lighthouse", "variations": 2},
                        headers=key)  # fmt: skip
    assert created.status_code == 202, created.text
    job = wait_for_job(http, created.json()["job_id"])
    assert job["status"] == "completed" and len(job["images"]) == 2 and job["grid_url"]
    job_id = job["job_id"]
    assert len(_job_files(server.data_dir, job_id)) == 3
    child = http.post(f"/api/image/jobs/{job_id}/actions", json={"action": "upscale", "index": 1})
    assert child.status_code == 202, child.text
    wait_for_job(http, child.json()["job_id"])

    deleted = http.delete(f"/api/image/jobs/{job_id}")
    assert deleted.status_code == 204, deleted.text
    assert http.get(f"/api/image/jobs/{job_id}").json()["code"] == "job_not_found"
    assert http.get(f"/api/image/jobs/{job_id}/events").status_code == 404
    assert _job_files(server.data_dir, job_id) == []
    for url in [job["grid_url"], *(i["url"] for i in job["images"])]:
        assert httpx.get(url, timeout=10).status_code == 404
    listed = [j["job_id"] for j in http.get("/api/image/jobs").json()["data"]]
    assert job_id not in listed and child.json()["job_id"] in listed
    # The child stays, and still names its parent.
    kept = http.get(f"/api/image/jobs/{child.json()['job_id']}").json()
    assert kept["status"] == "completed" and kept["parent_job_id"] == job_id
    # Its idempotency record went too: the same key makes a new job.
    again = http.post("/api/image/jobs", json={"prompt": "a lighthouse", "variations": 2},
                      headers=key)  # fmt: skip
    assert again.status_code == 202 and again.json()["job_id"] != job_id
    assert http.delete(f"/api/image/jobs/{job_id}").status_code == 404


def test_another_workspace_s_job_is_not_deleted(server: ServerProcess, http: httpx.Client) -> None:
    created = http.post("/api/image/jobs", json={"prompt": "a kite", "variations": 1})
    job = wait_for_job(http, created.json()["job_id"])
    with client(server.url, server.create_key(f"ws-{uuid.uuid4().hex[:10]}")) as other:
        response = other.delete(f"/api/image/jobs/{job['job_id']}")
        assert response.status_code == 404 and response.json()["code"] == "job_not_found"
        assert other.delete("/api/image/jobs/not-a-job").status_code == 404
    assert http.get(f"/api/image/jobs/{job['job_id']}").json()["status"] == "completed"
    assert _job_files(server.data_dir, job["job_id"])


@pytest.fixture(scope="module")
def slow_server(
    tmp_path_factory: pytest.TempPathFactory, sandboxes: Callable[[str], SandboxProcess]
) -> Iterator[ServerProcess]:
    emulator = sandboxes("openai")
    data = tmp_path_factory.mktemp("erasure")
    (data / "imagegate.toml").write_text(
        f'[providers.openai]\ntype = "openai"\nbase_url = "{emulator.url}/v1"\n'
        'api_key_env = "ERASURE_TEST_OPENAI_KEY"\n'
    )
    proc = ServerProcess(
        data, IMAGEGATE_CONFIG=str(data / "imagegate.toml"), ERASURE_TEST_OPENAI_KEY=EMULATOR_KEY
    ).start()
    yield proc
    proc.stop()


def test_a_running_job_is_canceled_before_it_is_deleted(slow_server: ServerProcess) -> None:
    with client(slow_server.url, slow_server.create_key(f"ws-{uuid.uuid4().hex[:8]}")) as http:
        body = {"prompt": "a harbour sandbox:slow", "model": "openai", "variations": 1}
        job_id = http.post("/api/image/jobs", json=body).json()["job_id"]
        refused = http.delete(f"/api/image/jobs/{job_id}")
        assert refused.status_code == 409 and refused.json()["code"] == "invalid_state"
        assert http.post(f"/api/image/jobs/{job_id}/cancel").status_code == 200
        wait_until(lambda: http.delete(f"/api/image/jobs/{job_id}").status_code == 204, 10)
        assert http.get(f"/api/image/jobs/{job_id}").status_code == 404


# -- the retention sweep, in process with a clock that moves -------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_retention_deletes_old_jobs_per_workspace(backend: str, tmp_path: Path) -> None:
    config = tmp_path / "imagegate.toml"
    config.write_text("[workspaces.keep-long]\nretention_days = 365\n"
                      "[workspaces.keep-all]\nretention_days = 0\n")  # fmt: skip
    clock = MovableClock()
    async with migrated_runtime(
        backend, tmp_path, clock, retention_jobs_days=30, config=config
    ) as rt:
        now = clock.now()

        async def job(workspace: str, ended_days_ago: int, status: str = "completed") -> str:
            key = await create_key(rt, workspace, "k")
            job_id = await insert_unqueued_job(rt, key.workspace_id, key.key_id, "builtin", "x")
            ended = now - ended_days_ago * DAY
            async with rt.db.begin() as conn:
                await conn.execute(
                    update(Job).where(Job.id == job_id)
                    .values(status=status, completed_at=ended, updated_at=ended)
                )  # fmt: skip
            await rt.storage.put(image_key(key.workspace_id, job_id, "1.png"), b"x", "image/png")
            return job_id

        old = await job("plain", 31)
        recent = await job("plain", 29)
        long_kept = await job("keep-long", 100)
        kept_forever = await job("keep-all", 3000)
        gone_long = await job("keep-long", 366, "failed")

        swept = await retention.sweep(rt)

        assert swept.jobs == 2
        async with rt.db.connect() as conn:
            left = set((await conn.execute(select(Job.id))).scalars())
            events: list[Any] = list((await conn.execute(select(JobEvent.job_id))).scalars())
            images: list[Any] = list((await conn.execute(select(Image.job_id))).scalars())
        assert left == {recent, long_kept, kept_forever}
        assert old not in events and gone_long not in images
        for job_id in (old, gone_long):
            assert _job_files(tmp_path, job_id) == []
        for job_id in left:
            assert _job_files(tmp_path, job_id)
