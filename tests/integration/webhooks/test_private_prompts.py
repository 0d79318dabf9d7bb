"""A workspace with ``private_prompts``: its webhook bodies (the event envelope and a
/mj task's notifyHook) carry no prompt text, and its moderation log no excerpt; a
workspace without it is unchanged."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.webhooks.conftest import SHORT_SCHEDULE
from tests.support.api import client, wait_for_job
from tests.support.receiver import Receiver
from tests.support.server import ServerProcess, wait_until

PROMPT = "a lighthouse named Zebedee at dusk"


@pytest.fixture(scope="module")
def private_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("private-prompts")
    (data / "imagegate.toml").write_text("[workspaces.hush]\nprivate_prompts = true\n")
    proc = ServerProcess(
        data, IMAGEGATE_CONFIG=str(data / "imagegate.toml"),
        IMAGEGATE_SSRF_ALLOWLIST="127.0.0.0/8", IMAGEGATE_WEBHOOK_SCHEDULE_S=SHORT_SCHEDULE,
    ).start()  # fmt: skip
    yield proc
    proc.stop()


def _bodies(server: ServerProcess, workspace: str, receiver: Receiver) -> list[str]:
    key = server.create_key(workspace)
    with client(server.url, key) as http:
        job = http.post("/api/image/jobs", json={
            "prompt": f"{PROMPT} --no zebras", "variations": 1, "webhook_url": receiver.url,
        }).json()  # fmt: skip
        assert wait_for_job(http, job["job_id"])["prompt"].startswith(PROMPT)  # the API shows it
        submit = {"prompt": PROMPT, "notifyHook": receiver.url}
        mj = {"mj-api-secret": key}
        task = httpx.post(f"{server.url}/mj/submit/imagine", headers=mj, json=submit).json()
        task = task["result"]
        wait_for_job(http, task)

    def done() -> list[str]:
        texts = [r.body.decode() for r in receiver.received]
        ours = [t for t in texts if job["job_id"] in t or task in t]
        finished = [t for t in ours if '"job.completed"' in t or '"SUCCESS"' in t]
        return ours if len(finished) >= 2 else []

    return list(wait_until(done, 30, what="both jobs' final webhooks"))


def test_private_prompts_stay_out_of_webhook_bodies(private_server: ServerProcess) -> None:
    with Receiver() as receiver:
        bodies = _bodies(private_server, "hush", receiver)
    assert bodies
    for text in bodies:
        assert "Zebedee" not in text and "zebras" not in text, text
    envelope = next(json.loads(t) for t in bodies if '"job.completed"' in t)
    assert envelope["data"]["prompt"] is None and envelope["data"]["images"]
    task = next(json.loads(t) for t in bodies if '"SUCCESS"' in t)
    assert task["prompt"] is None and task["imageUrl"]


def test_other_workspaces_keep_their_prompts(private_server: ServerProcess) -> None:
    with Receiver() as receiver:
        bodies = _bodies(private_server, f"ws-{uuid.uuid4().hex[:8]}", receiver)
    assert any("Zebedee" in text for text in bodies)


def test_a_refused_private_prompt_leaves_no_excerpt(private_server: ServerProcess) -> None:
    with (
        client(private_server.url, private_server.create_key("hush")) as member,
        client(private_server.url, private_server.create_key("hush", admin=True)) as admin,
    ):
        refused = member.post("/api/image/jobs", json={"prompt": "Zebedee, nude"})
        assert refused.status_code == 422, refused.text
        decisions = admin.get("/api/image/moderation").json()["data"]
        assert decisions and all(d["excerpt"] is None for d in decisions)
        assert decisions[0]["category"] == "sexual"
