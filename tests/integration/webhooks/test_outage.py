"""A receiver that is down while 200 jobs complete — and the server killed (SIGKILL)
or stopped (SIGTERM) in the middle of it — then comes back: every event arrives, each
webhook-id counted once after deduplication, none missing."""

from __future__ import annotations

import signal
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.api import client
from tests.support.postgres import fresh_database
from tests.support.receiver import Receiver
from tests.support.server import ServerProcess, free_port, wait_until

JOBS = 200
TYPES = ["job.queued", "job.completed"]
# Quick at first, then every 6 s for four minutes: the outage lasts well under.
SCHEDULE = ",".join(["0", "2"] + ["6"] * 40)


def pages(http: httpx.Client, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a paginated list."""
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        where = {"limit": 100, **params, **({"cursor": cursor} if cursor else {})}
        page = http.get(path, params=where).json()
        found += page["data"]
        if not page["has_more"]:
            return found
        cursor = page["next_cursor"]


def all_deliveries(http: httpx.Client, endpoint_id: str) -> list[dict[str, Any]]:
    return pages(http, f"/api/image/webhooks/{endpoint_id}/deliveries")


def completed(http: httpx.Client) -> int:
    return len(pages(http, "/api/image/jobs", status="completed"))


# 200 jobs, a restart and ~1000 failed attempts take a minute or two on two busy cores.
@pytest.mark.timeout(360)
@pytest.mark.parametrize(
    ("backend", "stop"),
    [("sqlite", signal.SIGKILL), ("postgresql", signal.SIGTERM)],
    ids=["sqlite-sigkill", "postgresql-sigterm"],
)
def test_every_event_arrives_after_an_outage_and_a_restart(
    tmp_path: Path, backend: str, stop: signal.Signals
) -> None:
    with ExitStack() as stack:
        env = {
            "IMAGEGATE_SSRF_ALLOWLIST": "127.0.0.0/8",
            "IMAGEGATE_WEBHOOK_SCHEDULE_S": SCHEDULE,
            "IMAGEGATE_RATE_LIMIT_JOBS": "off",
        }
        if backend == "postgresql":
            env["IMAGEGATE_DATABASE_URL"] = stack.enter_context(fresh_database())
        server = ServerProcess(tmp_path / "data", **env).start()
        stack.callback(lambda: server.stop())
        port = free_port()  # the receiver's: nothing listens there yet (connection refused)
        key = server.admin_key
        with client(server.url, key) as http:
            endpoint = http.post(
                "/api/image/webhooks",
                json={"url": f"http://127.0.0.1:{port}/hooks", "event_types": TYPES},
            ).json()
            for i in range(JOBS):
                body = {"prompt": f"lighthouse {i} --draft", "variations": 1}
                assert http.post("/api/image/jobs", json=body).status_code == 202
            wait_until(lambda: completed(http) == JOBS, 120, 0.5, "every job completed")
            refused = [a for d in all_deliveries(http, endpoint["id"]) for a in d["attempts"]]
            assert refused and all(a["status_code"] is None for a in refused)

        server.kill(stop)  # mid-outage, with every delivery still pending
        server = ServerProcess(tmp_path / "data", port=server.port, **env).start()
        receiver = stack.enter_context(Receiver(port=port))
        with client(server.url, key) as http:

            def all_delivered() -> list[dict[str, Any]] | None:
                found = all_deliveries(http, endpoint["id"])
                done = len(found) == JOBS * len(TYPES)
                return found if done and all(d["status"] == "delivered" for d in found) else None

            found = wait_until(all_delivered, 120, 0.5, "every delivery delivered")
        expected = {d["webhook_id"] for d in found}
        assert len(expected) == JOBS * len(TYPES)
        counted = Counter(r.webhook_id for r in receiver.received)
        assert set(counted) == expected  # after dedupe: each exactly once, none missing
        events = {r.webhook_id: r.json() for r in receiver.received}
        pairs = Counter((e["data"]["job_id"], e["type"]) for e in events.values())
        assert len(pairs) == JOBS * len(TYPES) and set(pairs.values()) == {1}
        assert {d["status"] for d in found} == {"delivered"}
        assert max(len(d["attempts"]) for d in found) >= 2
