"""The inputs the API fuzz (test_fuzz.py) turned into 5xx answers, as explicit cases,
on SQLite and on PostgreSQL: control characters in text fields, malformed ids in
paths, cursors that are not ASCII, signatures that are not ASCII."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.support.api import client
from tests.support.server import ServerProcess


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def _refused(response: httpx.Response, field: str) -> None:
    body = _problem(response, 422, "validation_error")
    assert body["errors"][0]["field"] == field, body
    assert body["errors"][0]["type"] == "control_character", body
    assert body["detail"].startswith(f"{field}: "), body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"prompt": "a red\x00 fox"}, "prompt"),  # PostgreSQL cannot store NUL: was a 500
        ({"prompt": "a red fox\x1b[2J"}, "prompt"),
        ({"prompt": "a fox", "negative_prompt": "blur\x00"}, "negative_prompt"),
        ({"prompt": "a fox", "style": "studio\n"}, "style"),
        ({"prompt": "a fox", "ratio": "16:9\x00"}, "ratio"),
        ({"prompt": "a fox", "model": "builtin:\x7fdraft"}, "model"),
        ({"prompt": "a fox", "user": "alice\r\nX-Admin: 1"}, "user"),
        ({"prompt": "a fox", "metadata": {"order": "42\x00"}}, "metadata.order"),
        ({"prompt": "a fox", "webhook_url": "https://example.com/\x00"}, "webhook_url"),
    ],
)
def test_control_characters_in_a_job_are_refused_naming_the_field(
    http: httpx.Client, body: dict[str, Any], field: str
) -> None:
    _refused(http.post("/api/image/jobs", json=body), field)
    # Nothing was stored: the workspace has no job.
    assert http.get("/api/image/jobs").json()["data"] == []


def test_a_control_character_in_a_metadata_key_is_refused(http: httpx.Client) -> None:
    body = _problem(
        http.post("/api/image/jobs", json={"prompt": "a fox", "metadata": {"k\x00": "v"}}),
        422,
        "validation_error",
    )
    assert body["errors"][0]["type"] == "control_character"
    assert body["errors"][0]["field"].startswith("metadata.")


def test_tabs_and_newlines_in_a_prompt_are_kept(http: httpx.Client) -> None:
    prompt = "a fox\n\tin the\r\nsnow"  # (the ends of a prompt are trimmed)
    created = http.post("/api/image/jobs", json={"prompt": prompt, "variations": 1})
    assert created.status_code == 202, created.text
    assert http.get(f"/api/image/jobs/{created.json()['job_id']}").json()["prompt"] == prompt


def test_control_characters_in_a_webhook_endpoint_are_refused(http: httpx.Client) -> None:
    url = "https://example.com/hook"
    _refused(
        http.post("/api/image/webhooks", json={"url": url, "description": "x\x00"}), "description"
    )
    _refused(http.post("/api/image/webhooks", json={"url": url + "\n"}), "url")
    _refused(http.patch("/api/image/webhooks/ep_01", json={"description": "\x00"}), "description")


@pytest.mark.parametrize(
    "path",
    [
        "/api/image/jobs/%00",
        "/api/image/jobs/job_%00",
        "/api/image/jobs/%E9%83%A3",  # not latin-1: was a 500 once it reached a header
        "/api/image/jobs/job_%00/events",
        "/api/image/jobs/job_%00/deliveries",
        "/api/image/webhooks/ep_%00",
        "/api/image/webhooks/ep_%00/secret",
        "/api/image/webhooks/ep_%00/deliveries",
    ],
)
def test_malformed_ids_are_not_found(http: httpx.Client, path: str) -> None:
    response = http.get(path)
    assert response.status_code == 404, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_malformed_ids_in_writes_are_not_found(http: httpx.Client, server: ServerProcess) -> None:
    assert http.post("/api/image/jobs/job_%00/cancel").status_code == 404
    assert http.delete("/api/image/webhooks/ep_%00").status_code == 404
    assert http.post("/api/image/webhooks/ep_%00/rotate-secret").status_code == 404
    assert http.post("/api/image/webhooks/deliveries/dlv_%00/redeliver").status_code == 404
    with client(server.url, server.admin_key) as admin:
        # The Location header was built from the path before the job was looked up.
        _problem(admin.post("/api/image/jobs/%E9%83%A3/retry"), 404, "job_not_found")
        _problem(admin.post("/api/image/jobs/job_%00/retry"), 404, "job_not_found")


@pytest.mark.parametrize(
    "cursor",
    [
        "\u00e9t\u00e9",  # base64 of non-ASCII text raised ValueError: was a 500
        base64.urlsafe_b64encode(b"job_\x00").decode(),  # decodes to an id PostgreSQL refuses
        base64.urlsafe_b64encode(b"dlv_\x00").decode(),
    ],
)
def test_cursors_that_this_server_never_issued_are_400(http: httpx.Client, cursor: str) -> None:
    _problem(http.get("/api/image/jobs", params={"cursor": cursor}), 400, "invalid_cursor")
    # The cursor is read before the endpoint is looked up.
    deliveries = "/api/image/webhooks/ep_01JD0000000000000000000000/deliveries"
    _problem(http.get(deliveries, params={"cursor": cursor}), 400, "invalid_cursor")


def test_a_file_signature_that_is_not_ascii_is_invalid(server: ServerProcess) -> None:
    # hmac.compare_digest raises TypeError on non-ASCII text: was a 500.
    response = httpx.get(server.url + "/files/ws/job/1.png", params={"exp": 9999999999, "sig": "é"})
    _problem(response, 403, "file_link_invalid")


def test_the_openapi_document_declares_problem_answers(server: ServerProcess) -> None:
    spec = httpx.get(server.url + "/openapi.json").json()
    assert "Problem" in spec["components"]["schemas"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    content = response["content"]
                    assert list(content) == ["application/problem+json"], (method, path, status)
            if path.startswith("/api/"):
                assert {"401", "422", "429"} <= set(operation["responses"]), (method, path)
    create = spec["paths"]["/api/image/jobs"]["post"]["responses"]
    assert {"200", "202", "400", "409", "413"} <= set(create)
    assert set(spec["paths"]["/files/{key}"]["get"]["responses"]) == {"200", "403", "404", "422"}
