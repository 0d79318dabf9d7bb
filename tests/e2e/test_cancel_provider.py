"""Canceling a running job ends its provider call as the provider sees it: a provider
with a cancel API (Replicate, fal) is asked to cancel its job, and imagegate stops
waiting on it (no more polls); a synchronous call's connection is dropped. Before, the
attempt step was interrupted on our side only, and the provider's job ran on (and was
billed) until it ended by itself."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.support.api import client, wait_for_job
from tests.support.postgres import fresh_database
from tests.support.sandbox import SandboxProcess
from tests.support.server import ServerProcess, wait_until

CONFIG = """
[providers.builtin]
enabled = false

[providers.{name}]
base_url = "{url}"
api_key_env = "CANCEL_TEST_KEY"
poll_interval_s = 0.2
"""
# provider → (path under the emulator's root, a key its emulator accepts)
PROVIDERS = {
    "replicate": ("/v1", "r8_cancel_test_key"),
    "fal": ("", "cancel-id:cancel-secret"),
}
# Far longer than the test waits: a provider job that ends is one that was canceled.
JOB_DURATION_MS = 120_000


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_canceling_a_running_job_cancels_the_provider_job(
    tmp_path: Path, sandboxes: Callable[[str], SandboxProcess], provider: str
) -> None:
    path, key = PROVIDERS[provider]
    sandbox = sandboxes(provider)
    sandbox.faults(job_duration_ms=JOB_DURATION_MS)
    config = tmp_path / "imagegate.toml"
    config.write_text(CONFIG.format(name=provider, url=sandbox.url + path))
    server = ServerProcess(
        tmp_path / "data", IMAGEGATE_CONFIG=str(config), CANCEL_TEST_KEY=key
    ).start()
    try:
        with client(server.url, server.admin_key) as http:
            body = {"prompt": "a lighthouse, canceled", "variations": 1, "mode": "draft"}
            job_id = http.post("/api/image/jobs", json=body).json()["job_id"]
            provider_job = wait_until(
                lambda: http.get(f"/api/image/jobs/{job_id}").json()["provider_job_id"],
                timeout=30,
                what="the provider job id",
            )
            wait_until(lambda: sandbox.stats().get("polls", 0) > 0, 30, what="a first poll")
            assert sandbox.stats().get("cancels", 0) == 0

            canceled = http.post(f"/api/image/jobs/{job_id}/cancel")
            assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"

            # The provider is told, long before its job would have ended by itself.
            stats = wait_until(
                lambda: (s := sandbox.stats()).get("cancels", 0) >= 1 and s,
                timeout=15,
                what="the provider's cancel endpoint to be called",
            )
            assert stats["cancels"] == 1, stats
            assert provider_status(sandbox, provider, provider_job, key) in {
                "canceled",  # Replicate: the prediction ended canceled
                "COMPLETED",  # fal: a cancelled request reads completed, with no result
            }
            # And imagegate no longer waits on it: the polls stop.
            polls = sandbox.stats()["polls"]
            time.sleep(1.5)  # several poll intervals (0.2 s)
            assert sandbox.stats()["polls"] == polls

            job = wait_for_job(http, job_id, timeout=5)
            assert job["status"] == "canceled" and job["result_urls"] == []
    finally:
        server.stop()


def provider_status(sandbox: SandboxProcess, provider: str, provider_job: str, key: str) -> str:
    """The provider job's status, asked of the emulator the way a client would."""
    if provider == "replicate":
        url = f"{sandbox.url}/v1/predictions/{provider_job}"
        headers = {"Authorization": f"Bearer {key}"}
    else:
        url = f"{sandbox.url}/fal-ai/flux/requests/{provider_job}/status"
        headers = {"Authorization": f"Key {key}"}
    response = httpx.get(url, headers=headers, timeout=5)
    assert response.status_code == 200, response.text
    status: str = response.json()["status"]
    return status


def test_canceling_a_running_job_abandons_a_synchronous_call(
    tmp_path: Path, sandboxes: Callable[[str], SandboxProcess]
) -> None:
    """A provider without a cancel API (OpenAI answers in the same request) sees the
    connection go at once, not when the HTTP timeout would have ended it. (The attempt
    step is preemptible, so this held before too: it guards that, and the emulator's
    ``disconnected`` count is what shows it.)"""
    sandbox = sandboxes("openai")
    config = tmp_path / "imagegate.toml"
    config.write_text(CONFIG.format(name="openai", url=sandbox.url + "/v1") + "timeout_s = 120\n")
    server = ServerProcess(
        tmp_path / "data", IMAGEGATE_CONFIG=str(config), CANCEL_TEST_KEY="sk-sandbox"
    ).start()
    try:
        with client(server.url, server.admin_key) as http:
            # sandbox:timeout: the emulator holds the request until the client leaves.
            body = {"prompt": "a lighthouse sandbox:timeout", "variations": 1, "mode": "draft"}
            job_id = http.post("/api/image/jobs", json=body).json()["job_id"]
            wait_for_job(http, job_id, until={"running"})
            wait_until(lambda: sandbox.stats().get("requests", 0) >= 1, 30, what="the call")
            assert sandbox.stats().get("disconnected", 0) == 0

            canceled = http.post(f"/api/image/jobs/{job_id}/cancel")
            assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"
            stats = wait_until(
                lambda: (s := sandbox.stats()).get("disconnected", 0) >= 1 and s,
                timeout=15,
                what="the provider to see the call end",
            )
            assert stats["disconnected"] == 1 and stats["requests"] == 1, stats
    finally:
        server.stop()


def test_a_cancel_answered_by_the_api_reaches_the_provider_through_the_worker(
    tmp_path: Path, sandboxes: Callable[[str], SandboxProcess]
) -> None:
    """`imagegate api` + `imagegate worker` on PostgreSQL: the cancel is answered by one
    process, the provider job is followed by another, and the provider still hears it."""
    sandbox = sandboxes("replicate")
    sandbox.faults(job_duration_ms=JOB_DURATION_MS)
    config = tmp_path / "imagegate.toml"
    config.write_text(CONFIG.format(name="replicate", url=sandbox.url + "/v1"))
    with fresh_database() as database:
        env = {
            "IMAGEGATE_DATABASE_URL": database, "IMAGEGATE_CONFIG": str(config),
            "CANCEL_TEST_KEY": PROVIDERS["replicate"][1],
            "IMAGEGATE_DATABASE_POOL_SIZE": "4", "IMAGEGATE_ENGINE_POOL_SIZE": "4",
        }  # fmt: skip
        api = ServerProcess(tmp_path / "data", command="api", **env).start()
        worker = ServerProcess(
            tmp_path / "data", command="worker", IMAGEGATE_WORKER_ID="w1", **env
        ).start()
        try:
            with client(api.url, api.admin_key) as http:
                body = {"prompt": "a lighthouse, far away", "variations": 1, "mode": "draft"}
                job_id = http.post("/api/image/jobs", json=body).json()["job_id"]
                wait_until(
                    lambda: http.get(f"/api/image/jobs/{job_id}").json()["provider_job_id"],
                    timeout=60,
                    what="the provider job id",
                )
                assert http.post(f"/api/image/jobs/{job_id}/cancel").status_code == 200
                stats = wait_until(
                    lambda: (s := sandbox.stats()).get("cancels", 0) >= 1 and s,
                    timeout=20,
                    what="the worker to cancel the provider job",
                )
                assert stats["cancels"] == 1, stats
        finally:
            worker.stop()
            api.stop()
