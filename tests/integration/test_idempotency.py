"""Idempotency-Key: replay, reuse with another body, in flight, and a concurrent burst."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import httpx

from imagegate.api.idempotency import fingerprint
from imagegate.db import idempotency_repo
from imagegate.runtime import Runtime
from imagegate.services.keys import Authenticator
from tests.support.api import wait_for_job
from tests.support.server import ServerProcess

BODY = {"prompt": "a paper boat on a pond", "variations": 1, "mode": "draft"}


def test_replay_returns_the_first_response(http: httpx.Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = http.post("/api/image/jobs", json=BODY, headers=key)
    second = http.post("/api/image/jobs", json=dict(reversed(list(BODY.items()))), headers=key)
    assert first.status_code == second.status_code == 202
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert len(http.get("/api/image/jobs").json()["data"]) == 1
    wait_for_job(http, first.json()["job_id"])


def test_same_key_other_body_is_422(http: httpx.Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    assert http.post("/api/image/jobs", json=BODY, headers=key).status_code == 202
    reused = http.post("/api/image/jobs", json={**BODY, "prompt": "another"}, headers=key)
    assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
    assert len(http.get("/api/image/jobs").json()["data"]) == 1


def test_keys_are_scoped_per_workspace(server: ServerProcess, http: httpx.Client) -> None:
    key = {"Idempotency-Key": "shared-key"}
    mine = http.post("/api/image/jobs", json=BODY, headers=key).json()
    other_key = server.create_key(f"other-{uuid.uuid4().hex[:8]}")
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {other_key}"}) as c:
        theirs = c.post("/api/image/jobs", json=BODY, headers=key).json()
    assert theirs["job_id"] != mine["job_id"]


def test_invalid_key_header_is_400(http: httpx.Client) -> None:
    response = http.post("/api/image/jobs", json=BODY, headers={"Idempotency-Key": "x" * 256})
    assert response.status_code == 400 and response.json()["code"] == "invalid_idempotency_key"


def _hold_key(
    server: ServerProcess, api_key: str, key: str, body_hash: str, age: timedelta, ttl: timedelta
) -> None:
    """Claim ``key`` as an earlier request would have, ``age`` ago, kept for ``ttl``."""

    async def claim() -> None:
        rt = Runtime.build(server.settings())
        try:
            principal = await Authenticator(rt)(api_key)
            then = rt.clock.now() - age
            async with rt.db.begin() as conn:
                held = await idempotency_repo.claim(
                    conn, principal.workspace_id, key, body_hash, "earlier", then, then + ttl
                )
                assert held is None
        finally:
            await rt.close()

    asyncio.run(claim())


def test_in_flight_key_is_409(
    server: ServerProcess, http: httpx.Client, workspace_key: str
) -> None:
    """A first request still being processed holds the key: the retry gets 409."""
    body_hash = fingerprint("create_job", BODY)
    _hold_key(server, workspace_key, "in-flight", body_hash, timedelta(0), timedelta(hours=1))
    response = http.post("/api/image/jobs", json=BODY, headers={"Idempotency-Key": "in-flight"})
    assert response.status_code == 409 and response.json()["code"] == "idempotency_key_in_use"
    assert http.get("/api/image/jobs").json()["data"] == []


def test_expired_and_abandoned_keys_are_free_again(
    server: ServerProcess, http: httpx.Client, workspace_key: str
) -> None:
    """A key past its retention, or claimed by a request that died mid-way, no longer
    blocks: the next request with it is processed as new."""
    _hold_key(server, workspace_key, "expired", "other-body", timedelta(days=2), timedelta(days=1))
    _hold_key(server, workspace_key, "abandoned", "x", timedelta(minutes=5), timedelta(days=1))
    for key in ("expired", "abandoned"):
        response = http.post("/api/image/jobs", json=BODY, headers={"Idempotency-Key": key})
        assert response.status_code == 202, response.text
        assert "idempotent-replayed" not in response.headers
    assert len(http.get("/api/image/jobs").json()["data"]) == 2


def test_twenty_concurrent_identical_requests_make_one_job(
    server: ServerProcess, workspace_key: str
) -> None:
    async def burst() -> list[httpx.Response]:
        headers = {"Authorization": f"Bearer {workspace_key}", "Idempotency-Key": "burst"}
        async with httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as c:
            return list(
                await asyncio.gather(*(c.post("/api/image/jobs", json=BODY) for _ in range(20)))
            )

    responses = asyncio.run(burst())
    accepted = {r.json()["job_id"] for r in responses if r.status_code == 202}
    busy = [r for r in responses if r.status_code == 409]
    assert len(accepted) == 1
    assert all(r.json()["code"] == "idempotency_key_in_use" for r in busy)
    assert len(busy) + sum(r.status_code == 202 for r in responses) == 20
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {workspace_key}"}
    ) as c:
        assert len(c.get("/api/image/jobs").json()["data"]) == 1
        wait_for_job(c, accepted.pop())
