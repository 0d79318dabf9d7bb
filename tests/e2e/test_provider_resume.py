"""A worker killed while it polls a provider's job resumes that job after restart: the
provider sees one submission, so the job is paid for once."""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.api import client, wait_for_job
from tests.support.sandbox import SandboxProcess
from tests.support.server import ServerProcess, wait_until

CONFIG = """
[providers.builtin]
enabled = false

[providers.{name}]
base_url = "{url}"
api_key_env = "RESUME_TEST_KEY"
poll_interval_s = 0.2
"""
# provider → (path under the emulator's root, a key its emulator accepts)
PROVIDERS = {
    "replicate": ("/v1", "r8_resume_test_key"),
    "fal": ("", "resume-id:resume-secret"),
    "bfl": ("/v1", "bfl-sandbox"),
    "midjourney_proxy": ("", "mj-sandbox"),
}


def recorded_provider_job_id(data_dir: Path, job_id: str) -> str | None:
    with sqlite3.connect(data_dir / "imagegate.db") as conn:
        row = conn.execute("SELECT provider_job_id FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return row[0] if row else None


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
def test_a_killed_worker_resumes_polling_instead_of_resubmitting(
    tmp_path: Path, sandboxes: Callable[[str], SandboxProcess], provider: str
) -> None:
    path, key = PROVIDERS[provider]
    sandbox = sandboxes(provider)
    sandbox.faults(job_duration_ms=6000)
    config = tmp_path / "imagegate.toml"
    config.write_text(CONFIG.format(name=provider, url=sandbox.url + path))
    env = {"IMAGEGATE_CONFIG": str(config), "RESUME_TEST_KEY": key}
    data = tmp_path / "data"
    server = ServerProcess(data, **env).start()
    admin = server.admin_key
    with client(server.url, admin) as http:
        body = {"prompt": "a lighthouse, resumed", "variations": 1, "mode": "draft"}
        job_id = http.post("/api/image/jobs", json=body).json()["job_id"]
        provider_job = wait_until(
            lambda: recorded_provider_job_id(data, job_id), timeout=30, what="provider job id"
        )
    assert sandbox.stats()["submissions"] == 1
    server.kill(signal.SIGKILL)  # mid-poll: the provider's job takes 6 s

    restarted = ServerProcess(data, port=server.port, **env).start()
    try:
        with client(restarted.url, admin) as http:
            job = wait_for_job(http, job_id, timeout=60)
        assert job["status"] == "completed", job
        assert len(job["result_urls"]) == 1
        assert job["provider_job_id"] == provider_job
        stats = sandbox.stats()
        assert stats["submissions"] == 1, stats  # polled again, never resubmitted
        assert stats.get("polls", 0) > 0
    finally:
        restarted.stop()
