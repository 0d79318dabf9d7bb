"""Batches over real HTTP (on SQLite and PostgreSQL): JSON and JSONL bodies with bad
items, aggregates that reach done, idempotent replays that create nothing, the
limits, rate-limited items, workspace scoping; and, in process, a retry that resumes
a batch whose first try died half-way."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from imagegate.api import batch_body
from imagegate.api.batch_schemas import BatchCreated
from imagegate.api.schemas import JobPublic
from imagegate.db import jobs_repo
from imagegate.domain.records import JobRecord, Principal
from imagegate.engine import dbos_engine
from imagegate.errors import IdempotencyKeyInUse
from imagegate.runtime import Runtime
from imagegate.services import batches as batches_service
from imagegate.services import idempotency
from imagegate.services import jobs as jobs_service
from imagegate.services.keys import Authenticator, create_key
from tests.support.api import client
from tests.support.runtime import MovableClock, migrated_runtime
from tests.support.server import ServerProcess, wait_until

BATCHES = "/api/image/batches"
GOOD = {"prompt": "a lighthouse at dusk", "variations": 1, "mode": "draft"}
JSONL = {"Content-Type": "application/x-ndjson"}


def _good(n: int, **extra: Any) -> list[dict[str, Any]]:
    return [{**GOOD, "prompt": f"a lighthouse, take {i}", **extra} for i in range(n)]


def _jobs(http: httpx.Client) -> list[dict[str, Any]]:
    page = http.get("/api/image/jobs", params={"limit": 100}).json()
    jobs: list[dict[str, Any]] = page["data"]
    return jobs


def _wait_done(http: httpx.Client, batch_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        batch: dict[str, Any] = http.get(f"{BATCHES}/{batch_id}").json()
        return batch if batch["done"] else None

    found: dict[str, Any] = wait_until(done, 60, 0.05, f"batch {batch_id} to finish")
    return found


def _lines(*items: Any) -> bytes:
    return b"".join(
        (item if isinstance(item, bytes) else json.dumps(item).encode()) + b"\n" for item in items
    )


def test_a_json_batch_runs_the_good_items_and_reports_the_bad(http: httpx.Client) -> None:
    items = [
        {**GOOD, "ratio": "16:9"},
        {"prompt": ""},
        {**GOOD, "ratio": "banana"},
        {**GOOD, "variations": 2, "metadata": {"take": "4"}},
    ]
    response = http.post(BATCHES, json={"items": items, "metadata": {"campaign": "coast"}})
    assert response.status_code == 202, response.text
    created = response.json()
    batch_id = created["batch_id"]
    assert response.headers["location"] == f"{BATCHES}/{batch_id}"
    assert (created["item_count"], created["accepted"], created["rejected"]) == (4, 2, 2)
    assert created["metadata"] == {"campaign": "coast"}
    assert [item["index"] for item in created["items"]] == [0, 1, 2, 3]
    # Each bad item carries the problem its create would have answered.
    blank, banana = created["items"][1]["error"], created["items"][2]["error"]
    assert (blank["status"], blank["code"], blank["field"]) == (422, "validation_error", "prompt")
    assert (banana["code"], banana["field"]) == ("validation_error", "ratio")
    assert "banana" in banana["detail"]
    job_ids = [created["items"][i]["job_id"] for i in (0, 3)]
    assert all(job_id.startswith("job_") for job_id in job_ids)
    assert {job["job_id"] for job in _jobs(http)} == set(job_ids)
    assert http.get(f"/api/image/jobs/{job_ids[1]}").json()["batch_id"] == batch_id

    batch = _wait_done(http, batch_id)
    assert batch["counts"] == {"queued": 0, "running": 0, "completed": 2, "failed": 0,
                               "canceled": 0}  # fmt: skip
    assert (batch["progress"], batch["accepted"], batch["rejected"]) == (100, 2, 2)
    shown = batch["items"]
    assert [(i["index"], i["job_id"], i["status"]) for i in shown] == [
        (0, job_ids[0], "completed"), (1, None, None), (2, None, None),
        (3, job_ids[1], "completed"),
    ]  # fmt: skip
    assert shown[1]["problem"]["field"] == "prompt"
    assert [len(shown[i]["result_urls"]) for i in (0, 3)] == [1, 2]
    first = httpx.get(shown[0]["result_urls"][0], timeout=30)
    with Image.open(io.BytesIO(first.content)) as image:
        image.load()
        assert abs(image.width / image.height - 16 / 9) < 0.01


def test_a_jsonl_batch_reads_each_line_alone(http: httpx.Client) -> None:
    body = _lines(GOOD, b"not json {", b"", b"   ", [1, 2], b'{"prompt": NaN}') + b"\r\n"
    body += json.dumps({**GOOD, "seed": 7}).encode() + b"\r\n"
    response = http.post(BATCHES, content=body, headers=JSONL)
    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert [("job_id" in i and i["job_id"] is not None) for i in items] == [
        True, False, False, False, True,
    ]  # fmt: skip
    assert "line 2 is not valid JSON" in items[1]["error"]["detail"]
    assert "JSON object" in items[2]["error"]["detail"]
    assert "NaN" in items[3]["error"]["detail"]
    batch = _wait_done(http, response.json()["batch_id"])
    assert batch["counts"]["completed"] == 2
    seeded = http.get(f"/api/image/jobs/{items[4]['job_id']}").json()
    assert seeded["params"]["seed"] == 7


@pytest.mark.parametrize("media_type", ["application/jsonl", "application/x-jsonlines"])
def test_the_other_jsonl_media_types(http: httpx.Client, media_type: str) -> None:
    response = http.post(BATCHES, content=_lines(GOOD), headers={"Content-Type": media_type})
    assert response.status_code == 202, response.text


def test_a_jsonl_file_in_a_multipart_form(http: httpx.Client) -> None:
    body = _lines(GOOD, {"prompt": ""})
    response = http.post(BATCHES, files={"file": ("jobs.jsonl", body, "application/x-ndjson")})
    assert response.status_code == 202, response.text
    assert [i.get("job_id") is not None for i in response.json()["items"]] == [True, False]
    wrong = http.post(BATCHES, files={"other": ("jobs.jsonl", body, "application/x-ndjson")})
    assert wrong.status_code == 422
    assert (wrong.json()["code"], wrong.json()["field"]) == ("validation_error", "file")
    assert len(_jobs(http)) == 1


def test_a_batch_with_no_valid_item_creates_nothing(http: httpx.Client) -> None:
    response = http.post(BATCHES, json={"items": [{"prompt": ""}, {"prompt": "x", "nope": 1}, 3]})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["code"] == "batch_invalid"
    assert [item["error"]["code"] for item in problem["items"]] == ["validation_error"] * 3
    assert problem["items"][1]["error"]["field"] == "nope"
    assert _jobs(http) == []
    assert http.get(BATCHES).json()["data"] == []


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ({"items": []}, {}, 422, "batch_empty"),
        ({"items": [GOOD] * 101}, {}, 422, "batch_too_many_items"),
        (b"\n\n", JSONL, 422, "batch_empty"),
        (_lines(*[GOOD] * 101), JSONL, 422, "batch_too_many_items"),
        (_lines(GOOD, {"prompt": "x" * 70_000}), JSONL, 422, "batch_line_too_long"),
        ({"items": [{**GOOD, "prompt": "x" * 4000}] * 90, "pad": "x" * 2_000_000}, {}, 413,
         "payload_too_large"),
        ({"items": [GOOD], "colour": "red"}, {}, 422, "validation_error"),
        ({"items": {"prompt": "x"}}, {}, 422, "validation_error"),
        ({"items": [GOOD], "metadata": {"k": 5}}, {}, 422, "validation_error"),
        ([GOOD], {}, 422, "validation_error"),
        (b"{not json", {"Content-Type": "application/json"}, 422, "validation_error"),
        (b"prompt=x", {"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
    ],
    ids=["empty", "101", "jsonl-empty", "jsonl-101", "long-line", "too-large", "unknown-field",
         "items-not-a-list", "bad-metadata", "not-an-object", "not-json", "text-plain"],
)  # fmt: skip
def test_limits_and_malformed_bodies(
    http: httpx.Client, body: Any, headers: dict[str, str], status: int, code: str
) -> None:
    if isinstance(body, bytes):
        response = http.post(BATCHES, content=body, headers=headers)
    else:
        response = http.post(BATCHES, json=body, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code
    assert _jobs(http) == []


def test_a_replayed_batch_creates_nothing_new(http: httpx.Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"items": [*_good(3), {"prompt": ""}]}
    first = http.post(BATCHES, json=body, headers=key)
    assert first.status_code == 202, first.text
    assert "idempotent-replayed" not in first.headers
    second = http.post(BATCHES, json=body, headers=key)
    assert second.status_code == 202
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["location"] == first.headers["location"]
    assert len(_jobs(http)) == 3
    assert len(http.get(BATCHES).json()["data"]) == 1
    reused = http.post(BATCHES, json={"items": _good(2)}, headers=key)
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"


def test_a_replayed_jsonl_batch_creates_nothing_new(http: httpx.Client) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex, **JSONL}
    body = _lines(*_good(2), b"{oops")
    first = http.post(BATCHES, content=body, headers=key)
    second = http.post(BATCHES, content=body, headers=key)
    assert first.status_code == second.status_code == 202, first.text
    assert second.json() == first.json()
    assert len(_jobs(http)) == 2
    changed = http.post(BATCHES, content=_lines(*_good(2), b"{oops!"), headers=key)
    assert changed.json()["code"] == "idempotency_key_reused"


def test_another_workspace_cannot_see_the_batch(
    http: httpx.Client, server: ServerProcess, workspace_key: str
) -> None:
    batch_id = http.post(BATCHES, json={"items": [GOOD]}).json()["batch_id"]
    with client(server.url, server.create_key(f"ws-{uuid.uuid4().hex[:10]}")) as other:
        missing = other.get(f"{BATCHES}/{batch_id}")
        assert missing.status_code == 404
        assert missing.json()["code"] == "batch_not_found"
        assert other.get(BATCHES).json()["data"] == []
    for odd in ("bat_doesnotexist", "job_01ABC", "bat_%00"):
        assert http.get(f"{BATCHES}/{odd}").json()["code"] == "batch_not_found"


def test_batches_are_listed_newest_first_by_cursor(http: httpx.Client) -> None:
    ids = [http.post(BATCHES, json={"items": _good(n + 1)}).json()["batch_id"] for n in range(3)]
    first = http.get(BATCHES, params={"limit": 2}).json()
    assert [b["batch_id"] for b in first["data"]] == ids[:0:-1]
    assert first["has_more"] and first["next_cursor"]
    assert [b["item_count"] for b in first["data"]] == [3, 2]
    rest = http.get(BATCHES, params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [b["batch_id"] for b in rest["data"]] == ids[:1]
    assert not rest["has_more"] and rest["next_cursor"] is None
    summary = rest["data"][0]
    assert sum(summary["counts"].values()) == 1 and "items" not in summary
    bad = http.get(BATCHES, params={"cursor": "not-a-cursor"})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_cursor")


# The job rate: each item counts as one job, and a refusal is that item's error.


@pytest.fixture(scope="module")
def job_limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server allowing 3 jobs a minute per workspace."""
    proc = ServerProcess(
        tmp_path_factory.mktemp("batch-limited"), IMAGEGATE_RATE_LIMIT_JOBS="3/minute"
    ).start()
    yield proc
    proc.stop()


