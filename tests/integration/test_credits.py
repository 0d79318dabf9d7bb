"""Credits over real HTTP: a workspace that spends credits holds each job's estimate
at create (402 ``insufficient_credits`` and nothing made when it cannot), is charged
once when the job completes, and gets the hold back when the job fails, is canceled
or is requeued and fails again; the balance is grants minus charges, nothing stays
held, and the CSV ledger adds up; workspaces without credits are untouched."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import FAULT_MARKER
from tests.support.api import client, wait_for_job
from tests.support.server import ServerProcess, wait_until


@pytest.fixture(scope="module")
def paying(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data = tmp_path_factory.mktemp("credits")
    (data / "imagegate.toml").write_text("[workspaces.free]\ncredits = false\n")
    proc = ServerProcess(
        data, IMAGEGATE_CONFIG=str(data / "imagegate.toml"), IMAGEGATE_CREDITS_REQUIRED="true",
        IMAGEGATE_BUILTIN_FAULT_MARKER=FAULT_MARKER, IMAGEGATE_BUILTIN_FAULT_ATTEMPTS="3",
        IMAGEGATE_MAX_ATTEMPTS="2",
    ).start()  # fmt: skip
    yield proc
    proc.stop()


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _create(http: httpx.Client, prompt: str, **extra: Any) -> httpx.Response:
    return http.post("/api/image/jobs", json={"prompt": prompt, "mode": "draft", **extra})


@pytest.fixture
def workspace() -> str:
    return f"ws-{uuid.uuid4().hex[:10]}"


def test_jobs_hold_then_settle_or_release(paying: ServerProcess, workspace: str) -> None:
    with (
        client(paying.url, paying.create_key(workspace, admin=True)) as admin,
        client(paying.url, paying.create_key(workspace)) as member,
    ):
        start = _ok(admin.get("/api/image/credits"))
        assert start["required"] is True and start["available"] == 0
        # Too little: refused, nothing made, nothing held.
        refused = _create(member, "a kite", variations=4)
        assert refused.status_code == 402, refused.text
        problem = refused.json()
        assert problem["code"] == "insufficient_credits" and problem["needed"] == 4
        assert _ok(member.get("/api/image/jobs"))["data"] == []
        _ok(admin.post("/api/image/credits/grants", json={"amount": 10, "note": "trial"},
                       headers={"Idempotency-Key": "trial-1"}), 201)  # fmt: skip
        # A retried grant adds nothing twice.
        again = admin.post("/api/image/credits/grants", json={"amount": 10, "note": "trial"},
                           headers={"Idempotency-Key": "trial-1"})  # fmt: skip
        assert again.status_code == 201 and again.headers.get("idempotent-replayed") == "true"
        assert _ok(member.get("/api/image/credits"))["available"] == 10
        # The member reads the balance but grants nothing.
        assert member.post("/api/image/credits/grants", json={"amount": 5}).status_code == 403

        done = _ok(_create(member, "a kite", variations=2), 202)  # 2 draft images: 2 credits
        failed = _ok(_create(member, f"a kite {FAULT_MARKER}", variations=1), 202)
        assert wait_for_job(member, done["job_id"])["status"] == "completed"
        assert wait_for_job(member, failed["job_id"])["status"] == "failed"

        # Requeued, it holds again: its first run failed twice, the third fault fails
        # the new run's first attempt, the fourth succeeds, and this run is charged.
        requeued = admin.post(f"/api/image/jobs/{failed['job_id']}/retry")
        assert requeued.status_code == 202, requeued.text
        again_done = wait_for_job(member, failed["job_id"], until={"completed"})
        assert again_done["attempts"] == 4

        end = wait_until(
            lambda: (b := _ok(member.get("/api/image/credits")))["reserved"] == 0 and b, 30
        )
        assert end["charged"] == 3 and end["granted"] == 10
        assert end["available"] == end["granted"] - end["charged"]

        ledger = _ok(member.get("/api/image/credits/ledger"))["data"]
        mine = [e for e in ledger if e["job_id"] in (done["job_id"], failed["job_id"])]
        kinds = sorted((e["job_id"] == done["job_id"], e["kind"]) for e in mine)
        assert (True, "settle") in kinds and (True, "reserve") in kinds
        assert kinds.count((False, "reserve")) == 2  # one per run
        assert (False, "void") in kinds and (False, "settle") in kinds  # run 1, run 2
        assert len([k for k in kinds if k[0] and k[1] in ("settle", "void")]) == 1

        table = member.get("/api/image/credits/ledger", params={"format": "csv"})
        assert table.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(table.text)))
        total = {kind: sum(int(r["amount"]) for r in rows if r["kind"] == kind)
                 for kind in ("grant", "settle")}  # fmt: skip
        assert total["grant"] == end["granted"] and total["settle"] == end["charged"]


def test_a_canceled_job_gets_its_hold_back(paying: ServerProcess, workspace: str) -> None:
    with (
        client(paying.url, paying.create_key(workspace, admin=True)) as admin,
        client(paying.url, paying.create_key(workspace)) as member,
    ):
        _ok(admin.post("/api/image/credits/grants", json={"amount": 8}), 201)
        before = _ok(member.get("/api/image/credits"))
        job = _ok(_create(member, "a harbour", variations=4, mode="standard", ratio="1:1"), 202)
        canceled = member.post(f"/api/image/jobs/{job['job_id']}/cancel")
        after = wait_until(
            lambda: (b := _ok(member.get("/api/image/credits")))["reserved"] == 0 and b, 30
        )
        if canceled.status_code == 200:
            assert after["charged"] == before["charged"]
            entries = [e for e in _ok(member.get("/api/image/credits/ledger"))["data"]
                       if e["job_id"] == job["job_id"]]  # fmt: skip
            assert [e["kind"] for e in entries] == ["void", "reserve"]
        else:  # it finished first: charged instead
            assert after["charged"] > before["charged"]


def test_a_workspace_without_credits_spends_nothing(paying: ServerProcess) -> None:
    with client(paying.url, paying.create_key("free")) as free:
        job = _ok(_create(free, "a kite", variations=4), 202)
        wait_for_job(free, job["job_id"])
        credits = _ok(free.get("/api/image/credits"))
        assert credits["required"] is False and credits["recent"] == []
