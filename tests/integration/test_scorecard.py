"""The provider scorecard, figure by figure, on a server of its own (so no other
test's calls land in it): known calls written to its database, then read back over
HTTP exactly, and a provider's error text shown only to the workspace whose job it was."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from imagegate.db import providers_repo
from imagegate.db.models import ProviderCall
from imagegate.runtime import Runtime
from imagegate.services.keys import create_key
from tests.support.api import client, wait_for_job
from tests.support.postgres import fresh_database
from tests.support.server import ServerProcess, wait_until

MARKER = "__boom__"
SECRET_PROMPT = "the secret harbour of workspace A"


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def card_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A fresh server whose only provider calls are the ones these tests make. A
    prompt with the marker fails its one and only attempt. Its reaper ticks, and its
    retention sweep is due, every 0.2 s."""
    with ExitStack() as stack:
        database = {}
        if request.param == "postgresql":
            database["IMAGEGATE_DATABASE_URL"] = stack.enter_context(fresh_database())
        proc = ServerProcess(
            tmp_path_factory.mktemp(f"scorecard-{request.param}"),
            IMAGEGATE_BUILTIN_FAULT_MARKER=MARKER,
            IMAGEGATE_BUILTIN_FAULT_ATTEMPTS="1",
            IMAGEGATE_MAX_ATTEMPTS="1",
            IMAGEGATE_BUILTIN_PROCESSES="0",
            IMAGEGATE_WORKER_HEARTBEAT_INTERVAL_S="0.2",
            IMAGEGATE_RETENTION_INTERVAL_S="0.2",
            **database,
        ).start()
        yield proc
        proc.stop()


@dataclass(frozen=True)
class Key:
    secret: str
    workspace_id: str


def _call(
    at: datetime, outcome: str, duration_ms: int, workspace_id: str | None, **extra: Any
) -> dict[str, Any]:
    return {
        "provider": "builtin", "model": "builtin", "job_id": f"job_{uuid.uuid4().hex[:20]}",
        "workspace_id": workspace_id, "attempt": 1, "started_at": at,
        "duration_ms": duration_ms, "outcome": outcome, "error_code": None,
        "error_message": None, "images": 0, "cost_usd": 0.0, **extra,
    }  # fmt: skip


def _known_calls(now: datetime, a: str, b: str) -> list[dict[str, Any]]:
    def ago(minutes: float) -> datetime:
        return now - timedelta(minutes=minutes)

    def error(code: str, message: str) -> dict[str, str]:
        return {"error_code": code, "error_message": message}

    moderated = error("content_policy_violation", "flagged")
    return [
        # 20 successes, 100 ms … 2,000 ms, two images each at $0.01 a call.
        *(_call(ago(60 - i), "ok", 100 * (i + 1), a, images=2, cost_usd=0.01) for i in range(20)),
        _call(ago(30), "moderated", 7, a, **moderated),
        _call(ago(29), "moderated", 7, b, **moderated),
        _call(ago(20), "failed", 5, b, **error("provider_unavailable", "b's own failure")),
        _call(ago(15), "failed", 5, None, **error("provider_unavailable", "before tenancy")),
        # The latest failure: workspace A's, echoing A's prompt.
        _call(ago(10), "failed", 5, a, **error("provider_rejected", SECRET_PROMPT)),
        # Outside the scorecard: older than 24 h, or a provider not configured.
        _call(ago(25 * 60), "ok", 99_999, a, images=1, cost_usd=5.0),
        _call(ago(25 * 60), "failed", 5, a, **error("old_error", "old")),
        {**_call(ago(5), "ok", 1, a), "provider": "not-configured"},
    ]


def _seed(server: ServerProcess, now: datetime) -> tuple[Key, Key]:
    """Two fresh workspaces, and 25 known calls of the last 24 h (plus some that
    must not count: older than the window, or of a provider not configured)."""

    async def run() -> tuple[Key, Key]:
        rt = Runtime.build(server.settings(), with_providers=False)
        try:
            a = await create_key(rt, f"card-a-{uuid.uuid4().hex[:8]}", "test")
            b = await create_key(rt, f"card-b-{uuid.uuid4().hex[:8]}", "test")
            async with rt.db.begin() as conn:
                for row in _known_calls(now, a.workspace_id, b.workspace_id):
                    await providers_repo.add_call(conn, row)
        finally:
            await rt.close()
        return Key(a.secret, a.workspace_id), Key(b.secret, b.workspace_id)

    return asyncio.run(run())


