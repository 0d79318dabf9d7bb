"""The webhook outage scenario, at any size: a receiver that is down while ``jobs``
jobs complete, the server stopped mid-outage (SIGKILL or SIGTERM) and started again,
then the receiver back. Every event must arrive, each webhook-id once after dedupe.

tests/integration/webhooks/test_outage.py runs it small for the suite;
bench/webhook_outage.py runs the full 200-job version and prints how long each phase
took."""

from __future__ import annotations

import signal
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.api import client
from tests.support.receiver import Receiver
from tests.support.server import ServerProcess, free_port, wait_for_progress

TYPES = ["job.queued", "job.completed"]
# Quick at first, then every 6 s for four minutes: the outage lasts well under.
SCHEDULE = ",".join(["0", "2"] + ["6"] * 40)
# No job completed, or no delivery delivered, for this long: stuck, whatever the size
# of the run. Longer than one step of the schedule (6 s) plus a restart on a busy machine.
STALL_S = 60.0


@dataclass(frozen=True)
class OutageRun:
    jobs: int
    jobs_done_s: float  # first job created -> every job completed (receiver down)
    refused_attempts: int  # delivery attempts the down receiver refused
    restart_s: float  # the stop and the start of the server
    delivered_s: float  # receiver up -> every delivery delivered


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


def run_outage(
    data_dir: Path, jobs: int, stop: signal.Signals, database_url: str | None = None
) -> OutageRun:
    """Run the scenario, assert what a receiver relies on, and time its phases."""
    with ExitStack() as stack:
        env = {
            "IMAGEGATE_SSRF_ALLOWLIST": "127.0.0.0/8",
            "IMAGEGATE_WEBHOOK_SCHEDULE_S": SCHEDULE,
            "IMAGEGATE_RATE_LIMIT_JOBS": "off",
        }
        if database_url is not None:
            env["IMAGEGATE_DATABASE_URL"] = database_url
        server = ServerProcess(data_dir, **env).start()
        stack.callback(lambda: server.stop())
        port = free_port()  # the receiver's: nothing listens there yet (connection refused)
        key = server.admin_key
        with client(server.url, key) as http:
            endpoint = http.post(
                "/api/image/webhooks",
                json={"url": f"http://127.0.0.1:{port}/hooks", "event_types": TYPES},
            ).json()
            started = time.monotonic()
            for i in range(jobs):
                body = {"prompt": f"lighthouse {i} --draft", "variations": 1}
                assert http.post("/api/image/jobs", json=body).status_code == 202
            wait_for_progress(lambda: completed(http), jobs, STALL_S, 0.5, "jobs completed")
            jobs_done_s = time.monotonic() - started
            refused = [a for d in all_deliveries(http, endpoint["id"]) for a in d["attempts"]]
            assert refused and all(a["status_code"] is None for a in refused)

        restarting = time.monotonic()
        server.kill(stop)  # mid-outage, with every delivery still pending
        server = ServerProcess(data_dir, port=server.port, **env).start()
        restart_s = time.monotonic() - restarting
        receiver = stack.enter_context(Receiver(port=port))
        back = time.monotonic()
        with client(server.url, key) as http:

            def delivered() -> int:
                found = all_deliveries(http, endpoint["id"])
                return sum(d["status"] == "delivered" for d in found)

            wait_for_progress(delivered, jobs * len(TYPES), STALL_S, 0.5, "deliveries delivered")
            delivered_s = time.monotonic() - back
            found = all_deliveries(http, endpoint["id"])
        assert len(found) == jobs * len(TYPES)
        expected = {d["webhook_id"] for d in found}
        assert len(expected) == jobs * len(TYPES)
        counted = Counter(r.webhook_id for r in receiver.received)
        assert set(counted) == expected  # after dedupe: each exactly once, none missing
        events = {r.webhook_id: r.json() for r in receiver.received}
        pairs = Counter((e["data"]["job_id"], e["type"]) for e in events.values())
        assert len(pairs) == jobs * len(TYPES) and set(pairs.values()) == {1}
        assert {d["status"] for d in found} == {"delivered"}
        assert max(len(d["attempts"]) for d in found) >= 2
        return OutageRun(jobs, jobs_done_s, len(refused), restart_s, delivered_s)
