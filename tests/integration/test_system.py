"""Health, readiness, OpenAPI, docs and signed file links."""

from __future__ import annotations

import re

import httpx

from tests.support.api import wait_for_job
from tests.support.server import ServerProcess


def test_health_ready_openapi_docs(server: ServerProcess) -> None:
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(server.url + "/readyz").json()["status"] == "ready"
    spec = httpx.get(server.url + "/openapi.json").json()
    operations = {op["operationId"] for path in spec["paths"].values() for op in path.values()}
    assert {"create_job", "get_job", "list_jobs", "cancel_job", "retry_job"} <= operations
    docs = httpx.get(server.url + "/docs")
    assert "text/html" in docs.headers["content-type"]
    # Everything the page loads comes from this server: it works without a network.
    assert "cdn." not in docs.text
    script = re.search(r'src="([^"]+\.js)"', docs.text)
    assert script and script.group(1).startswith("/")
    assert httpx.get(server.url + script.group(1)).status_code == 200


def test_file_links_are_signed_and_scoped(http: httpx.Client, server: ServerProcess) -> None:
    job = http.post("/api/image/jobs", json={"prompt": "a key", "variations": 1}).json()
    url = wait_for_job(http, job["job_id"])["result_urls"][0]
    assert httpx.get(url).status_code == 200
    tampered = url.replace("sig=", "sig=0")
    assert httpx.get(tampered).json()["code"] == "file_link_invalid"
    expired = url.split("?")[0] + "?exp=1&sig=" + url.split("sig=")[1]
    assert httpx.get(expired).status_code == 403
    other_file = url.replace("/1.png", "/grid.png")
    assert httpx.get(other_file).status_code == 403
    # httpx normalises `..` before sending, so this only checks an ordinary path; the
    # traversal attempts proper are raw request lines (test_files_traversal.py).
    assert httpx.get(server.url + "/files/../../etc/passwd?exp=9999999999&sig=x").status_code in {
        403,
        404,
    }