def _card(server: ServerProcess, key: str) -> dict[str, Any]:
    with client(server.url, key) as http:
        response = http.get("/api/image/providers")
    assert response.status_code == 200, response.text
    listing = response.json()
    assert [p["name"] for p in listing["data"]] == ["builtin"]
    card: dict[str, Any] = listing["data"][0]["scorecard"]
    return card


def test_the_scorecard_figures_are_exact_and_error_text_stays_home(
    card_server: ServerProcess,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    a, b = _seed(card_server, now)
    latest_failure_at = (now - timedelta(minutes=10)).isoformat()

    seen_by_a = _card(card_server, a.secret)
    assert seen_by_a == {
        "window_s": 86_400,
        "calls": 25,
        "success_rate": 0.8,  # 20 of 25
        "moderation_rate": 0.08,  # 2 of 25
        # Nearest rank over the 20 successes: the 10th and the 19th.
        "latency_ms": {"p50": 1000.0, "p95": 1900.0},
        "mean_cost_per_image_usd": 0.005,  # $0.20 over 40 images
        "last_error": {
            "code": "provider_rejected",
            "message": SECRET_PROMPT,
            "at": latest_failure_at,
        },
    }
    # The checklist's measured item: 20 ok of the 23 calls not moderated is 87 %, 2
    # points (85 % or more); builtin has no facts configured, so that is the score.
    with client(card_server.url, a.secret) as http:
        [builtin] = http.get("/api/image/providers").json()["data"]
    assert builtin["overall"] == {"score": 2.0, "items": {"reliability": 2}}
    assert builtin["facts"] == {}
    # Another workspace, and the admin's, see the same figures and the error's code,
    # never its text.
    foreign = {**seen_by_a, "last_error": {**seen_by_a["last_error"], "message": None}}
    assert _card(card_server, b.secret) == foreign
    assert _card(card_server, card_server.admin_key) == foreign
    assert (
        SECRET_PROMPT
        not in httpx.get(
            card_server.url + "/api/image/providers",
            headers={"Authorization": f"Bearer {b.secret}"},
        ).text
    )

    # A real job of B's fails on the built-in provider: the runner records whose it
    # was, so now B reads its own error text and A only the code.
    with client(card_server.url, b.secret) as http:
        created = http.post(
            "/api/image/jobs",
            json={"prompt": f"b's storm {MARKER}", "variations": 1, "mode": "draft"},
        )
        assert created.status_code == 202, created.text
        assert wait_for_job(http, created.json()["job_id"])["status"] == "failed"
    seen_by_b = _card(card_server, b.secret)
    assert seen_by_b["calls"] == 26
    assert seen_by_b["success_rate"] == 0.7692  # 20 of 26
    assert seen_by_b["moderation_rate"] == 0.0769  # 2 of 26
    assert seen_by_b["latency_ms"] == {"p50": 1000.0, "p95": 1900.0}  # failures don't count
    assert seen_by_b["last_error"]["code"] == "provider_unavailable"
    assert "builtin fault injected" in seen_by_b["last_error"]["message"]
    seen_by_a = _card(card_server, a.secret)
    assert seen_by_a["last_error"] == {**seen_by_b["last_error"], "message": None}


def test_the_elected_reaper_deletes_calls_past_retention(card_server: ServerProcess) -> None:
    now = datetime.now(UTC)

    async def write() -> None:
        rt = Runtime.build(card_server.settings(), with_providers=False)
        try:
            async with rt.db.begin() as conn:
                for days, ms in ((31, 31), (29, 29)):  # the default keeps 30 days
                    await providers_repo.add_call(
                        conn, _call(now - timedelta(days=days), "ok", ms, None)
                    )
        finally:
            await rt.close()

    async def durations() -> set[int]:
        rt = Runtime.build(card_server.settings(), with_providers=False)
        try:
            async with rt.db.connect() as conn:
                query = select(ProviderCall.__table__.c.duration_ms)
                return set((await conn.execute(query)).scalars())
        finally:
            await rt.close()

    asyncio.run(write())
    wait_until(lambda: 31 not in asyncio.run(durations()), 30, 0.2, "the old call to go")
    assert 29 in asyncio.run(durations())
