"""GET /api/image/providers: capabilities, breaker and a scorecard measured by
imagegate itself."""

from __future__ import annotations

import httpx

from tests.support.api import wait_for_job
from tests.support.server import ServerProcess


def test_scorecard_counts_the_calls_it_saw(http: httpx.Client) -> None:
    body = {"prompt": "a quiet harbour", "variations": 1, "mode": "draft"}
    job = http.post("/api/image/jobs", json=body).json()
    assert wait_for_job(http, job["job_id"])["status"] == "completed"

    response = http.get("/api/image/providers")
    assert response.status_code == 200
    listing = response.json()
    assert listing["routing"]["policy"] == "priority"
    [builtin] = [p for p in listing["data"] if p["name"] == "builtin"]
    assert builtin["models"] == ["builtin"]
    assert builtin["capabilities"]["modes"] == ["draft", "standard"]
    assert builtin["capabilities"]["max_images"] == 4
    assert builtin["breaker"] == {"state": "closed", "opened_at": None}
    card = builtin["scorecard"]
    assert card["calls"] >= 1
    assert 0 < card["success_rate"] <= 1
    assert card["latency_ms"]["p50"] is not None
    assert card["latency_ms"]["p50"] <= card["latency_ms"]["p95"]


def test_a_failed_call_shows_as_the_last_error(http: httpx.Client) -> None:
    # The session server fails prompts with the marker on their first three attempts.
    body = {"prompt": "storm __fail__ scorecard", "variations": 1, "mode": "draft"}
    job = http.post("/api/image/jobs", json=body).json()
    assert wait_for_job(http, job["job_id"])["status"] == "failed"
    [builtin] = [p for p in http.get("/api/image/providers").json()["data"]]
    last = builtin["scorecard"]["last_error"]
    assert last["code"] == "provider_unavailable"
    assert "builtin fault injected" in last["message"]
    assert builtin["scorecard"]["success_rate"] < 1


def test_the_listing_needs_a_key(server: ServerProcess) -> None:
    response = httpx.get(server.url + "/api/image/providers")
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"


def test_an_unknown_routing_policy_is_refused(http: httpx.Client) -> None:
    response = http.post("/api/image/jobs", json={"prompt": "x", "routing": "random"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "routing"
