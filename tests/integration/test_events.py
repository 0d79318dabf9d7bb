"""Live progress: Server-Sent Events per job and per workspace, resumable with
Last-Event-ID, and ``Prefer: wait`` on create."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from imagegate.api.routes.jobs import wait_preference
from tests.support.api import client, wait_for_job
from tests.support.server import ServerProcess
from tests.support.sse import read_events

SLOW = {"variations": 1, "mode": "draft"}


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Jobs take 1.5 s, long enough to report progress."""
    proc = ServerProcess(
        tmp_path_factory.mktemp("slow"), IMAGEGATE_BUILTIN_LATENCY_MS="1500"
    ).start()
    yield proc
    proc.stop()


def create(server: ServerProcess, key: str, prompt: str) -> str:
    with client(server.url, key) as http:
        response = http.post("/api/image/jobs", json={"prompt": prompt, **SLOW})
        assert response.status_code == 202, response.text
        return str(response.json()["job_id"])


def test_a_job_stream_tells_its_whole_life_in_order(slow_server: ServerProcess) -> None:
    key = slow_server.admin_key
    job_id = create(slow_server, key, "a kite over dunes")
    events = read_events(f"{slow_server.url}/api/image/jobs/{job_id}/events", key)

    types = [e["event"] for e in events]
    assert types[0] == "job.queued"
    assert types[1] == "job.running"
    assert types[-1] == "job.completed"
    assert "job.progress" in types
    assert set(types[2:-1]) == {"job.progress"}
    ids = [int(e["id"]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    progress = [e["data"]["data"]["progress"] for e in events if e["event"] == "job.progress"]
    assert progress == sorted(progress) and all(0 < p < 100 for p in progress)
    assert all(e["data"]["job_id"] == job_id for e in events)
    finished = events[-1]["data"]["job"]
    assert finished["status"] == "completed" and len(finished["result_urls"]) == 1


def test_a_reconnect_with_last_event_id_loses_and_repeats_nothing(
    slow_server: ServerProcess,
) -> None:
    key = slow_server.admin_key
    job_id = create(slow_server, key, "a lighthouse, reconnecting")
    url = f"{slow_server.url}/api/image/jobs/{job_id}/events"
    first = read_events(url, key, limit=2)  # then the client drops the connection
    rest = read_events(url, key, last_event_id=first[-1]["id"])
    everything = read_events(url, key)  # the job has ended: the full, stored history

    assert [e["id"] for e in first + rest] == [e["id"] for e in everything]
    assert rest[-1]["event"] == "job.completed"


def test_the_workspace_stream_carries_only_its_own_jobs(slow_server: ServerProcess) -> None:
    mine = slow_server.create_key(f"ws-{uuid.uuid4().hex[:8]}")
    theirs = slow_server.create_key(f"ws-{uuid.uuid4().hex[:8]}")
    seen: list[dict[str, Any]] = []

    def listen() -> None:
        # Two jobs, each queued → running → progress… → completed: stop at the second end.
        for event in _stream_until(f"{slow_server.url}/api/image/events", mine, ends=2):
            seen.append(event)

    listener = threading.Thread(target=listen)
    listener.start()
    ours = {create(slow_server, mine, "ours one"), create(slow_server, mine, "ours two")}
    create(slow_server, theirs, "not ours")
    listener.join(timeout=60)
    assert not listener.is_alive()
    assert {e["data"]["job_id"] for e in seen} == ours
    for job_id in ours:
        types = [e["event"] for e in seen if e["data"]["job_id"] == job_id]
        assert types[0] == "job.queued" and types[-1] == "job.completed"


def _stream_until(url: str, key: str, ends: int) -> Iterator[dict[str, Any]]:
    done = 0
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.stream("GET", url, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        event: dict[str, str] = {}
        for line in response.iter_lines():
            if line == "" and "data" in event:
                yield {**event, "data": json.loads(event["data"])}
                done += event["event"] == "job.completed"
                if done >= ends:
                    return
                event = {}
            elif line and not line.startswith(":"):
                name, _, value = line.partition(":")
                event[name] = value.removeprefix(" ")


def test_another_workspaces_job_stream_is_404(server: ServerProcess, http: httpx.Client) -> None:
    job_id = http.post("/api/image/jobs", json={"prompt": "private", **SLOW}).json()["job_id"]
    stranger = server.create_key(f"ws-{uuid.uuid4().hex[:8]}")
    response = httpx.get(
        f"{server.url}/api/image/jobs/{job_id}/events",
        headers={"Authorization": f"Bearer {stranger}"},
    )
    assert response.status_code == 404
    assert response.json()["code"] == "job_not_found"


def test_a_bad_last_event_id_is_refused(server: ServerProcess, http: httpx.Client) -> None:
    job_id = http.post("/api/image/jobs", json={"prompt": "x", **SLOW}).json()["job_id"]
    response = http.get(
        f"/api/image/jobs/{job_id}/events", headers={"Last-Event-ID": "not-a-number"}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_prefer_wait_answers_with_the_finished_job(http: httpx.Client) -> None:
    response = http.post(
        "/api/image/jobs", json={"prompt": "waited for", **SLOW}, headers={"Prefer": "wait=30"}
    )
    assert response.status_code == 200
    assert response.headers["Preference-Applied"] == "wait=30"
    job = response.json()
    assert job["status"] == "completed" and len(job["result_urls"]) == 1


def test_prefer_wait_that_runs_out_answers_202(slow_server: ServerProcess) -> None:
    with client(slow_server.url, slow_server.admin_key) as http:
        response = http.post(
            "/api/image/jobs",
            json={"prompt": "too slow to wait for", **SLOW},
            headers={"Prefer": "respond-async, wait=1"},
        )
        assert response.status_code == 202
        assert response.headers["Preference-Applied"] == "wait=1"
        assert response.json()["status"] in {"queued", "running"}
        assert wait_for_job(http, response.json()["job_id"])["status"] == "completed"


def test_prefer_wait_is_capped() -> None:
    assert wait_preference("wait=600", 60) == 60
    assert wait_preference("respond-async, wait=5", 60) == 5
    assert wait_preference("wait=soon", 60) is None
    assert wait_preference(None, 60) is None