def test_an_item_over_the_job_rate_is_that_items_error(job_limited: ServerProcess) -> None:
    with client(job_limited.url, job_limited.create_key(f"ws-{uuid.uuid4().hex[:10]}")) as http:
        response = http.post(BATCHES, json={"items": _good(5)})
        assert response.status_code == 202, response.text
        items = response.json()["items"]
        assert [i.get("job_id") is not None for i in items] == [True] * 3 + [False] * 2
        refused = items[3]["error"]
        assert (refused["status"], refused["code"]) == (429, "rate_limited")
        assert refused["retry_after"] >= 1
        assert response.headers["ratelimit-remaining"] == "0"
        # A batch every item of which is over the rate is refused whole, as a 429.
        again = http.post(BATCHES, json={"items": _good(2)})
        assert again.status_code == 429, again.text
        assert again.json()["code"] == "rate_limited"
        assert int(again.headers["retry-after"]) >= 1
        assert len(_jobs(http)) == 3


# A retry resumes a batch whose first try died half-way (in process, on both backends).


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_retry_after_a_crash_creates_only_what_the_first_try_did_not(
    backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = MovableClock()
    async with migrated_runtime(backend, tmp_path, clock) as rt:
        principal = await Authenticator(rt)((await create_key(rt, "w", "k")).secret)
        monkeypatch.setattr(dbos_engine, "enqueue", _not_queued)
        body = json.dumps({"items": [*_good(2), {"prompt": ""}, *_good(2)]}).encode()

        async def post() -> dict[str, Any]:
            parsed = batch_body.parse(body, "application/json")
            created = await batches_service.create(
                rt, principal, parsed.items, parsed.metadata,
                present_job=lambda job: JobPublic.from_record(job, rt.storage).model_dump(
                    mode="json"
                ),
                present_batch=lambda b: BatchCreated.from_record(b).model_dump(mode="json"),
                problem_of=batch_body.problem_of,
                idempotency=batch_body.idempotent_request("the-key", parsed),
            )  # fmt: skip
            return created.answer.body

        # The first try dies (no release, as a killed process leaves its claim) after
        # the job of item 1.
        submit, made = jobs_service.submit, 0

        async def dying_submit(*args: Any, **kwargs: Any) -> jobs_service.Submitted:
            nonlocal made
            if made == 2:
                raise _Crash()
            made += 1
            return await submit(*args, **kwargs)

        monkeypatch.setattr(jobs_service, "submit", dying_submit)
        monkeypatch.setattr(idempotency, "release", _no_release)
        with pytest.raises(_Crash):
            await post()
        first_jobs = await _workspace_jobs(rt, principal)
        assert len(first_jobs) == 2
        monkeypatch.undo()
        monkeypatch.setattr(dbos_engine, "enqueue", _not_queued)

        # Until the claim counts as abandoned, a retry is told the batch is in flight.
        with pytest.raises(IdempotencyKeyInUse):
            await post()
        clock.advance(seconds=2 * idempotency.ABANDONED_CLAIM.total_seconds())
        answer = await post()
        assert answer["accepted"] == 4 and answer["rejected"] == 1
        jobs = await _workspace_jobs(rt, principal)
        assert len(jobs) == 4
        assert {job.id for job in first_jobs} <= {job.id for job in jobs}
        assert {item["job_id"] for item in answer["items"][:2]} == {j.id for j in first_jobs}
        assert {job.batch_id for job in jobs} == {answer["batch_id"]}
        # And once answered, it replays.
        assert await post() == answer
        assert len(await _workspace_jobs(rt, principal)) == 4


class _Crash(BaseException):
    """The process dying mid-request: nothing after it runs."""


async def _not_queued(job_id: str, workspace_id: str, run: int = 1) -> None:
    """Recording is what this test looks at; nothing runs the jobs."""


async def _no_release(rt: Runtime, held: idempotency.Claim) -> None:
    """A killed process releases nothing."""


async def _workspace_jobs(rt: Runtime, principal: Principal) -> list[JobRecord]:
    async with rt.db.connect() as conn:
        return await jobs_repo.list_jobs(conn, principal.workspace_id, limit=100)
