"""The endpoints API: create, list, update, delete, secrets and rotation, the default
secret, the SSRF guard at the door, and workspace scoping."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.api import client
from tests.support.receiver import Receiver
from tests.support.server import ServerProcess, wait_until

UNSAFE = [
    "https://127.0.0.1/hook",
    "https://127.1/hook",
    "https://2130706433/hook",
    "https://0x7f000001/hook",
    "https://0177.0.0.1/hook",
    "https://[::ffff:127.0.0.1]/hook",
    "https://[::1]/hook",
    "https://localhost/hook",
    "https://127.0.0.1./hook",
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/hook",
    "https://192.168.1.1/hook",
    "https://100.64.0.1/hook",
    "https://[fc00::1]/hook",
    "https://[fe80::1]/hook",
    "https://224.0.0.1/hook",
    "https://0.0.0.0/hook",
    "https://user:pass@example.com/hook",
    "ftp://example.com/hook",
    "http://example.com/hook",
]


def assert_unsafe(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == "unsafe_url"
    assert problem["field"] == field


@pytest.fixture(scope="module")
def guarded_http(server: ServerProcess) -> Iterator[httpx.Client]:
    """A fresh workspace on the default server: no allowlist, https only."""
    with client(server.url, server.create_key(f"ws-{uuid.uuid4().hex[:10]}")) as http:
        yield http


@pytest.mark.parametrize("url", UNSAFE)
def test_unsafe_urls_are_refused_and_nothing_is_written(
    guarded_http: httpx.Client, url: str
) -> None:
    assert_unsafe(guarded_http.post("/api/image/webhooks", json={"url": url}), "url")
    job = {"prompt": "a lighthouse --draft", "webhook_url": url}
    assert_unsafe(guarded_http.post("/api/image/jobs", json=job), "webhook_url")
    assert guarded_http.get("/api/image/webhooks").json()["data"] == []
    assert guarded_http.get("/api/image/jobs").json()["data"] == []


def test_allowlisted_loopback_is_accepted(hook_http: httpx.Client, receiver: Receiver) -> None:
    created = hook_http.post("/api/image/webhooks", json={"url": receiver.url + "/in"})
    assert created.status_code == 201, created.text
    job = hook_http.post(
        "/api/image/jobs", json={"prompt": "a lighthouse --draft", "webhook_url": receiver.url}
    )
    assert job.status_code == 202, job.text
    assert job.json()["webhook_url"] == receiver.url
    # Allowlisting 127.0.0.0/8 admits those addresses only: not the rest of the range.
    refused = hook_http.post("/api/image/webhooks", json={"url": "http://10.0.0.1/"})
    assert_unsafe(refused, "url")


def test_endpoint_lifecycle(hook_http: httpx.Client, receiver: Receiver) -> None:
    body = {"url": receiver.url + "/a", "description": "orders"}
    created = hook_http.post("/api/image/webhooks", json=body)
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["id"].startswith("ep_")
    assert created.headers["location"] == f"/api/image/webhooks/{endpoint['id']}"
    assert endpoint["secret"].startswith("whsec_")
    assert endpoint["event_types"] == [
        "job.queued", "job.running", "job.completed", "job.failed", "job.canceled",
    ]  # fmt: skip
    assert endpoint["enabled"] is True
    path = f"/api/image/webhooks/{endpoint['id']}"

    listed = hook_http.get("/api/image/webhooks").json()["data"]
    assert [e["id"] for e in listed] == [endpoint["id"]]
    assert "secret" not in listed[0]
    assert hook_http.get(path + "/secret").json()["key"] == endpoint["secret"]

    patched = hook_http.patch(
        path, json={"event_types": ["job.completed", "job.progress"], "enabled": False}
    ).json()
    assert patched["event_types"] == ["job.completed", "job.progress"]
    assert (patched["enabled"], patched["disabled_reason"]) == (False, "disabled by its owner")
    assert patched["description"] == "orders"
    patched = hook_http.patch(path, json={"enabled": True, "description": None}).json()
    assert (patched["enabled"], patched["disabled_reason"], patched["description"]) == (
        True, None, None,
    )  # fmt: skip
    assert_unsafe(hook_http.patch(path, json={"url": "https://169.254.169.254/"}), "url")

    assert hook_http.delete(path).status_code == 204
    gone = hook_http.get(path)
    assert gone.status_code == 404
    assert gone.json()["code"] == "webhook_endpoint_not_found"


def test_rotation_keeps_the_old_secret_for_the_grace_period(
    hook_http: httpx.Client, receiver: Receiver
) -> None:
    endpoint = hook_http.post("/api/image/webhooks", json={"url": receiver.url}).json()
    path = f"/api/image/webhooks/{endpoint['id']}"
    rotated = hook_http.post(path + "/rotate-secret")
    assert rotated.status_code == 200
    key, expires = rotated.json()["key"], rotated.json()["previous_key_expires_at"]
    assert key.startswith("whsec_") and key != endpoint["secret"]
    remaining = datetime.fromisoformat(expires) - datetime.now(UTC)
    assert timedelta(hours=23) < remaining <= timedelta(hours=24)
    assert hook_http.get(path + "/secret").json()["key"] == key
    assert hook_http.get(path).json()["previous_secret_expires_at"] == expires


@pytest.mark.parametrize(
    "body",
    [
        {"url": "https://example.com", "event_types": ["job.done"]},
        {"url": "https://example.com", "event_types": ["job.failed", "job.failed"]},
        {"url": "https://example.com", "event_types": []},
        {"url": "https://example.com", "secret": "whsec_mine"},
        {},
    ],
)
def test_invalid_bodies_are_refused(hook_http: httpx.Client, body: dict[str, object]) -> None:
    response = hook_http.post("/api/image/webhooks", json=body)
    assert response.status_code == 422
    assert response.json()["code"] == "validation_error"


def test_the_default_secret_is_made_once(hook_http: httpx.Client) -> None:
    first = hook_http.get("/api/image/webhooks/default/secret")
    assert first.status_code == 200
    assert first.json()["key"].startswith("whsec_")
    assert hook_http.get("/api/image/webhooks/default/secret").json() == first.json()


def test_another_workspace_sees_none_of_it(
    hook_server: ServerProcess, hook_http: httpx.Client, receiver: Receiver
) -> None:
    endpoint = hook_http.post("/api/image/webhooks", json={"url": receiver.url}).json()
    job = hook_http.post("/api/image/jobs", json={"prompt": "a fox --draft"}).json()
    mine = hook_http.get("/api/image/webhooks/default/secret").json()["key"]
    path = f"/api/image/webhooks/{endpoint['id']}"
    [queued, *_] = wait_until(
        lambda: hook_http.get(f"/api/image/jobs/{job['job_id']}/deliveries").json()["data"],
        10, what="a delivery",
    )  # fmt: skip
    with client(hook_server.url, hook_server.create_key(f"ws-{uuid.uuid4().hex[:10]}")) as other:
        for method, url in [
            ("GET", path), ("PATCH", path), ("DELETE", path), ("GET", path + "/secret"),
            ("POST", path + "/rotate-secret"), ("GET", path + "/deliveries"),
        ]:  # fmt: skip
            response = other.request(method, url, json={} if method == "PATCH" else None)
            assert response.status_code == 404, (method, url)
            assert response.json()["code"] == "webhook_endpoint_not_found"
        assert other.get(f"/api/image/jobs/{job['job_id']}/deliveries").status_code == 404
        redeliver = other.post(f"/api/image/webhooks/deliveries/{queued['id']}/redeliver")
        assert redeliver.status_code == 404
        assert redeliver.json()["code"] == "delivery_not_found"
        assert other.get("/api/image/webhooks").json()["data"] == []
        assert other.get("/api/image/webhooks/default/secret").json()["key"] != mine
    assert hook_http.get(path).status_code == 200
