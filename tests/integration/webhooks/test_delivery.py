"""Deliveries end to end: a real server calls a real receiver on loopback, which checks
each signature with the standardwebhooks package, as an independent receiver would."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.api import wait_for_job
from tests.support.receiver import Receiver, answer_in_turn
from tests.support.server import wait_until

DRAFT = {"prompt": "a lighthouse at dusk --draft", "variations": 1}


def add_endpoint(http: httpx.Client, url: str, *types: str) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url, **({"event_types": list(types)} if types else {})}
    created = http.post("/api/image/webhooks", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


def deliveries(http: httpx.Client, path: str) -> list[dict[str, Any]]:
    page = http.get(path)
    assert page.status_code == 200, page.text
    return list(page.json()["data"])


def settled(http: httpx.Client, path: str, count: int = 1) -> list[dict[str, Any]]:
    """The deliveries at ``path`` once ``count`` of them are no longer pending."""

    def done() -> list[dict[str, Any]] | None:
        found = deliveries(http, path)
        finished = [d for d in found if d["status"] != "pending"]
        return found if len(finished) >= count else None

    return list(wait_until(done, 30, 0.05, f"{count} settled deliveries at {path}"))


def test_fails_three_times_then_delivered_on_the_fourth(
    hook_http: httpx.Client, receiver: Receiver
) -> None:
    receiver.answer = answer_in_turn(500, 503, 302)
    endpoint = add_endpoint(hook_http, receiver.url + "/hooks", "job.completed")
    job = hook_http.post("/api/image/jobs", json=DRAFT).json()
    finished = wait_for_job(hook_http, job["job_id"])
    [delivery] = settled(hook_http, f"/api/image/jobs/{job['job_id']}/deliveries")

    assert delivery["status"] == "delivered"
    assert delivery["endpoint_id"] == endpoint["id"]
    assert delivery["event_type"] == "job.completed"
    assert [a["status_code"] for a in delivery["attempts"]] == [500, 503, 302, 200]
    assert delivery["attempts"][0]["response_snippet"] == "answer 500"
    assert "redirect" in delivery["attempts"][2]["error"]
    assert all(isinstance(a["latency_ms"], int) for a in delivery["attempts"])
    assert delivery["next_attempt_at"] is None

    got = receiver.received
    assert len(got) == 4
    assert {r.webhook_id for r in got} == {delivery["webhook_id"]}
    for request in got:
        assert request.path == "/hooks"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"].startswith("imagegate-webhooks/")
        event = request.verify(endpoint["secret"])
        assert event["type"] == "job.completed"
        assert event["data"]["job_id"] == job["job_id"]
        assert event["data"]["status"] == "completed"
        # The same files; each body signs its links when it is sent, so a delivery a
        # minute later than the poll carries a later expiry (and signature).
        assert _unsigned(event["data"]["result_urls"]) == _unsigned(finished["result_urls"])
        assert len(request.body) < 20_000
    # The same log, seen from the endpoint.
    [same] = deliveries(hook_http, f"/api/image/webhooks/{endpoint['id']}/deliveries")
    assert same == delivery


def test_a_jobs_own_url_gets_its_events_signed_with_the_default_secret(
    hook_http: httpx.Client, receiver: Receiver
) -> None:
    secret = hook_http.get("/api/image/webhooks/default/secret").json()["key"]
    job = hook_http.post("/api/image/jobs", json={**DRAFT, "webhook_url": receiver.url}).json()
    wait_for_job(hook_http, job["job_id"])
    found = settled(hook_http, f"/api/image/jobs/{job['job_id']}/deliveries", 3)
    assert {d["status"] for d in found} == {"delivered"}
    assert {d["endpoint_id"] for d in found} == {None}
    wait_until(lambda: len(receiver.received) == 3, 10, what="three requests")
    events = [r.verify(secret) for r in receiver.received]
    assert sorted(e["type"] for e in events) == ["job.completed", "job.queued", "job.running"]
    assert len({r.webhook_id for r in receiver.received}) == 3
    assert all(e["data"]["webhook_url"] == receiver.url for e in events)


def test_410_disables_the_endpoint_and_redelivery_resumes_it(
    hook_http: httpx.Client, receiver: Receiver
) -> None:
    receiver.answer = answer_in_turn(410)
    endpoint = add_endpoint(hook_http, receiver.url, "job.completed")
    path = f"/api/image/webhooks/{endpoint['id']}"
    job = hook_http.post("/api/image/jobs", json=DRAFT).json()
    wait_for_job(hook_http, job["job_id"])
    [gone] = settled(hook_http, path + "/deliveries")
    assert gone["status"] == "disabled"
    assert [a["status_code"] for a in gone["attempts"]] == [410]
    disabled = hook_http.get(path).json()
    assert disabled["enabled"] is False
    assert "410" in disabled["disabled_reason"]

    # A disabled endpoint gets no new deliveries, and none can be redelivered to it.
    other = hook_http.post("/api/image/jobs", json=DRAFT).json()
    wait_for_job(hook_http, other["job_id"])
    assert deliveries(hook_http, f"/api/image/jobs/{other['job_id']}/deliveries") == []
    refused = hook_http.post(f"/api/image/webhooks/deliveries/{gone['id']}/redeliver")
    assert refused.status_code == 409

    assert hook_http.patch(path, json={"enabled": True}).json()["enabled"] is True
    again = hook_http.post(f"/api/image/webhooks/deliveries/{gone['id']}/redeliver")
    assert again.status_code == 202
    assert again.json()["webhook_id"] == gone["webhook_id"]
    assert again.json()["redelivery_of"] == gone["id"]
    found = settled(hook_http, path + "/deliveries", 2)
    assert {d["id"]: d["status"] for d in found} == {
        gone["id"]: "disabled", again.json()["id"]: "delivered",
    }  # fmt: skip
    assert [r.webhook_id for r in receiver.received] == [gone["webhook_id"]] * 2


def test_a_receiver_that_always_fails_exhausts_the_schedule(
    hook_http: httpx.Client, receiver: Receiver
) -> None:
    receiver.answer = lambda _: (500, {}, b"x" * 2000)
    add_endpoint(hook_http, receiver.url, "job.completed")
    job = hook_http.post("/api/image/jobs", json=DRAFT).json()
    wait_for_job(hook_http, job["job_id"])
    [delivery] = settled(hook_http, f"/api/image/jobs/{job['job_id']}/deliveries")
    assert delivery["status"] == "exhausted"
    assert len(delivery["attempts"]) == 4
    assert all(len(a["response_snippet"]) == 500 for a in delivery["attempts"])
    assert delivery["next_attempt_at"] is None


def test_after_a_rotation_both_secrets_sign(hook_http: httpx.Client, receiver: Receiver) -> None:
    endpoint = add_endpoint(hook_http, receiver.url, "job.completed")
    rotated = hook_http.post(f"/api/image/webhooks/{endpoint['id']}/rotate-secret").json()
    job = hook_http.post("/api/image/jobs", json=DRAFT).json()
    wait_for_job(hook_http, job["job_id"])
    [request] = wait_until(lambda: receiver.received, 10, what="a request")
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    request.verify(endpoint["secret"])
    request.verify(rotated["key"])


def _unsigned(urls: list[str]) -> list[str]:
    return [url.split("?", 1)[0] for url in urls]
