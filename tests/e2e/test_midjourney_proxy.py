"""Midjourney follow-ups through a real server: a child job of a midjourney_proxy job
presses the button of its parent's upstream task (the parent's provider job id reaches
the adapter through engine.inputs), and an action Midjourney offers only under an
upscaled picture fails as rejected, before anything is sent."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from tests.support.api import client, wait_for_job
from tests.support.sandbox import SandboxProcess
from tests.support.server import ServerProcess

CONFIG = """
[providers.builtin]
enabled = false

[providers.mj]
type = "midjourney_proxy"
base_url = "{url}"
api_key_env = "MJ_TEST_SECRET"
poll_interval_s = 0.1
"""


def upstream_task(sandbox: SandboxProcess, task_id: str) -> dict[str, str]:
    response = httpx.get(
        f"{sandbox.url}/mj/task/{task_id}/fetch", headers={"mj-api-secret": "mj-sandbox"}
    )
    task: dict[str, str] = response.json()
    return task


def test_follow_ups_press_the_parents_buttons(
    tmp_path: Path, sandboxes: Callable[[str], SandboxProcess]
) -> None:
    sandbox = sandboxes("midjourney_proxy")
    config = tmp_path / "imagegate.toml"
    config.write_text(CONFIG.format(url=sandbox.url))
    server = ServerProcess(
        tmp_path / "data", IMAGEGATE_CONFIG=str(config), MJ_TEST_SECRET="mj-sandbox"
    ).start()
    try:
        with client(server.url, server.admin_key) as http:
            body = {"prompt": "a lighthouse", "variations": 4, "ratio": "3:2"}
            root = http.post("/api/image/jobs", json=body).json()
            parent = wait_for_job(http, root["job_id"])
            assert parent["status"] == "completed", parent
            assert (parent["provider"], len(parent["result_urls"])) == ("mj", 4)

            up = http.post(f"/api/image/jobs/{parent['job_id']}/actions",
                           json={"action": "upscale", "index": 2})  # fmt: skip
            assert up.status_code == 202, up.text
            child = wait_for_job(http, up.json()["job_id"])
            assert child["status"] == "completed", child
            task = upstream_task(sandbox, child["provider_job_id"])
            assert (task["action"], task["parentId"]) == ("UPSCALE", parent["provider_job_id"])

            zoom = http.post(f"/api/image/jobs/{parent['job_id']}/actions",
                             json={"action": "zoom_out", "index": 1})  # fmt: skip
            assert zoom.status_code == 202, zoom.text
            refused = wait_for_job(http, zoom.json()["job_id"])
            assert refused["status"] == "failed", refused
            assert refused["error"]["code"] == "provider_rejected"
            assert "upscale it first" in refused["error"]["message"]
        stats = sandbox.stats()
        assert (stats["imagine"], stats["action"]) == (1, 1), stats
    finally:
        server.stop()
