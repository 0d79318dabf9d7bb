"""Moderation over real HTTP: the prompt stage refuses disguised terms with 422
``content_policy_violation`` and creates, charges and claims nothing; admins list the
decisions, scoped to their workspace; the configuration's per-workspace rules; a
remixed prompt is screened like a create's; a provider's refusal is recorded too."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from imagegate.sandbox.openai import API_KEY as EMULATOR_KEY
from tests.support.api import client, wait_for_job
from tests.support.sandbox import SandboxProcess
from tests.support.server import ServerProcess

REFUSED = [
    ("a n u d e portrait", "sexual"),
    ("a nud\u0435 portrait", "sexual"),  # a Cyrillic "ie"
    ("g0re on the floor", "violence/graphic"),
]


def _refused(response: httpx.Response, category: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == "content_policy_violation", body
    assert body["category"] == category and body["field"] == "prompt"
    return body


def _jobs(http: httpx.Client) -> list[dict[str, Any]]:
    listed = http.get("/api/image/jobs")
    assert listed.status_code == 200, listed.text
    return list(listed.json()["data"])


def _decisions(http: httpx.Client, **params: str) -> list[dict[str, Any]]:
    listed = http.get("/api/image/moderation", params=params)
    assert listed.status_code == 200, listed.text
    return list(listed.json()["data"])


@pytest.fixture
def workspace() -> str:
    return f"ws-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def member(server: ServerProcess, workspace: str) -> Iterator[httpx.Client]:
    with client(server.url, server.create_key(workspace)) as c:
        yield c


@pytest.fixture
def admin(server: ServerProcess, workspace: str) -> Iterator[httpx.Client]:
    with client(server.url, server.create_key(workspace, admin=True)) as c:
        yield c


def test_a_disguised_prompt_is_refused_and_nothing_is_made(
    member: httpx.Client, admin: httpx.Client
) -> None:
    for prompt, category in REFUSED:
        body = {"prompt": prompt, "variations": 1, "user": "end-user-7"}
        _refused(member.post("/api/image/jobs", json=body), category)
    assert _jobs(member) == []
    # The refusal released its Idempotency-Key: the same key with a clean prompt works.
    key = {"Idempotency-Key": f"k-{uuid.uuid4().hex}"}
    refused = member.post("/api/image/jobs", json={"prompt": "p0rn"}, headers=key)
    _refused(refused, "sexual")
    accepted = member.post(
        "/api/image/jobs", json={"prompt": "a dune", "variations": 1}, headers=key
    )
    assert accepted.status_code == 202, accepted.text
    assert [j["job_id"] for j in _jobs(member)] == [accepted.json()["job_id"]]
    job = wait_for_job(member, accepted.json()["job_id"])
    assert job["status"] == "completed"

    listed = _decisions(admin)
    assert [(d["stage"], d["category"]) for d in listed] == [("prompt", "sexual")] + [
        ("prompt", c) for _, c in reversed(REFUSED)
    ]
    oldest = listed[-1]
    assert oldest["excerpt"] == REFUSED[0][0] and oldest["reason"] == "nude"
    assert oldest["user"] == "end-user-7" and oldest["job_id"] is None and oldest["key_id"]
    assert [d["category"] for d in _decisions(admin, category="violence/graphic")] == [
        "violence/graphic"
    ]
    page = admin.get("/api/image/moderation", params={"limit": 2}).json()
    assert len(page["data"]) == 2 and page["has_more"]
    rest = _decisions(admin, cursor=page["next_cursor"])
    assert [d["id"] for d in page["data"] + rest] == [d["id"] for d in listed]


def test_plain_prompts_with_the_same_letters_are_accepted(member: httpx.Client) -> None:
    for prompt in ("a dune at dusk", "an undone bow", "the naked eye sees a comet"):
        created = member.post("/api/image/jobs", json={"prompt": prompt, "variations": 1})
        assert created.status_code == 202, created.text


def test_decisions_are_for_the_workspace_s_admins(
    server: ServerProcess, member: httpx.Client, admin: httpx.Client
) -> None:
    _refused(member.post("/api/image/jobs", json={"prompt": "nsfw"}), "sexual")
    forbidden = member.get("/api/image/moderation")
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "forbidden"
    other = f"ws-{uuid.uuid4().hex[:10]}"
    with client(server.url, server.create_key(other, admin=True)) as stranger:
        assert _decisions(stranger) == []
    assert len(_decisions(admin)) == 1
    for bad in ({"stage": "nope"}, {"category": "gore"}, {"limit": "0"}):
        assert admin.get("/api/image/moderation", params=bad).status_code == 422
    assert admin.get("/api/image/moderation", params={"cursor": "x"}).status_code == 400


def test_a_remix_prompt_is_screened(member: httpx.Client) -> None:
    created = member.post("/api/image/jobs", json={"prompt": "a lighthouse", "variations": 2})
    assert created.status_code == 202, created.text
    parent = wait_for_job(member, created.json()["job_id"])
    assert parent["status"] == "completed"
    remix = {"action": "variation", "index": 1, "prompt": "a naked lighthouse keeper"}
    _refused(member.post(f"/api/image/jobs/{parent['job_id']}/actions", json=remix), "sexual")
    assert member.get(f"/api/image/jobs/{parent['job_id']}").json()["children"] == []
    # Without a new prompt there is nothing new to screen.
    plain = member.post(
        f"/api/image/jobs/{parent['job_id']}/actions", json={"action": "variation", "index": 1}
    )
    assert plain.status_code == 202, plain.text


def test_a_batch_item_is_screened(member: httpx.Client) -> None:
    # Each item stands alone (docs/batches.md): the refused one makes nothing.
    items = [{"prompt": "a kite"}, {"prompt": "$ex on a beach"}]
    response = member.post("/api/image/batches", json={"items": items})
    assert response.status_code == 202, response.text
    first, second = response.json()["items"]
    assert first["job_id"] and first["error"] is None
    assert second["job_id"] is None and second["error"]["code"] == "content_policy_violation"
    assert [j["job_id"] for j in _jobs(member)] == [first["job_id"]]


# -- a server with its own [moderation] rules, in front of the OpenAI emulator -------

CONFIG = """
[moderation]
terms = {{ "violence" = ["blood bath"] }}
allow = ["gore-tex jacket"]

