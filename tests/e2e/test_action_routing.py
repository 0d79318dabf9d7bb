"""Routing by action through a real server: an action goes only to a provider that
can do it, and one that no configured provider can do is refused before anything is
created."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
from PIL import Image

from tests.support.api import client, wait_for_job
from tests.support.sandbox import SandboxProcess
from tests.support.server import ServerProcess

# OpenAI's images API has no upscale: with it preferred, imagine goes there and an
# upscale can only go to the built-in renderer.
MIXED = """
[providers.openai]
type = "openai"
base_url = "{url}/v1"
api_key_env = "ACTION_TEST_KEY"
priority = 10

[providers.builtin]
priority = 1
"""
OPENAI_ONLY = """
[providers.builtin]
enabled = false

[providers.openai]
type = "openai"
base_url = "{url}/v1"
api_key_env = "ACTION_TEST_KEY"
"""


def _upload(http: httpx.Client) -> str:
    out = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 30, 30)).save(out, format="PNG")
    answer = http.post("/api/image/uploads", files={"file": ("a.png", out.getvalue(), "image/png")})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["upload_id"])


def test_actions_route_to_capable_providers_only(tmp_path: Path) -> None:
    emulator = SandboxProcess("openai", tmp_path).start()
    mixed = tmp_path / "mixed.toml"
    mixed.write_text(MIXED.format(url=emulator.url))
    only = tmp_path / "only.toml"
    only.write_text(OPENAI_ONLY.format(url=emulator.url))
    servers = [
        ServerProcess(tmp_path / name, IMAGEGATE_CONFIG=str(config), ACTION_TEST_KEY="sk-sandbox")
        for name, config in (("mixed", mixed), ("only", only))
    ]
    try:
        for server in servers:
            server.spawn()
        for server in servers:
            server.wait_ready()
        with client(servers[0].url, servers[0].admin_key) as http:
            root = http.post(
                "/api/image/jobs", json={"prompt": "a kite", "mode": "draft", "variations": 1}
            ).json()
            parent = wait_for_job(http, root["job_id"])
            assert parent["status"] == "completed" and parent["provider"] == "openai"
            up = http.post(f"/api/image/jobs/{root['job_id']}/actions",
                           json={"action": "upscale", "index": 1})  # fmt: skip
            assert up.status_code == 202, up.text
            child = wait_for_job(http, up.json()["job_id"])
            assert child["status"] == "completed" and child["provider"] == "builtin", child
            # Naming a provider that cannot do it is refused, not routed elsewhere.
            body = {"action": "upscale", "index": 1, "model": "openai"}
            named = http.post(f"/api/image/jobs/{root['job_id']}/actions", json=body)
            assert named.status_code == 422 and named.json()["code"] == "unsupported_action"
            assert "builtin" in named.json()["detail"]
            # A describe, which OpenAI cannot do at any size: only the builtin can take it.
            upload = _upload(http)
            described = http.post(
                "/api/image/jobs", json={"action": "describe", "images": [upload]}
            )
            assert described.status_code == 202, described.text
            done = wait_for_job(http, described.json()["job_id"])
            assert done["status"] == "completed" and done["provider"] == "builtin", done
            refused = http.post(
                "/api/image/jobs",
                json={"action": "describe", "images": [upload], "model": "openai"},
            )
            assert refused.status_code == 422 and refused.json()["code"] == "unsupported_action"
        with client(servers[1].url, servers[1].admin_key) as http:
            root = http.post(
                "/api/image/jobs", json={"prompt": "a kite", "mode": "draft", "variations": 1}
            ).json()
            wait_for_job(http, root["job_id"])
            before = http.get("/api/image/jobs").json()["data"]
            refused = http.post(f"/api/image/jobs/{root['job_id']}/actions",
                                json={"action": "upscale", "index": 1})  # fmt: skip
            assert refused.status_code == 422, refused.text
            assert refused.json()["code"] == "unsupported_action"
            assert http.get("/api/image/jobs").json()["data"] == before
            upload = _upload(http)
            described = http.post(
                "/api/image/jobs", json={"action": "describe", "images": [upload]}
            )
            assert described.status_code == 422, described.text
            assert described.json()["code"] == "unsupported_action"
            assert http.get("/api/image/jobs").json()["data"] == before
    finally:
        for server in servers:
            server.stop()
        emulator.stop()
