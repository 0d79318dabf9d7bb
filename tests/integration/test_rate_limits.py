"""Rate limits over real HTTP: servers of their own with small limits, counting in
process and in the real local Redis."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from imagegate.db import idempotency_repo
from imagegate.domain.records import Principal
from imagegate.rate_limits import RedisCounterStore
from imagegate.runtime import Runtime
from imagegate.services import rate_limits
from imagegate.services.keys import Authenticator
from imagegate.settings import Settings
from tests.support.api import client
from tests.support.server import ServerProcess, free_port, wait_until

REDIS_URL = os.environ.get("IMAGEGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
BODY = {"prompt": "a kite over the dunes", "variations": 1, "mode": "draft"}
LIMITS = {"IMAGEGATE_RATE_LIMIT_JOBS": "3/minute", "IMAGEGATE_RATE_LIMIT_REQUESTS": "20/minute"}


def _limited_server(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> ServerProcess:
    """A server allowing 3 jobs a minute per workspace and 20 requests per key."""
    data_dir = tmp_path_factory.mktemp("limited")
    return ServerProcess(data_dir, IMAGEGATE_REDIS_URL=redis_url, **LIMITS).start()


@pytest.fixture(scope="module")
def memory_limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = _limited_server(tmp_path_factory, "")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def redis_limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = _limited_server(tmp_path_factory, REDIS_URL)
    yield proc
    proc.stop()


@pytest.fixture(params=["memory", "redis"])
def limited(request: pytest.FixtureRequest) -> ServerProcess:
    """Each test below runs against counts kept in process and in Redis."""
    server: ServerProcess = request.getfixturevalue(f"{request.param}_limited")
    return server


def _principal(server: ServerProcess, api_key: str) -> Principal:
    async def look_up() -> Principal:
        rt = Runtime.build(Settings(data_dir=server.data_dir))
        try:
            return await Authenticator(rt)(api_key)
        finally:
            await rt.close()

    return asyncio.run(look_up())


def _stored_key(server: ServerProcess, principal: Principal, key: str) -> bool:
    async def look_up() -> bool:
        rt = Runtime.build(Settings(data_dir=server.data_dir))
        try:
            async with rt.db.connect() as conn:
                return await idempotency_repo.find(conn, principal.workspace_id, key) is not None
        finally:
            await rt.close()

    return asyncio.run(look_up())


def _job_count(http: httpx.Client) -> int:
    return len(http.get("/api/image/jobs", params={"limit": 100}).json()["data"])


def test_the_fourth_create_is_refused_and_changes_nothing(limited: ServerProcess) -> None:
    api_key = limited.create_key(f"ws-{uuid.uuid4().hex[:10]}")
    with client(limited.url, api_key) as http:
        first = http.post("/api/image/jobs", json=BODY, headers={"Idempotency-Key": "first"})
        created = [first] + [http.post("/api/image/jobs", json=BODY) for _ in range(2)]
        assert [r.status_code for r in created] == [202] * 3
        assert [r.headers["RateLimit-Remaining"] for r in created] == ["2", "1", "0"]
        assert created[0].headers["RateLimit-Limit"] == "3"
        assert created[0].headers["RateLimit-Policy"] == "3;w=60"
        assert 1 <= int(created[0].headers["RateLimit-Reset"]) <= 60

        refused = http.post("/api/image/jobs", json=BODY, headers={"Idempotency-Key": "fourth"})
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        problem = refused.json()
        assert problem["code"] == "rate_limited" and problem["status"] == 429
        assert "3/minute jobs per workspace" in problem["detail"]
        retry_after = int(refused.headers["Retry-After"])
        assert retry_after >= 1 and problem["retry_after"] == retry_after
        assert refused.headers["RateLimit-Remaining"] == "0"
        assert refused.headers["RateLimit-Limit"] == "3"

        assert _job_count(http) == 3
        assert not _stored_key(limited, _principal(limited, api_key), "fourth")
        # A replay creates nothing, so the spent limit does not stand in its way.
        replay = http.post("/api/image/jobs", json=BODY, headers={"Idempotency-Key": "first"})
        assert replay.status_code == 202 and replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["job_id"] == first.json()["job_id"]
        assert http.post("/api/image/jobs", json=BODY).status_code == 429
        assert _job_count(http) == 3


def test_requests_are_limited_per_key_and_health_is_not(limited: ServerProcess) -> None:
    workspace = f"ws-{uuid.uuid4().hex[:10]}"
    with client(limited.url, limited.create_key(workspace)) as http:
        answers = [http.get("/api/image/jobs") for _ in range(20)]
        assert {r.status_code for r in answers} == {200}
        assert answers[0].headers["RateLimit-Limit"] == "20"
        assert answers[-1].headers["RateLimit-Remaining"] == "0"
        refused = http.get("/api/image/jobs/job_nope")
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
        assert int(refused.headers["Retry-After"]) >= 1
        for path in ("/healthz", "/readyz"):
            answer = http.get(path)
            assert answer.status_code == 200 and "RateLimit-Limit" not in answer.headers
    with client(limited.url, limited.create_key(workspace)) as other_key:
        # Another key of the same workspace has its own count, and errors carry it too.
        missing = other_key.get("/api/image/jobs/job_nope")
        assert missing.status_code == 404 and missing.headers["RateLimit-Remaining"] == "19"
    with client(limited.url, None) as anonymous:
        assert anonymous.get("/api/image/jobs").status_code == 401


def test_the_count_is_shared_through_redis(redis_limited: ServerProcess) -> None:
    """Another process (this test) spends the workspace's jobs in Redis: the server
    sees them gone."""
    api_key = redis_limited.create_key(f"ws-{uuid.uuid4().hex[:10]}")
    workspace_id = _principal(redis_limited, api_key).workspace_id

    async def spend(n: int) -> None:
        store = RedisCounterStore.from_url(REDIS_URL)
        try:
            await store.add(rate_limits.job_counter(workspace_id), n, 60)
        finally:
            await store.close()

    with client(redis_limited.url, api_key) as http:
        assert http.post("/api/image/jobs", json=BODY).headers["RateLimit-Remaining"] == "2"
        asyncio.run(spend(2))
        refused = http.post("/api/image/jobs", json=BODY)
        assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
        assert _job_count(http) == 1


def test_an_unreachable_redis_lets_requests_through(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data",
        IMAGEGATE_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        IMAGEGATE_RATE_LIMIT_JOBS="1/minute",
    ).start()
    try:
        with client(server.url, server.admin_key) as http:
            created = [http.post("/api/image/jobs", json=BODY) for _ in range(3)]
            assert [r.status_code for r in created] == [202] * 3
            assert "RateLimit-Limit" not in created[0].headers
            ready = http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["counters"].startswith("unavailable")
        wait_until(lambda: "counters.unavailable" in server.log(), 10, what="a logged warning")
    finally:
        server.stop()