[moderation.workspaces.art-school]
builtin = false

[moderation.workspaces.lab]
prompt = false

[providers.openai]
type = "openai"
base_url = "{url}/v1"
api_key_env = "MODERATION_TEST_OPENAI_KEY"
"""


@pytest.fixture(scope="module")
def configured(
    tmp_path_factory: pytest.TempPathFactory, sandboxes: Callable[[str], SandboxProcess]
) -> Iterator[ServerProcess]:
    emulator = sandboxes("openai")
    data = tmp_path_factory.mktemp("moderation")
    (data / "imagegate.toml").write_text(CONFIG.format(url=emulator.url))
    proc = ServerProcess(
        data, IMAGEGATE_CONFIG=str(data / "imagegate.toml"),
        MODERATION_TEST_OPENAI_KEY=EMULATOR_KEY, IMAGEGATE_MAX_ATTEMPTS="1",
    ).start()  # fmt: skip
    yield proc
    proc.stop()


def _post(proc: ServerProcess, workspace: str, prompt: str, **extra: Any) -> httpx.Response:
    with client(proc.url, proc.create_key(workspace)) as http:
        return http.post("/api/image/jobs", json={"prompt": prompt, "variations": 1, **extra})


def test_rules_per_workspace(configured: ServerProcess) -> None:
    _refused(_post(configured, "default-ish", "a blood   bath"), "violence")
    _refused(_post(configured, "default-ish", "nude"), "sexual")
    assert _post(configured, "default-ish", "a gore-tex jacket").status_code == 202
    # art-school drops the built-in lists but keeps the global terms.
    assert _post(configured, "art-school", "a nude study").status_code == 202
    _refused(_post(configured, "art-school", "blood bath"), "violence")
    # lab screens nothing.
    assert _post(configured, "lab", "blood bath, gore").status_code == 202


def test_a_provider_refusal_is_recorded(configured: ServerProcess) -> None:
    workspace = f"ws-{uuid.uuid4().hex[:10]}"
    with (
        client(configured.url, configured.create_key(workspace)) as member,
        client(configured.url, configured.create_key(workspace, admin=True)) as admin,
    ):
        created = member.post(
            "/api/image/jobs",
            json={"prompt": "a harbour sandbox:moderate", "model": "openai", "user": "u1"},
        )
        assert created.status_code == 202, created.text
        job = wait_for_job(member, created.json()["job_id"])
        assert job["status"] == "failed" and job["error"]["code"] == "content_policy_violation"
        assert job["cost"]["charged_credits"] == 0
        listed = _decisions(admin, stage="provider")
        assert [(d["job_id"], d["user"]) for d in listed] == [(job["job_id"], "u1")]
        assert listed[0]["excerpt"] == job["prompt"] and listed[0]["reason"]
