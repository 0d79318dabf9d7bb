"""Usage over real HTTP: the figures by day, user, provider, action and key for a
known set of jobs; the CSV sums equal the credits ledger; the cost per final usable
image of a known chain, computed by hand; marking images final."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest

from tests.conftest import FAULT_MARKER
from tests.support.api import client, wait_for_job
from tests.support.postgres import fresh_database
from tests.support.server import ServerProcess


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def metered(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """On both backends: the report's SQL (date grouping, sums) differs by dialect."""
    with ExitStack() as stack:
        database = {}
        if request.param == "postgresql":
            database["IMAGEGATE_DATABASE_URL"] = stack.enter_context(fresh_database())
        proc = ServerProcess(
            tmp_path_factory.mktemp("usage"), IMAGEGATE_CREDITS_REQUIRED="true",
            IMAGEGATE_BUILTIN_FAULT_MARKER=FAULT_MARKER, IMAGEGATE_BUILTIN_FAULT_ATTEMPTS="9",
            IMAGEGATE_MAX_ATTEMPTS="2", IMAGEGATE_STORAGE_USD_PER_GB="1000", **database,
        ).start()  # fmt: skip
        yield proc
        proc.stop()


@pytest.fixture
def admin(metered: ServerProcess) -> Iterator[httpx.Client]:
    with client(metered.url, metered.create_key(f"ws-{uuid.uuid4().hex[:8]}", admin=True)) as c:
        assert c.post("/api/image/credits/grants", json={"amount": 1000}).status_code == 201
        yield c


def _done(http: httpx.Client, body: dict[str, Any], path: str = "/api/image/jobs") -> Any:
    created = http.post(path, json=body)
    assert created.status_code == 202, created.text
    return wait_for_job(http, created.json()["job_id"])


def test_a_chain_s_cost_per_final_image(admin: httpx.Client) -> None:
    grid = _done(admin, {"prompt": "a lighthouse", "mode": "draft", "variations": 4})  # 4
    act = f"/api/image/jobs/{grid['job_id']}/actions"
    vary = _done(admin, {"action": "variation", "index": 2}, act)  # 4 drafts: 4
    up = _done(
        admin, {"action": "upscale", "index": 1}, f"/api/image/jobs/{vary['job_id']}/actions"
    )
    assert up["cost"]["charged_credits"] == 2 and up["status"] == "completed"
    cost = admin.get(f"/api/image/jobs/{up['job_id']}/cost").json()
    assert cost["root_job_id"] == grid["job_id"] and cost["jobs"] == 3
    assert cost["credits_charged"] == 4 + 4 + 2 and cost["final_images"] == 1
    assert cost["credits_per_final_image"] == 10.0
    # Marking a draft final too: two finals share the same spend.
    assert admin.post(f"/api/image/jobs/{grid['job_id']}/images/3/final").status_code == 204
    again = admin.get(f"/api/image/jobs/{grid['job_id']}/cost").json()
    assert again["final_images"] == 2 and again["credits_per_final_image"] == 5.0
    # Storage priced at $1000/GB in this test: the chain's bytes, costed.
    assert again["storage_bytes"] > 0
    assert again["storage_usd"] == pytest.approx(again["storage_bytes"] / 1e9 * 1000, abs=1e-5)
    assert again["usd_per_final_image"] == pytest.approx(again["total_usd"] / 2, abs=1e-5)
    bad = admin.post(f"/api/image/jobs/{grid['job_id']}/images/9/final")
    assert bad.status_code == 422
    assert admin.delete(f"/api/image/jobs/{grid['job_id']}/images/3/final").status_code == 204
    assert admin.get(f"/api/image/jobs/{grid['job_id']}/cost").json()["final_images"] == 1


def test_usage_by_group_and_the_csv_sums_equal_the_ledger(admin: httpx.Client) -> None:
    _done(admin, {"prompt": "a kite", "mode": "draft", "variations": 2, "user": "ann"})
    _done(admin, {"prompt": "a kite", "mode": "draft", "variations": 1, "user": "bob"})
    failed = _done(admin, {"prompt": f"a kite {FAULT_MARKER}", "variations": 1, "user": "bob"})
    assert failed["status"] == "failed"

    by_user = admin.get("/api/image/usage", params={"group_by": "user"}).json()
    users = {g["group"]: g for g in by_user["groups"]}
    assert users["ann"]["jobs"] == 1 and users["ann"]["images"] == 2
    assert users["ann"]["credits_charged"] == 2
    assert users["bob"]["jobs"] == 2 and users["bob"]["failed"] == 1
    assert users["bob"]["retries"] == 1 and users["bob"]["credits_charged"] == 1
    totals = by_user["totals"]
    assert totals["jobs"] == 3 and totals["images"] == 3 and totals["final_images"] == 0
    assert totals["credits_per_final_image"] is None  # nothing final yet

    day = admin.get("/api/image/usage", params={"group_by": "day"}).json()
    assert len(day["groups"]) == 1 and day["totals"] == totals
    by_action = admin.get("/api/image/usage", params={"group_by": "action"}).json()
    assert [g["group"] for g in by_action["groups"]] == ["imagine"]

    table = admin.get("/api/image/usage", params={"group_by": "provider", "format": "csv"})
    assert table.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(table.text)))
    charged = sum(int(r["credits_charged"]) for r in rows)
    ledger = admin.get("/api/image/credits/ledger", params={"format": "csv"}).text
    settled = sum(int(r["amount"]) for r in csv.DictReader(io.StringIO(ledger))
                  if r["kind"] == "settle")  # fmt: skip
    assert charged == settled == admin.get("/api/image/credits").json()["charged"] == 3

    for bad in ({"group_by": "colour"}, {"from": "2026-01-01T00:00:00"},
                {"from": "2020-01-01T00:00:00Z"}):  # fmt: skip
        assert admin.get("/api/image/usage", params=bad).status_code == 422, bad


def test_another_workspace_s_chain_is_not_found(
    metered: ServerProcess, admin: httpx.Client
) -> None:
    job = _done(admin, {"prompt": "a kite", "mode": "draft", "variations": 1})
    with client(metered.url, metered.create_key(f"ws-{uuid.uuid4().hex[:8]}")) as other:
        assert other.get(f"/api/image/jobs/{job['job_id']}/cost").status_code == 404
        marked = other.post(f"/api/image/jobs/{job['job_id']}/images/1/final")
        assert marked.status_code == 404
        assert other.get("/api/image/usage").json()["totals"]["jobs"] == 0
