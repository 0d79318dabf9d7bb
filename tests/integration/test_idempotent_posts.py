"""``Idempotency-Key`` on every POST besides job creation (tests/integration/
test_idempotency.py): cancel, retry, webhook endpoint create, rotate-secret and
redeliver each replay their first answer, with no second effect; another request
with the same key is 422."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import FAULT_MARKER
from tests.support.api import client, wait_for_job
from tests.support.postgres import fresh_database
from tests.support.server import ServerProcess, wait_until

JOB = {"prompt": "a slow lighthouse", "variations": 1, "mode": "draft"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def posts_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Slow jobs, one at a time per workspace (so one can be caught queued); faulty
    prompts dead-letter on their only attempt; loopback webhook URLs allowed."""
    with ExitStack() as stack:
        database = {}
        if request.param == "postgresql":
            database["IMAGEGATE_DATABASE_URL"] = stack.enter_context(fresh_database())
        proc = ServerProcess(
            tmp_path_factory.mktemp(f"posts-{request.param}"),
            IMAGEGATE_BUILTIN_LATENCY_MS="1500",
            IMAGEGATE_WORKSPACE_CONCURRENCY="1",
            IMAGEGATE_BUILTIN_FAULT_MARKER=FAULT_MARKER,
            IMAGEGATE_BUILTIN_FAULT_ATTEMPTS="1",
            IMAGEGATE_MAX_ATTEMPTS="1",
            IMAGEGATE_SSRF_ALLOWLIST="127.0.0.0/8",
            **database,
        ).start()
        yield proc
        proc.stop()


@pytest.fixture
def admin(posts_server: ServerProcess) -> Iterator[httpx.Client]:
    key = posts_server.create_key(f"ws-{uuid.uuid4().hex[:10]}", admin=True)
    with client(posts_server.url, key) as c:
        yield c


def _key() -> dict[str, str]:
    return {"Idempotency-Key": uuid.uuid4().hex}


def _replays(first: httpx.Response, second: httpx.Response) -> None:
    assert second.status_code == first.status_code, second.text
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers


def _reused(response: httpx.Response) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "idempotency_key_reused"


def test_cancel_replays(admin: httpx.Client) -> None:
    running = admin.post("/api/image/jobs", json=JOB).json()["job_id"]
    queued = admin.post("/api/image/jobs", json=JOB).json()["job_id"]
    key = _key()
    first = admin.post(f"/api/image/jobs/{queued}/cancel", headers=key)
    assert first.status_code == 200 and first.json()["status"] == "canceled"
    # Without the key, a second cancel is refused (409): the replay is not a second cancel.
    _replays(first, admin.post(f"/api/image/jobs/{queued}/cancel", headers=key))
    assert admin.post(f"/api/image/jobs/{queued}/cancel").status_code == 409
    _reused(admin.post(f"/api/image/jobs/{running}/cancel", headers=key))
    assert admin.get(f"/api/image/jobs/{running}").json()["status"] in {"queued", "running"}
    wait_for_job(admin, running)


def test_retry_replays(admin: httpx.Client) -> None:
    job_id = admin.post("/api/image/jobs", json={**JOB, "prompt": f"x {FAULT_MARKER}"}).json()[
        "job_id"
    ]
    assert wait_for_job(admin, job_id)["status"] == "failed"
    key = _key()
    first = admin.post(f"/api/image/jobs/{job_id}/retry", headers=key)
    assert first.status_code == 202, first.text
    _replays(first, admin.post(f"/api/image/jobs/{job_id}/retry", headers=key))
    assert first.headers["location"] == f"/api/image/jobs/{job_id}"
    _reused(admin.post("/api/image/jobs/job_other/retry", headers=key))
    job = wait_for_job(admin, job_id)
    assert job["status"] == "completed" and job["attempts"] == 2  # one requeue, not two


def _endpoint_body() -> dict[str, Any]:
    return {"url": "http://127.0.0.1:9/hook", "description": "replay"}


def test_webhook_endpoint_create_replays_with_its_secret(
    admin: httpx.Client, posts_server: ServerProcess
) -> None:
    key = _key()
    first = admin.post("/api/image/webhooks", json=_endpoint_body(), headers=key)
    assert first.status_code == 201, first.text
    assert first.json()["secret"].startswith("whsec_")
    _replays(first, admin.post("/api/image/webhooks", json=_endpoint_body(), headers=key))
    assert len(admin.get("/api/image/webhooks").json()["data"]) == 1
    _reused(
        admin.post(
            "/api/image/webhooks", json={**_endpoint_body(), "description": "b"}, headers=key
        )
    )
    # The stored answer keeps the secret sealed, not in clear.
    assert first.json()["secret"].encode() not in _database_bytes(posts_server)


def _database_bytes(server: ServerProcess) -> bytes:
    url = server.env.get("IMAGEGATE_DATABASE_URL")
    if url is None:
        return b"".join(p.read_bytes() for p in server.data_dir.glob("*.db*") if p.is_file())
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT response::text FROM idempotency_records").fetchall()
    return "\n".join(str(r[0]) for r in rows).encode()


def test_rotate_secret_replays(admin: httpx.Client, posts_server: ServerProcess) -> None:
    endpoint = admin.post("/api/image/webhooks", json=_endpoint_body()).json()
    path = f"/api/image/webhooks/{endpoint['id']}"
    key = _key()
    first = admin.post(f"{path}/rotate-secret", headers=key)
    assert first.status_code == 200, first.text
    _replays(first, admin.post(f"{path}/rotate-secret", headers=key))
    # One rotation: the current secret is the first answer's, the previous the original.
    assert admin.get(f"{path}/secret").json()["key"] == first.json()["key"]
    assert first.json()["key"].encode() not in _database_bytes(posts_server)
    _reused(admin.post("/api/image/webhooks/ep_other/rotate-secret", headers=key))


def test_redeliver_replays(admin: httpx.Client) -> None:
    endpoint = admin.post("/api/image/webhooks", json=_endpoint_body()).json()
    job = admin.post("/api/image/jobs", json={**JOB, "prompt": "a hook"}).json()
    wait_for_job(admin, job["job_id"])  # its events, and so its deliveries, are all made
    path = f"/api/image/webhooks/{endpoint['id']}/deliveries"
    deliveries = wait_until(lambda: admin.get(path).json()["data"], 30, 0.1, "a delivery")
    delivery = deliveries[-1]["id"]
    count = len(admin.get(path, params={"limit": 100}).json()["data"])
    key = _key()
    first = admin.post(f"/api/image/webhooks/deliveries/{delivery}/redeliver", headers=key)
    assert first.status_code == 202, first.text
    again = admin.post(f"/api/image/webhooks/deliveries/{delivery}/redeliver", headers=key)
    _replays(first, again)
    ids = {d["id"] for d in admin.get(path, params={"limit": 100}).json()["data"]}
    assert first.json()["id"] in ids and len(ids) == count + 1  # one new delivery, not two
    _reused(admin.post("/api/image/webhooks/deliveries/dlv_other/redeliver", headers=key))
