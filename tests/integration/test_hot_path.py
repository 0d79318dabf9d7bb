"""The hot path of one job: what it costs the databases, and how soon it starts.

- the placeholder provider (IMAGEGATE_BUILTIN_PLACEHOLDER) makes real, tiny images
  without rendering, so that a job's cost is imagegate's own;
- the transactions one job costs, counted on imagegate's database and on DBOS's
  system database (tests/support/txcount.py), stay at or below today's figure: a count,
  not a timing;
- an enqueue wakes the queue's dispatcher: with the queue polled only every 30 s, jobs
  start within a few seconds of their creation, the first one after start-up included.
  This checks that the wake happens at all (without it a job waits for the next poll,
  up to 30 s); it is no measure of how fast (bench/create_latency.py is).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import txcount
from tests.support.api import client, fetch_image, wait_for_job
from tests.support.postgres import fresh_database
from tests.support.server import ServerProcess, wait_until

# Transactions one job costs (imagegate's database; DBOS's system database), measured
# when the figures were last lowered (docs/benchmarks.md): raise them only knowingly.
APP_TRANSACTIONS_PER_JOB = 4
ENGINE_TRANSACTIONS_PER_JOB = 6
# Long enough that a job dispatched by the poll, not by the wake, could not pass.
SLOW_POLL_S = 30
WOKEN_WITHIN_S = 5.0
DRAFT = {"prompt": "a lighthouse at dusk", "variations": 1, "mode": "draft"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def counted(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A placeholder-provider server that counts its transactions, polling its queue
    every SLOW_POLL_S (time-driven polls stay out of the way; the wake dispatches)."""
    with ExitStack() as stack:
        data = tmp_path_factory.mktemp(f"counted-{request.param}")
        database = {}
        if request.param == "postgresql":
            database["IMAGEGATE_DATABASE_URL"] = stack.enter_context(fresh_database())
        env = txcount.counted_env(
            data,
            IMAGEGATE_BUILTIN_PLACEHOLDER="true",
            IMAGEGATE_BUILTIN_PROCESSES="0",
            IMAGEGATE_QUEUE_POLL_INTERVAL_S=str(SLOW_POLL_S),
            **database,
        )
        server = ServerProcess(data, program=txcount.PROGRAM, **env).start()
        stack.callback(server.stop)
        yield server


def _dispatch_s(job: dict[str, object]) -> float:
    created = datetime.fromisoformat(str(job["created_at"]))
    started = datetime.fromisoformat(str(job["started_at"]))
    return (started - created).total_seconds()


def test_jobs_start_without_waiting_for_the_queue_poll(counted: ServerProcess) -> None:
    # Module-scoped server, and this test runs first in it: the first job after start-up.
    with client(counted.url, counted.admin_key) as http:
        for _ in range(3):
            job_id = http.post("/api/image/jobs", json=DRAFT).json()["job_id"]
            job = wait_for_job(http, job_id, timeout=SLOW_POLL_S * 3)
            assert job["status"] == "completed", job
            assert _dispatch_s(job) < WOKEN_WITHIN_S, (job, "dispatched by a poll, not woken")


def test_the_placeholder_provider_makes_tiny_real_images(counted: ServerProcess) -> None:
    with client(counted.url, counted.admin_key) as http:
        body = {**DRAFT, "variations": 4, "output_format": "jpeg"}
        job = wait_for_job(http, http.post("/api/image/jobs", json=body).json()["job_id"])
        assert job["status"] == "completed", job
        assert len(job["result_urls"]) == 4
        for url in job["result_urls"]:
            image = fetch_image(url)
            assert (image.format, image.size) == ("JPEG", (8, 8))
        grid = fetch_image(job["grid_url"])
        assert grid.format == "JPEG" and grid.size == (8, 8)  # the size of one image


def _run_one(server: ServerProcess, http: httpx.Client) -> None:
    job_id = http.post("/api/image/jobs", json=DRAFT).json()["job_id"]
    wait_until(lambda: txcount.job_status(server, job_id) == "completed", 60, 0.01, f"job {job_id}")


