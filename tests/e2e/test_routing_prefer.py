"""Routing by style and the provider scorecard through a real server, with two
OpenAI emulators as providers ``a`` (first by priority, well rated) and ``b`` (anime's
preferred provider, rated low on compliance): where jobs go, why (``params.
routing_reason``), the fallback when ``b`` fails, a workspace whose compliance floor
keeps ``b`` out, and the scorecard in ``GET /api/image/providers`` and the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.api import client, wait_for_job
from tests.support.sandbox import SandboxProcess
from tests.support.server import ServerProcess

CONFIG = """
[routing]
policy = "priority"
[routing.prefer]
styles = {{ anime = ["b"] }}
actions = {{ variation = "cheapest" }}
[routing.workspaces.strict]
min_compliance = 3

[providers.builtin]
enabled = false

[providers.a]
type = "openai"
base_url = "{a}/v1"
api_key_env = "PREFER_TEST_KEY"
models = ["gpt-image-1"]
priority = 10
[providers.a.prices.gpt-image-1]
draft = 0.04
[providers.a.facts]
compliance_comfort = {{ score = 5, note = "official API, terms allow products" }}
data_retention = 4
commercial_terms = 5
support = 3

[providers.b]
type = "openai"
base_url = "{b}/v1"
api_key_env = "PREFER_TEST_KEY"
models = ["gpt-image-1"]
[providers.b.prices.gpt-image-1]
draft = 0.01
[providers.b.facts]
compliance_comfort = {{ score = 1, note = "unofficial wrapper: terms risk" }}
support = 2
"""
DRAFT = {"variations": 1, "mode": "draft"}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("prefer")
    a = SandboxProcess("openai", tmp).start()
    b = SandboxProcess("openai", tmp).start()
    config = tmp / "imagegate.toml"
    config.write_text(CONFIG.format(a=a.url, b=b.url))
    server = ServerProcess(
        tmp / "data", IMAGEGATE_CONFIG=str(config), PREFER_TEST_KEY="sk-sandbox"
    ).start()
    try:
        yield {"server": server, "a": a, "b": b, "strict": server.create_key("strict")}
    finally:
        server.stop()
        a.stop()
        b.stop()


def _done(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    created = http.post("/api/image/jobs", json={**DRAFT, **body})
    assert created.status_code == 202, created.text
    job = wait_for_job(http, created.json()["job_id"], timeout=60)
    assert job["status"] == "completed", job
    return job


def test_a_style_goes_to_its_preferred_provider(stack: dict[str, Any]) -> None:
    server = stack["server"]
    with client(server.url, server.admin_key) as http:
        anime = _done(http, {"prompt": "a fox spirit", "style": "anime"})
        plain = _done(http, {"prompt": "a fox", "style": "cinematic"})
        # An action's preference: a variation goes to the cheapest capable one.
        child = http.post(
            f"/api/image/jobs/{plain['job_id']}/actions", json={"action": "variation", "index": 1}
        )
        assert child.status_code == 202, child.text
        variation = wait_for_job(http, child.json()["job_id"], timeout=60)
    assert (anime["provider"], anime["params"]["routing_reason"]) == (
        "b",
        "style anime prefers b",
    )
    assert (plain["provider"], plain["params"]["routing_reason"]) == (
        "a",
        "highest priority capable",
    )
    assert variation["status"] == "completed", variation
    assert (variation["provider"], variation["params"]["routing_reason"]) == (
        "b",
        "cheapest capable for variation",
    )


def test_a_compliance_floor_keeps_the_wrapper_out_of_a_workspace(stack: dict[str, Any]) -> None:
    server = stack["server"]
    with client(server.url, stack["strict"]) as http:
        anime = _done(http, {"prompt": "a fox spirit", "style": "anime"})
        named = http.post("/api/image/jobs", json={"prompt": "x", "model": "b", **DRAFT})
        listing = http.get("/api/image/providers").json()
    assert anime["provider"] == "a"
    assert anime["params"]["routing_reason"] == (
        "style anime prefers b, none capable; highest priority capable"
    )
    # Not by name either: the floor is the workspace's promise.
    assert named.status_code == 422, named.text
    assert named.json()["code"] == "unsupported_model"
    assert "min_compliance of 3" in named.json()["detail"]
    assert listing["routing"]["min_compliance"] == 3


def test_the_listing_shows_the_facts_and_the_overall_score(stack: dict[str, Any]) -> None:
    server = stack["server"]
    with client(server.url, server.admin_key) as http:
        listing = http.get("/api/image/providers").json()
    by_name = {p["name"]: p for p in listing["data"]}
    assert sorted(by_name) == ["a", "b"]
    a, b = by_name["a"], by_name["b"]
    assert a["facts"] == {
        "compliance_comfort": {"score": 5, "note": "official API, terms allow products"},
        "data_retention": {"score": 4, "note": None},
        "support": {"score": 3, "note": None},
        "commercial_terms": {"score": 5, "note": None},
    }
    # Too few calls for reliability to count: the mean of the facts alone.
    assert a["overall"] == {
        "score": 4.2,  # (5 + 4 + 3 + 5) / 4 = 4.25, one decimal
        "items": {"compliance_comfort": 5, "data_retention": 4, "support": 3,
                  "commercial_terms": 5},
    }  # fmt: skip
    assert b["overall"]["score"] == 1.5
    # The existing fields are all still there.
    assert {"capabilities", "breaker", "scorecard", "prices_usd_per_image"} <= set(a)
    assert listing["routing"]["min_compliance"] is None
    assert listing["routing"]["prefer"]["styles"] == {"anime": ["b"]}


def test_the_cli_prints_the_scorecard_table(stack: dict[str, Any]) -> None:
    server = stack["server"]
    result = server.cli("providers", COLUMNS="200")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines[0].split()
    assert header[:3] == ["provider", "type", "breaker"]
    assert header[-5:] == ["compliance", "retention", "terms", "support", "overall"]
    rows = {line.split()[0]: line.split() for line in lines[1:3]}
    assert rows["a"][1:3] == ["openai", "closed"]
    assert rows["a"][-5:] == ["5/5", "4/5", "5/5", "3/5", "4.2/5"]
    assert rows["b"][-5:] == ["1/5", "-", "-", "2/5", "1.5/5"]
    assert "unofficial wrapper: terms risk" in result.stdout
    as_json = server.cli("providers", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert '"overall"' in as_json.stdout


def test_the_preferred_provider_failing_falls_back(stack: dict[str, Any]) -> None:
    server, b = stack["server"], stack["b"]
    b.faults(error_status=500, error_rate=1.0)
    try:
        with client(server.url, server.admin_key) as http:
            job = _done(http, {"prompt": "a storm over a shrine", "style": "anime"})
    finally:
        b.reset()
    assert job["provider"] == "a"
    assert job["attempts"] == 2
    assert job["params"]["routing_reason"] == "fallback: b failed (style anime prefers b)"
