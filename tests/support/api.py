"""Small helpers for talking to a test server over HTTP."""

from __future__ import annotations

import io
import time
from typing import Any

import httpx
from PIL import Image

TERMINAL = {"completed", "failed", "canceled"}


def client(server_url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=server_url, headers=headers, timeout=30)


def wait_for_job(
    http: httpx.Client, job_id: str, timeout: float = 60, until: set[str] | None = None
) -> dict[str, Any]:
    wanted = until or TERMINAL
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = http.get(f"/api/image/jobs/{job_id}").json()
        if job["status"] in wanted:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s")
        time.sleep(0.05)


def fetch_image(url: str) -> Image.Image:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    image.load()
    return image
