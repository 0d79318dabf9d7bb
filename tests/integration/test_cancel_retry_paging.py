"""Cancel, dead letter and requeue, and cursor pagination."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.conftest import FAULT_MARKER
from tests.support.api import client, wait_for_job
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose provider takes 4 s per job, so jobs can be caught mid-flight."""
    proc = ServerProcess(
        tmp_path_factory.mktemp("slow"),
        IMAGEGATE_BUILTIN_LATENCY_MS="4000",
        IMAGEGATE_WORKSPACE_CONCURRENCY="1",
    ).start()
    yield proc
    proc.stop()


def test_cancel_running_and_queued_jobs(slow_server: ServerProcess) -> None:
    with client(slow_server.url, slow_server.admin_key) as http:
        body = {"prompt": "a slow river", "variations": 1, "mode": "draft"}
        running = http.post("/api/image/jobs", json=body).json()["job_id"]
        queued = http.post("/api/image/jobs", json=body).json()["job_id"]
        job = wait_for_job(http, running, until={"running"})
        # progress is reported while the provider works
        job = wait_for_job(http, running, until={"running"})
        assert http.get(f"/api/image/jobs/{queued}").json()["status"] == "queued"

        canceled = http.post(f"/api/image/jobs/{queued}/cancel")
        assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
        canceled = http.post(f"/api/image/jobs/{running}/cancel")
        assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"

        again = http.post(f"/api/image/jobs/{running}/cancel")
        assert again.status_code == 409 and again.json()["code"] == "invalid_state"
        # A later job runs at once: the canceled ones no longer hold the workspace's slot.
        later = http.post("/api/image/jobs", json={**body, "prompt": "after"}).json()["job_id"]
        assert wait_for_job(http, later, timeout=30)["status"] == "completed"
        for job_id in (running, queued):
            job = http.get(f"/api/image/jobs/{job_id}").json()
            assert job["status"] == "canceled" and job["result_urls"] == []
            assert job["cost"]["charged_credits"] == 0


def test_progress_is_reported_while_running(slow_server: ServerProcess) -> None:
    with client(slow_server.url, slow_server.admin_key) as http:
        job_id = http.post(
            "/api/image/jobs", json={"prompt": "progress", "variations": 2, "mode": "draft"}
        ).json()["job_id"]
        seen: set[int] = set()
        while (job := http.get(f"/api/image/jobs/{job_id}").json())["status"] != "completed":
            assert job["status"] in {"queued", "running"}
            seen.add(job["progress"])
        assert any(0 < p < 100 for p in seen), seen
        assert job["progress"] == 100


def test_dead_letter_and_requeue(server: ServerProcess) -> None:
    admin_key = server.create_key(f"ops-{uuid.uuid4().hex[:8]}", admin=True)
    with client(server.url, admin_key) as http:
        job_id = http.post(
            "/api/image/jobs", json={"prompt": f"doomed {FAULT_MARKER}", "variations": 1}
        ).json()["job_id"]
        failed = wait_for_job(http, job_id)
        assert failed["status"] == "failed"
        assert failed["dead_letter"] is True and failed["attempts"] == 3
        assert failed["error"]["code"] == "provider_unavailable"
        assert failed["cost"]["charged_credits"] == 0
        dead = http.get("/api/image/jobs", params={"dead_letter": "true"}).json()["data"]
        assert [j["job_id"] for j in dead] == [job_id]

        retried = http.post(f"/api/image/jobs/{job_id}/retry")
        assert retried.status_code == 202 and retried.json()["status"] == "queued"
        done = wait_for_job(http, job_id)
        assert done["status"] == "completed" and done["attempts"] == 4
        assert done["error"] is None and len(done["result_urls"]) == 1
        assert http.get("/api/image/jobs", params={"dead_letter": "true"}).json()["data"] == []
        again = http.post(f"/api/image/jobs/{job_id}/retry")
        assert again.status_code == 409 and again.json()["code"] == "invalid_state"


def test_only_admin_keys_requeue(http: httpx.Client) -> None:
    job_id = http.post(
        "/api/image/jobs", json={"prompt": f"doomed {FAULT_MARKER}", "variations": 1}
    ).json()["job_id"]
    assert wait_for_job(http, job_id)["status"] == "failed"
    refused = http.post(f"/api/image/jobs/{job_id}/retry")
    assert refused.status_code == 403 and refused.json()["code"] == "forbidden"


def test_cursor_pagination_newest_first(http: httpx.Client) -> None:
    ids = [
        http.post(
            "/api/image/jobs", json={"prompt": f"n{i}", "variations": 1, "mode": "draft"}
        ).json()["job_id"]
        for i in range(5)
    ]
    for job_id in ids:
        wait_for_job(http, job_id)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = http.get("/api/image/jobs", params=params).json()
        seen += [j["job_id"] for j in page["data"]]
        assert page["has_more"] == (page["next_cursor"] is not None)
        if not page["has_more"]:
            break
        cursor = page["next_cursor"]
    assert seen == list(reversed(ids))
    completed = http.get("/api/image/jobs", params={"status": "completed,failed"}).json()
    assert len(completed["data"]) == 5
    assert http.get("/api/image/jobs", params={"status": "queued"}).json()["data"] == []


def test_a_provider_call_that_hangs_times_out(tmp_path_factory: pytest.TempPathFactory) -> None:
    proc = ServerProcess(
        tmp_path_factory.mktemp("hang"),
        IMAGEGATE_BUILTIN_LATENCY_MS="30000",
        IMAGEGATE_ATTEMPT_TIMEOUT_S="0.5",
        IMAGEGATE_MAX_ATTEMPTS="2",
    ).start()
    try:
        with client(proc.url, proc.admin_key) as http:
            job_id = http.post(
                "/api/image/jobs", json={"prompt": "slow", "variations": 1, "mode": "draft"}
            ).json()["job_id"]
            job = wait_for_job(http, job_id, timeout=30)
        assert job["status"] == "failed" and job["attempts"] == 2
        assert job["error"]["code"] == "provider_timeout" and job["dead_letter"]
    finally:
        proc.stop()
