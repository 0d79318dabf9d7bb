"""A small Server-Sent Events reader for tests (the format is a few lines of text)."""

from __future__ import annotations

import json
from typing import Any

import httpx


def read_events(
    url: str,
    key: str,
    *,
    last_event_id: str | None = None,
    limit: int | None = None,
    timeout: float = 60,
) -> list[dict[str, Any]]:
    """Events from ``url`` until the server ends the stream or ``limit`` arrived:
    ``{"id", "event", "data"}`` with ``data`` decoded from JSON."""
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    found: list[dict[str, Any]] = []
    with httpx.stream("GET", url, headers=headers, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        event: dict[str, Any] = {}
        for line in response.iter_lines():
            if line == "":
                if "data" in event:
                    found.append({**event, "data": json.loads(event["data"])})
                    if limit is not None and len(found) >= limit:
                        break
                event = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                event[name] = event[name] + "\n" + value if name in event else value
    return found
