"""Authentication, workspace isolation and validation: clear errors, nothing changed."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from typing import Any

import httpx
import pytest

from tests.support.api import client, wait_for_job
from tests.support.server import ServerProcess


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status
    assert body["title"] and body["detail"] and body["type"].endswith(code)
    return body


def test_missing_and_bad_keys_are_401(server: ServerProcess) -> None:
    with client(server.url, None) as anonymous:
        _problem(anonymous.post("/api/image/jobs", json={"prompt": "x"}), 401, "unauthenticated")
        _problem(anonymous.get("/api/image/jobs"), 401, "unauthenticated")
    with client(server.url, "ig_not-a-real-key") as wrong:
        _problem(wrong.get("/api/image/jobs"), 401, "unauthenticated")


def test_another_workspace_sees_404(server: ServerProcess, http: httpx.Client) -> None:
    job_id = http.post("/api/image/jobs", json={"prompt": "secret cat", "variations": 1}).json()[
        "job_id"
    ]
    with client(server.url, server.create_key(f"other-{uuid.uuid4().hex[:8]}")) as other:
        _problem(other.get(f"/api/image/jobs/{job_id}"), 404, "job_not_found")
        _problem(other.post(f"/api/image/jobs/{job_id}/cancel"), 404, "job_not_found")
        assert other.get("/api/image/jobs").json()["data"] == []
    wait_for_job(http, job_id)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": "x" * 4001}, "prompt"),
        ({"prompt": "x", "variations": 5}, "variations"),
        ({"prompt": "x", "variations": 0}, "variations"),
        ({"prompt": "x", "ratio": "wide"}, "ratio"),
        ({"prompt": "x", "ratio": "1:10"}, "ratio"),
        ({"prompt": "x", "ratio": "0:1"}, "ratio"),
        ({"prompt": "x", "style": "bauhaus-deluxe"}, "style"),
        ({"prompt": "x", "seed": -1}, "seed"),
        ({"prompt": "x", "seed": 2**40}, "seed"),
        ({"prompt": "x", "mode": "turbo"}, "mode"),
        ({"prompt": "x", "output_format": "tiff"}, "output_format"),
        ({"prompt": "x", "status": "completed"}, "status"),
        ({"prompt": "x", "cost": 0}, "cost"),
        ({"prompt": "x", "credits": 10}, "credits"),
        ({"prompt": "x", "workspace_id": "ws_1"}, "workspace_id"),
        ({"prompt": "x", "colour": "red"}, "colour"),
        ({"prompt": "x", "metadata": {"k": 1}}, "metadata.k"),
        ({"prompt": "x", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"prompt": "x --zoom 2"}, "prompt"),
        ({"prompt": "--ar 16:9"}, "prompt"),
        ({"prompt": "x --ar 16:9", "ratio": "1:1"}, "ratio"),
        ({"prompt": "x --seed abc"}, "prompt"),
    ],
)
def test_invalid_bodies_are_422_and_change_nothing(
    http: httpx.Client, body: dict[str, Any], field: str
) -> None:
    problem = _problem(http.post("/api/image/jobs", json=body), 422, "validation_error")
    fields = [e["field"] for e in problem.get("errors") or []] + [problem.get("field")]
    assert any(f and f.startswith(field) for f in fields), problem
    assert http.get("/api/image/jobs").json()["data"] == []


def test_unknown_model_and_malformed_json(http: httpx.Client) -> None:
    problem = _problem(
        http.post("/api/image/jobs", json={"prompt": "x", "model": "midjourney:v7"}),
        422,
        "unsupported_model",
    )
    assert "builtin" in problem["detail"]
    _problem(
        http.post(
            "/api/image/jobs", content=b"{not json", headers={"content-type": "application/json"}
        ),
        422,
        "validation_error",
    )
    _problem(http.post("/api/image/jobs", content=b"x" * 300_000), 413, "payload_too_large")
    empty = _problem(http.post("/api/image/jobs"), 422, "validation_error")
    assert empty["errors"][0]["field"] == "body" and "JSON object" in empty["detail"]
    assert http.get("/api/image/jobs").json()["data"] == []


def test_list_filters_and_cursor_validation(http: httpx.Client) -> None:
    _problem(http.get("/api/image/jobs", params={"status": "sleeping"}), 422, "validation_error")
    _problem(http.get("/api/image/jobs", params={"cursor": "!!!"}), 400, "invalid_cursor")
    _problem(http.get("/api/image/jobs", params={"limit": 0}), 422, "validation_error")
    _problem(http.get("/api/image/jobs/job_doesnotexist"), 404, "job_not_found")


def _chunked_post(server: ServerProcess, key: str, path: str, body: bytes) -> tuple[int, bytes]:
    """POST ``body`` with ``Transfer-Encoding: chunked`` and no Content-Length, on a raw
    socket (an HTTP client would add a length for a body it holds whole). Returns the
    status and the response body. A reader thread takes the answer as it comes: the
    server may answer, and close, before the whole body is sent."""
    received = bytearray()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)

    def read() -> None:
        try:
            while chunk := sock.recv(65536):
                received.extend(chunk)
        except OSError:
            pass

    reader = threading.Thread(target=read)
    reader.start()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n"
        "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
        "Connection: close\r\n\r\n"
    )
    try:
        sock.sendall(head.encode())
        for start in range(0, len(body), 65536):
            chunk = body[start : start + 65536]
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server stopped reading: its answer says why
    reader.join(30)
    sock.close()
    status_line, _, rest = bytes(received).partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), payload


def test_a_chunked_body_over_the_limit_is_413(server: ServerProcess, workspace_key: str) -> None:
    huge = b'{"prompt": "' + b"x" * (5 * 1024 * 1024) + b'"}'
    status, payload = _chunked_post(server, workspace_key, "/api/image/jobs", huge)
    assert status == 413, payload[:300]
    problem = json.loads(payload)
    assert problem["code"] == "payload_too_large" and problem["status"] == 413
    # A chunked body under the limit is read as usual.
    small = json.dumps({"prompt": "a small chunked cat", "variations": 1}).encode()
    status, payload = _chunked_post(server, workspace_key, "/api/image/jobs", small)
    assert status == 202, payload[:300]
    with client(server.url, workspace_key) as http:
        assert [j["prompt"] for j in http.get("/api/image/jobs").json()["data"]] == [
            "a small chunked cat"
        ]
