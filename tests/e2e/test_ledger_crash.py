"""The credits ledger under crashes: jobs with random outcomes (complete, fail,
cancel) while the server is SIGKILLed twice mid-run and restarted; at the end every
job ended once in the ledger, nothing stays held, and the balance is the grants less
what the completed jobs cost — the same as if nothing had crashed."""

from __future__ import annotations

import random
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import FAULT_MARKER
from tests.support.api import TERMINAL, client
from tests.support.server import ServerProcess, wait_until

JOBS = 36


def _all(http: httpx.Client, path: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = http.get(path, params={"limit": 100, **({"cursor": cursor} if cursor else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        found += body["data"]
        cursor = body.get("next_cursor")
        if not cursor:
            return found


def test_the_ledger_adds_up_after_crashes(tmp_path: Path) -> None:
    rng = random.Random(12)
    env = {
        "IMAGEGATE_CREDITS_REQUIRED": "true", "IMAGEGATE_BUILTIN_LATENCY_MS": "300",
        "IMAGEGATE_BUILTIN_FAULT_MARKER": FAULT_MARKER, "IMAGEGATE_MAX_ATTEMPTS": "2",
        "IMAGEGATE_WORKSPACE_CONCURRENCY": "4",
    }  # fmt: skip
    server = ServerProcess(tmp_path / "data", **env).start()
    key = server.admin_key
    with client(server.url, key) as http:
        assert http.post("/api/image/credits/grants", json={"amount": 500}).status_code == 201
        ids: list[str] = []
        for n in range(JOBS):
            fail = rng.random() < 0.25
            prompt = f"job {n} {FAULT_MARKER}" if fail else f"job {n}"
            body = {"prompt": prompt, "variations": rng.randint(1, 4), "mode": "draft"}
            created = http.post("/api/image/jobs", json=body)
            assert created.status_code == 202, created.text
            ids.append(created.json()["job_id"])
        for job_id in rng.sample(ids, 6):
            http.post(f"/api/image/jobs/{job_id}/cancel")  # may have ended: fine
    for _ in range(2):  # killed mid-run, twice
        with client(server.url, key) as http:
            wait_until(
                lambda: sum(http.get(f"/api/image/jobs/{i}").json()["status"] == "running"
                            for i in ids) >= 1, 30, what="a job running",
            )  # fmt: skip
        server.kill(signal.SIGKILL)
        server.start()
    with client(server.url, key) as http:
        jobs = wait_until(
            lambda: (found := [http.get(f"/api/image/jobs/{i}").json() for i in ids])
            and all(j["status"] in TERMINAL for j in found) and found,
            120, 0.2, "every job terminal",
        )  # fmt: skip
        balance = wait_until(
            lambda: (b := http.get("/api/image/credits").json())["reserved"] == 0 and b, 30
        )
        entries = _all(http, "/api/image/credits/ledger")

    keys = Counter((e["job_id"], e["kind"]) for e in entries if e["job_id"])
    assert all(n == 1 for n in keys.values()), [k for k, n in keys.items() if n > 1]
    for job in jobs:
        ends = [kind for (job_id, kind) in keys if job_id == job["job_id"]]
        assert "reserve" in ends
        expected = "settle" if job["status"] == "completed" else "void"
        assert expected in ends and len(ends) == 2, (job["job_id"], job["status"], ends)
    completed = [j for j in jobs if j["status"] == "completed"]
    charged = sum(j["cost"]["charged_credits"] for j in completed)
    assert completed and len(completed) < JOBS  # a mix of outcomes
    assert (
        balance["charged"] == charged == sum(e["amount"] for e in entries if e["kind"] == "settle")
    )
    assert balance["granted"] == 500 and balance["available"] == 500 - charged
    server.stop()
