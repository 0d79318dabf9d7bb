"""Routing across real adapters and their emulators, through a real server.

Two OpenAI-compatible emulators stand for two providers: ``a`` (preferred) fails 40 %
of its calls with 500s, ``b`` is healthy. Every job must complete; ``a``'s breaker
opens, and closes again once ``a`` heals."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.api import client, wait_for_job
from tests.support.sandbox import SandboxProcess
from tests.support.server import ServerProcess, wait_until

CONFIG = """
[routing]
policy = "priority"

[breaker]
window_s = 60
min_calls = 5
failure_rate = 0.3
open_s = 2

[providers.builtin]
enabled = false

[providers.a]
type = "openai"
base_url = "{a}/v1"
api_key_env = "ROUTING_TEST_KEY"
priority = 10

[providers.b]
type = "openai"
base_url = "{b}/v1"
api_key_env = "ROUTING_TEST_KEY"
"""
DRAFT = {"variations": 1, "mode": "draft"}


@pytest.fixture
def emulators(tmp_path: Path) -> Iterator[tuple[SandboxProcess, SandboxProcess]]:
    a = SandboxProcess("openai", tmp_path).start()
    b = SandboxProcess("openai", tmp_path).start()
    yield a, b
    a.stop()
    b.stop()


def test_failing_provider_falls_back_and_its_breaker_opens_then_closes(
    tmp_path: Path, emulators: tuple[SandboxProcess, SandboxProcess]
) -> None:
    a, b = emulators
    config = tmp_path / "imagegate.toml"
    config.write_text(CONFIG.format(a=a.url, b=b.url))
    server = ServerProcess(
        tmp_path / "data",
        IMAGEGATE_CONFIG=str(config),
        ROUTING_TEST_KEY="sk-sandbox",
        IMAGEGATE_WORKSPACE_CONCURRENCY="4",
    ).start()
    try:
        a.faults(error_status=500, error_rate=0.4)
        with client(server.url, server.admin_key) as http:
            ids = [
                http.post("/api/image/jobs", json={"prompt": f"fallback {i}", **DRAFT}).json()[
                    "job_id"
                ]
                for i in range(30)
            ]
            jobs = [wait_for_job(http, job_id, timeout=120) for job_id in ids]
            assert [j["status"] for j in jobs] == ["completed"] * 30
            used = Counter(j["provider"] for j in jobs)
            assert used["b"] > 0, used  # the fallback carried some jobs

            def breaker(name: str) -> str:
                providers = http.get("/api/image/providers").json()["data"]
                return str(next(p for p in providers if p["name"] == name)["breaker"]["state"])

            # 40 % failures over at least 5 calls is over the 30 % threshold.
            assert "provider.breaker_open" in server.log()
            card = next(
                p for p in http.get("/api/image/providers").json()["data"] if p["name"] == "a"
            )["scorecard"]
            assert card["success_rate"] < 1 and card["last_error"]["code"] == "provider_unavailable"

            # A heals: after open_s a probe goes through, succeeds, and closes the breaker.
            a.reset()

            def a_closed_and_serving() -> bool:
                job = http.post("/api/image/jobs", json={"prompt": "after heal", **DRAFT}).json()
                done = wait_for_job(http, job["job_id"], timeout=60)
                return done["provider"] == "a" and breaker("a") == "closed"

            wait_until(a_closed_and_serving, timeout=60, interval=0.5, what="a closed again")
            assert "provider.breaker_closed" in server.log()
    finally:
        server.stop()


def test_provider_concurrency_caps_calls_in_flight(
    tmp_path: Path, emulators: tuple[SandboxProcess, SandboxProcess]
) -> None:
    a, _ = emulators
    a.faults(latency_ms=800)
    config = tmp_path / "imagegate.toml"
    config.write_text(
        "[providers.builtin]\nenabled = false\n\n[providers.a]\ntype = 'openai'\n"
        f"base_url = '{a.url}/v1'\napi_key_env = 'ROUTING_TEST_KEY'\nconcurrency = 2\n"
    )
    server = ServerProcess(
        tmp_path / "data", IMAGEGATE_CONFIG=str(config), ROUTING_TEST_KEY="sk-sandbox",
        IMAGEGATE_WORKSPACE_CONCURRENCY="8",
    ).start()  # fmt: skip
    try:
        with client(server.url, server.admin_key) as http:
            ids = [
                http.post("/api/image/jobs", json={"prompt": f"slot {i}", **DRAFT}).json()["job_id"]
                for i in range(6)
            ]
            jobs = [wait_for_job(http, job_id, timeout=60) for job_id in ids]
        assert [j["status"] for j in jobs] == ["completed"] * 6
        # Eight may run at once in the workspace, but the provider allows two.
        assert a.stats()["max_in_flight"] == 2
        # Waiting for a slot is not an attempt.
        assert all(j["attempts"] == 1 for j in jobs)
    finally:
        server.stop()