def test_one_job_costs_no_more_transactions_than_it_did(counted: ServerProcess) -> None:
    jobs, rounds = 3, 3
    with client(counted.url, counted.admin_key) as http:
        start = txcount.counts(counted)
        _run_one(counted, http)  # first uses (caches, lazy reads) stay out of the count
        before = _settled(counted, start, 1)
        measured = []
        for _ in range(rounds):
            for _ in range(jobs):
                _run_one(counted, http)
            after = _settled(counted, before, jobs)
            measured.append(txcount.per_stage(before, after))
            before = after
    # Background work (a poll that lands mid-job, a lazy read) only ever adds to a
    # round; what the jobs themselves cost is the cheapest round. A transaction added
    # to every job shows in every round.
    app_rounds, engine_rounds = [], []
    for diff in measured:
        per_job = sorted((k, v) for k, v in diff.items() if k[1] not in txcount.TIME_DRIVEN)
        app_rounds.append((sum(tx for (db, _), (tx, _) in per_job if db == "imagegate"), per_job))
        engine_rounds.append((_engine(diff), per_job))
    app, per_job = min(app_rounds, key=lambda r: r[0])
    assert app <= APP_TRANSACTIONS_PER_JOB * jobs, per_job
    engine, per_job = min(engine_rounds, key=lambda r: r[0])
    assert engine <= ENGINE_TRANSACTIONS_PER_JOB * jobs, per_job


def _settled(server: ServerProcess, since: dict[str, Any], jobs: int) -> dict[str, Any]:
    """The counts once the engine has recorded the end of ``jobs`` workflows since
    ``since`` (it does so just after each job's completion commits)."""

    def ended() -> dict[str, Any] | None:
        now = txcount.counts(server)
        return now if _engine(txcount.per_stage(since, now), "workflow end") >= jobs else None

    return dict(wait_until(ended, 10, what="the engine's records of the last job"))


ENGINE_JOB_STAGES = ("enqueue", "dispatch", "step check", "step record", "workflow end")


def _engine(diff: dict[tuple[str, str], list[int]], *stages: str) -> int:
    """Transactions of the engine's system database in ``stages`` (default: all of a
    job's)."""
    return sum(diff.get(("dbos", stage), [0, 0])[0] for stage in stages or ENGINE_JOB_STAGES)


@pytest.fixture
def api_and_worker(tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """``imagegate api`` and one ``imagegate worker`` on PostgreSQL, the queue polled
    every SLOW_POLL_S: only the API's NOTIFY can wake the worker sooner."""
    with ExitStack() as stack:
        env = {
            "IMAGEGATE_DATABASE_URL": stack.enter_context(fresh_database()),
            "IMAGEGATE_QUEUE_POLL_INTERVAL_S": str(SLOW_POLL_S),
            "IMAGEGATE_BUILTIN_PLACEHOLDER": "true",
            "IMAGEGATE_BUILTIN_PROCESSES": "0",
        }
        api = ServerProcess(tmp_path, command="api", **env).start()
        stack.callback(api.kill)
        worker = ServerProcess(tmp_path, command="worker", IMAGEGATE_WORKER_ID="w1", **env)
        worker.start()
        stack.callback(worker.kill)
        yield api, worker


def test_an_enqueue_by_the_api_wakes_a_worker_process(
    api_and_worker: tuple[ServerProcess, ServerProcess],
) -> None:
    api, _ = api_and_worker
    with client(api.url, api.admin_key) as http:
        for _ in range(2):
            job_id = http.post("/api/image/jobs", json=DRAFT).json()["job_id"]
            job = wait_for_job(http, job_id, timeout=SLOW_POLL_S * 3)
            assert job["status"] == "completed", job
            assert _dispatch_s(job) < WOKEN_WITHIN_S, (job, "dispatched by a poll, not woken")
