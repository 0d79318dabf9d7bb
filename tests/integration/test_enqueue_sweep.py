"""A job whose enqueue fails after its row committed still runs, without a restart:
the elected reaper's enqueue sweep queues it (services.enqueue_sweep)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.conftest import FAULT_MARKER
from tests.support import enqueue_faults
from tests.support.api import client, wait_for_job
from tests.support.postgres import fresh_database
from tests.support.server import ServerProcess


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def faulty_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server whose first enqueue of every job run fails after the commit."""
    with ExitStack() as stack:
        database = {}
        if request.param == "postgresql":
            database["IMAGEGATE_DATABASE_URL"] = stack.enter_context(fresh_database())
        proc = ServerProcess(
            tmp_path_factory.mktemp(f"faulty-{request.param}"),
            program=[sys.executable, str(Path(enqueue_faults.__file__))],
            IMAGEGATE_WORKER_HEARTBEAT_INTERVAL_S="0.5",
            IMAGEGATE_ENQUEUE_SWEEP_GRACE_S="1",
            IMAGEGATE_BUILTIN_FAULT_MARKER=FAULT_MARKER,
            IMAGEGATE_BUILTIN_FAULT_ATTEMPTS="3",
            IMAGEGATE_MAX_ATTEMPTS="3",
            **database,
        ).start()
        yield proc
        proc.stop()


def test_a_created_job_whose_enqueue_failed_completes(faulty_server: ServerProcess) -> None:
    assert faulty_server.proc is not None
    pid = faulty_server.proc.pid
    with client(faulty_server.url, faulty_server.admin_key) as http:
        created = http.post("/api/image/jobs", json={"prompt": "a lost cat", "variations": 1})
        # The job is recorded, so the answer is the usual 202, not the enqueue's error.
        assert created.status_code == 202, created.text
        job_id = created.json()["job_id"]
        job = wait_for_job(http, job_id, timeout=60)
        assert job["status"] == "completed" and len(job["result_urls"]) == 1
    assert f"enqueue of {job_id} run 1 failed" in faulty_server.log()
    assert faulty_server.proc.pid == pid and faulty_server.proc.poll() is None


def test_a_requeued_job_whose_enqueue_failed_completes(faulty_server: ServerProcess) -> None:
    with client(faulty_server.url, faulty_server.admin_key) as http:
        body = {"prompt": f"a stubborn dog {FAULT_MARKER}", "variations": 1}
        job_id = http.post("/api/image/jobs", json=body).json()["job_id"]
        dead = wait_for_job(http, job_id, timeout=60)
        assert dead["status"] == "failed" and dead["attempts"] == 3
        retried = http.post(f"/api/image/jobs/{job_id}/retry")
        assert retried.status_code == 202, retried.text
        job = wait_for_job(http, job_id, timeout=60)
        assert job["status"] == "completed" and job["attempts"] == 4
    assert f"enqueue of {job_id} run 2 failed" in faulty_server.log()
