"""The style presets API over real HTTP, on SQLite and PostgreSQL: built-in and
workspace presets, create/read/change/delete, scoping to the workspace, the limit,
Idempotency-Key, bad input, and a preset frozen into each job made with it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from imagegate.domain.params import STYLES
from imagegate.domain.presets import MAX_PRESETS_PER_WORKSPACE
from tests.support.api import client, fetch_image, wait_for_job
from tests.support.server import ServerProcess

PRODUCT = {
    "name": "product-shot",
    "description": "Products on a plinth",
    "template": "{prompt}, on a marble plinth, soft studio light",
    "negative_prompt": "text, watermark",
    "base_style": "studio",
    "ratio": "4:5",
    "mode": "draft",
    "provider_options": {"builtin": {"detail": 2}},
}


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


@pytest.fixture
def other_http(server: ServerProcess) -> Iterator[httpx.Client]:
    with client(server.url, server.create_key(f"ws-{uuid.uuid4().hex[:10]}")) as c:
        yield c


def _names(http: httpx.Client) -> list[tuple[str, bool]]:
    listed = http.get("/api/image/styles")
    assert listed.status_code == 200, listed.text
    return [(s["name"], s["builtin"]) for s in listed.json()["data"]]


def test_builtins_are_listed_and_readable(http: httpx.Client) -> None:
    assert _names(http) == [(name, True) for name in STYLES]
    noir = http.get("/api/image/styles/noir").json()
    assert noir["builtin"] is True and noir["base_style"] == "noir"
    assert noir["template"].count("{prompt}") == 1 and noir["created_at"] is None
    _problem(http.get("/api/image/styles/bauhaus"), 404, "style_not_found")
    _problem(http.get("/api/image/styles/Not%20A%20Slug"), 404, "style_not_found")


def test_create_read_change_delete(http: httpx.Client) -> None:
    created = http.post("/api/image/styles", json=PRODUCT)
    assert created.status_code == 201, created.text
    assert created.headers["location"] == "/api/image/styles/product-shot"
    body = created.json()
    assert {k: body[k] for k in PRODUCT} == PRODUCT
    assert body["builtin"] is False and body["model"] is None and body["created_at"]
    assert http.get("/api/image/styles/product-shot").json() == body
    assert _names(http)[-1] == ("product-shot", False)

    changed = http.patch("/api/image/styles/product-shot", json={"ratio": "32:18", "mode": None})
    assert changed.status_code == 200, changed.text
    assert changed.json()["ratio"] == "16:9" and changed.json()["mode"] is None
    assert changed.json()["template"] == PRODUCT["template"]  # what is not given stays
    reset = http.patch("/api/image/styles/product-shot", json={"template": None}).json()
    assert reset["template"] == "{prompt}"

    deleted = http.delete("/api/image/styles/product-shot")
    assert deleted.status_code == 204 and deleted.content == b""
    _problem(http.get("/api/image/styles/product-shot"), 404, "style_not_found")
    _problem(http.delete("/api/image/styles/product-shot"), 404, "style_not_found")
    _problem(http.patch("/api/image/styles/product-shot", json={}), 404, "style_not_found")


def test_a_workspace_sees_only_its_own(http: httpx.Client, other_http: httpx.Client) -> None:
    assert http.post("/api/image/styles", json=PRODUCT).status_code == 201
    _problem(other_http.get("/api/image/styles/product-shot"), 404, "style_not_found")
    _problem(
        other_http.patch("/api/image/styles/product-shot", json={"ratio": "1:1"}),
        404,
        "style_not_found",
    )
    _problem(other_http.delete("/api/image/styles/product-shot"), 404, "style_not_found")
    assert ("product-shot", False) not in _names(other_http)
    job = other_http.post("/api/image/jobs", json={"prompt": "a shoe", "style": "product-shot"})
    problem = _problem(job, 422, "validation_error")
    assert problem["field"] == "style" and "noir" in problem["detail"]
    # The other workspace may use the same name for its own preset.
    assert other_http.post("/api/image/styles", json=PRODUCT).status_code == 201
    assert http.get("/api/image/styles/product-shot").json()["ratio"] == "4:5"


def test_names_and_conflicts(http: httpx.Client) -> None:
    for name in STYLES[:3]:
        problem = _problem(
            http.post("/api/image/styles", json={"name": name}), 409, "builtin_style"
        )
        assert problem["field"] == "name"
    _problem(http.patch("/api/image/styles/noir", json={"ratio": "1:1"}), 409, "builtin_style")
    _problem(http.delete("/api/image/styles/noir"), 409, "builtin_style")
    for bad in ("Product", "my style", "-x", "9lives", "x" * 65, "ünï", ""):
        problem = _problem(
            http.post("/api/image/styles", json={"name": bad}), 422, "validation_error"
        )
        fields = [problem.get("field")] + [e["field"] for e in problem.get("errors") or []]
        assert "name" in fields, (bad, problem)
    assert http.post("/api/image/styles", json={"name": "mine"}).status_code == 201
    _problem(http.post("/api/image/styles", json={"name": "mine"}), 409, "style_exists")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"template": "no placeholder"}, "template"),
        ({"template": "{prompt} and {prompt}"}, "template"),
        ({"template": "{prompt} --ar 16:9"}, "template"),
        ({"template": "{prompt}" + "x" * 1000}, "template"),
        ({"base_style": "bauhaus"}, "base_style"),
        ({"ratio": "1:10"}, "ratio"),
        ({"ratio": "wide"}, "ratio"),
        ({"mode": "turbo"}, "mode"),
        ({"negative_prompt": "x" * 1001}, "negative_prompt"),
        ({"description": "x" * 501}, "description"),
        ({"provider_options": {"nowhere": {"a": 1}}}, "provider_options.nowhere"),
        ({"provider_options": {"builtin": 3}}, "provider_options.builtin"),
        ({"provider_options": {"builtin": {"blob": "x" * 9000}}}, "provider_options"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_fields_are_422_and_write_nothing(
    http: httpx.Client, fields: dict[str, Any], field: str
) -> None:
    problem = _problem(
        http.post("/api/image/styles", json={"name": "bad", **fields}), 422, "validation_error"
    )
    found = [problem.get("field")] + [e["field"] for e in problem.get("errors") or []]
    assert any(f and f.startswith(field) for f in found), problem
    _problem(http.get("/api/image/styles/bad"), 404, "style_not_found")
    assert http.post("/api/image/styles", json={"name": "ok"}).status_code == 201
    problem = _problem(http.patch("/api/image/styles/ok", json=fields), 422, "validation_error")
    assert http.get("/api/image/styles/ok").json()["template"] == "{prompt}"


def test_a_preset_model_is_checked_like_a_body_model(http: httpx.Client) -> None:
    problem = _problem(
        http.post("/api/image/styles", json={"name": "m", "model": "midjourney:v7"}),
        422,
        "unsupported_model",
    )
    assert problem["field"] == "model" and "builtin" in problem["detail"]
    assert http.post("/api/image/styles", json={"name": "m", "model": "builtin"}).status_code == 201


def test_the_workspace_limit(http: httpx.Client) -> None:
    for i in range(MAX_PRESETS_PER_WORKSPACE):
        assert http.post("/api/image/styles", json={"name": f"p{i}"}).status_code == 201
    _problem(http.post("/api/image/styles", json={"name": "one-more"}), 409, "style_limit_reached")
    assert len(_names(http)) == len(STYLES) + MAX_PRESETS_PER_WORKSPACE
    assert http.delete("/api/image/styles/p0").status_code == 204
    assert http.post("/api/image/styles", json={"name": "one-more"}).status_code == 201


def test_idempotency_keys(http: httpx.Client) -> None:
    key = {"Idempotency-Key": f"style-{uuid.uuid4()}"}
    first = http.post("/api/image/styles", json=PRODUCT, headers=key)
    again = http.post("/api/image/styles", json=PRODUCT, headers=key)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true" and again.json() == first.json()
    assert again.headers["location"] == "/api/image/styles/product-shot"
    other = {**PRODUCT, "ratio": "1:1"}
    _problem(http.post("/api/image/styles", json=other, headers=key), 422, "idempotency_key_reused")

    patch_key = {"Idempotency-Key": f"patch-{uuid.uuid4()}"}
    url = "/api/image/styles/product-shot"
    assert http.patch(url, json={"ratio": "2:3"}, headers=patch_key).status_code == 200
    http.patch(url, json={"ratio": "3:2"})
    replayed = http.patch(url, json={"ratio": "2:3"}, headers=patch_key)
    assert replayed.headers["idempotent-replayed"] == "true"
    assert http.get(url).json()["ratio"] == "3:2"  # the replay changed nothing

    delete_key = {"Idempotency-Key": f"delete-{uuid.uuid4()}"}
    assert http.delete(url, headers=delete_key).status_code == 204
    replayed = http.delete(url, headers=delete_key)
    assert replayed.status_code == 204 and replayed.headers["idempotent-replayed"] == "true"


def test_a_job_freezes_its_preset(http: httpx.Client) -> None:
    assert http.post("/api/image/styles", json=PRODUCT).status_code == 201
    body = {"prompt": "a running shoe --no laces --seed 5", "style": "product-shot",
            "variations": 1}  # fmt: skip
    created = http.post("/api/image/jobs", json=body)
    assert created.status_code == 202, created.text
    job = created.json()
    assert job["prompt"] == "a running shoe, on a marble plinth, soft studio light"
    assert job["negative_prompt"] == "laces, text, watermark"
    params = job["params"]
    assert (params["style"], params["ratio"], params["mode"]) == ("studio", "4:5", "draft")
    assert params["preset"]["name"] == "product-shot" and params["preset"]["builtin"] is False
    assert params["preset"]["template"] == PRODUCT["template"]
    assert params["preset"]["prompt"] == "a running shoe"
    assert params["provider_options"] == {"builtin": {"detail": 2}}

    url = "/api/image/styles/product-shot"
    http.patch(url, json={"template": "{prompt} in space", "ratio": "1:1", "base_style": "neon"})
    later = http.get(f"/api/image/jobs/{job['job_id']}").json()
    assert later["prompt"] == job["prompt"] and later["params"]["preset"] == params["preset"]
    changed = http.post("/api/image/jobs", json=body).json()
    assert changed["prompt"] == "a running shoe in space"
    assert (changed["params"]["style"], changed["params"]["ratio"]) == ("neon", "1:1")

    assert http.delete(url).status_code == 204
    done = wait_for_job(http, job["job_id"])
    assert done["status"] == "completed", done
    assert done["params"]["preset"] == params["preset"] and done["prompt"] == job["prompt"]
    image = fetch_image(done["result_urls"][0])
    assert abs(image.width / image.height / (4 / 5) - 1) <= 0.01
    gone = _problem(http.post("/api/image/jobs", json=body), 422, "validation_error")
    assert gone["field"] == "style"


def test_a_builtin_preset_by_flag_and_body(http: httpx.Client) -> None:
    by_flag = http.post("/api/image/jobs", json={"prompt": "a harbour --style noir --draft"})
    by_body = http.post("/api/image/jobs", json={"prompt": "a harbour --draft", "style": "noir"})
    assert by_flag.status_code == by_body.status_code == 202, by_flag.text
    assert by_flag.json()["prompt"] == by_body.json()["prompt"]
    assert by_flag.json()["prompt"].startswith("film noir scene of a harbour")
    assert by_flag.json()["params"]["preset"]["builtin"] is True
