"""Many processes on one PostgreSQL database: `imagegate api` + `imagegate worker`s.

What a team running imagegate on several machines relies on: a worker that dies is
replaced by the survivors, a worker that is told to stop finishes (or hands back) its
jobs, and two processes never work under one worker id."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.support.api import TERMINAL, client
from tests.support.postgres import fresh_database
from tests.support.server import ServerProcess, wait_for_progress, wait_until

DRAFT = {"variations": 1, "mode": "draft"}


@pytest.fixture
def database() -> Iterator[str]:
    with fresh_database() as url:
        yield url


class Cluster:
    """An API process and named workers sharing one data dir and one database."""

    def __init__(self, root: Path, database: str, **env: str) -> None:
        self.root, self.database = root, database
        self.env = {"IMAGEGATE_DATABASE_URL": database, **env}
        self.api = ServerProcess(root, command="api", **self.env)
        self.workers: dict[str, ServerProcess] = {}

    def start(self, *worker_ids: str) -> Cluster:
        self.api.start()
        self.add_workers(*worker_ids)
        return self

    def add_workers(self, *worker_ids: str, **env: str) -> None:
        started = [self.worker(worker_id, **env).spawn() for worker_id in worker_ids]
        for proc in started:
            proc.wait_ready()

    def worker(self, worker_id: str, **env: str) -> ServerProcess:
        proc = ServerProcess(
            self.root, command="worker", **{**self.env, "IMAGEGATE_WORKER_ID": worker_id, **env}
        )
        self.workers[worker_id] = proc
        return proc

    def stop(self) -> None:
        for proc in [*self.workers.values(), self.api]:
            proc.kill()

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database) as conn:
            return conn.execute(sql, params).fetchall()

    def submit(self, count: int, prompt: str = "scale out") -> list[str]:
        async def burst() -> list[str]:
            headers = {"Authorization": f"Bearer {self.api.admin_key}"}
            limit = asyncio.Semaphore(16)
            async with httpx.AsyncClient(base_url=self.api.url, headers=headers) as http:

                async def one(i: int) -> str:
                    async with limit:
                        body = {"prompt": f"{prompt} {i}", **DRAFT}
                        response = await http.post("/api/image/jobs", json=body, timeout=30)
                        assert response.status_code == 202, response.text
                        return str(response.json()["job_id"])

                return list(await asyncio.gather(*(one(i) for i in range(count))))

        return asyncio.run(burst())

    def statuses(self, ids: list[str]) -> dict[str, str]:
        rows = self.query("SELECT id, status FROM jobs WHERE id = ANY(%s)", ids)
        return dict(rows)

    def running_on(self, worker_id: str) -> int:
        rows = self.query(
            "SELECT count(*) FROM jobs WHERE status = 'running' AND worker_id = %s", worker_id
        )
        return int(rows[0][0])

    def attempts_by_worker(self) -> dict[str, list[str]]:
        """Each job's attempts, in order, as the worker that started each."""
        rows = self.query(
            "SELECT job_id, data->>'worker' FROM job_events WHERE type = 'job.running' ORDER BY id"
        )
        attempts: dict[str, list[str]] = defaultdict(list)
        for job_id, worker in rows:
            attempts[job_id].append(worker)
        return attempts

    def worker_row(self, worker_id: str) -> tuple[Any, ...]:
        return self.query("SELECT stopped_at, stop_reason FROM workers WHERE id = %s", worker_id)[0]


@pytest.fixture
def cluster_env() -> dict[str, str]:
    return {
        "IMAGEGATE_WORKER_LEASE_S": "5",
        "IMAGEGATE_WORKER_HEARTBEAT_INTERVAL_S": "0.5",
        "IMAGEGATE_WORKSPACE_CONCURRENCY": "300",
        "IMAGEGATE_BUILTIN_PROCESSES": "1",
        # Five processes at once must fit the test server's 100 connections.
        "IMAGEGATE_DATABASE_POOL_SIZE": "4",
        "IMAGEGATE_ENGINE_POOL_SIZE": "4",
    }


# The suite's size of the chaos run: enough that the killed worker holds a dozen jobs
# and the survivors keep finishing theirs while its lease runs out.
CHAOS_JOBS = int(os.environ.get("IMAGEGATE_CHAOS_JOBS", "60"))


# A guard against a hang only: the run fails first when no job finishes for 45 s.
@pytest.mark.timeout(600)
def test_a_killed_workers_jobs_finish_on_the_survivors(
    tmp_path: Path, database: str, cluster_env: dict[str, str]
) -> None:
    """The chaos run: 3 workers, one-second jobs, one worker SIGKILLed mid-run and never
    restarted. The suite runs CHAOS_JOBS (60) of them; the full-size run of issue 3 is
    ``IMAGEGATE_CHAOS_JOBS=300 pytest tests/e2e/test_scale_out.py -k killed``."""
    jobs = CHAOS_JOBS
    # A 15 s lease, not 5: on a busy machine a survivor's heartbeats (every 0.5 s) can
    # lag by seconds, and a 5 s lease then declares a live worker dead as well.
    env = {**cluster_env, "IMAGEGATE_WORKER_LEASE_S": "15"}
    cluster = Cluster(
        tmp_path / "data", database, IMAGEGATE_BUILTIN_LATENCY_MS="1000",
        IMAGEGATE_WORKER_CONCURRENCY=str(max(15, jobs // 7)), **env,
    )  # fmt: skip
    try:
        cluster.start("w1", "w2", "w3")
        ids = cluster.submit(jobs)
        wait_until(lambda: cluster.running_on("w2") >= 10, timeout=60, what="w2 busy")
        cluster.workers["w2"].kill(signal.SIGKILL)

        # Not a total deadline: how long the jobs take on two workers depends on the
        # machine. Stuck is no job finishing for 45 s, three leases: longer than the wait
        # for the dead worker's lease, while the survivors keep finishing their own.
        def terminal() -> int:
            return sum(s in TERMINAL for s in cluster.statuses(ids).values())

        wait_for_progress(terminal, len(ids), stall_s=45, what="jobs terminal")
        assert set(cluster.statuses(ids).values()) == {"completed"}

        # The killed worker was declared dead, and its jobs did move to the others.
        assert cluster.worker_row("w2")[1] == "lease expired"
        attempts = cluster.attempts_by_worker()
        taken_over = [j for j in ids if len(attempts[j]) > 1]
        assert taken_over, "no job of the killed worker was taken over"
        for job_id in ids:
            # Only the dead worker ever lost a job: no job ran on two live workers.
            *earlier, last = attempts[job_id]
            assert all(w == "w2" for w in earlier), (job_id, attempts[job_id])
            assert last in {"w1", "w3"} or not earlier, (job_id, attempts[job_id])

        # Every job stored its image once: one row each, one file each.
        per_job = dict(cluster.query("SELECT job_id, count(*) FROM images GROUP BY job_id"))
        assert per_job == dict.fromkeys(ids, 1)
        files = [p for p in (tmp_path / "data" / "files").rglob("*") if p.is_file()]
        stored = [p for p in files if not p.name.startswith(".tmp-")]
        assert len(stored) == jobs
        # A write cut short by the kill leaves its temporary file, in a job of w2's.
        partial = {p.parent.name for p in files if p.name.startswith(".tmp-")}
        assert all(attempts[j][0] == "w2" for j in partial), partial
    finally:
        cluster.stop()


def test_sigterm_finishes_the_running_jobs_before_exit(
    tmp_path: Path, database: str, cluster_env: dict[str, str]
) -> None:
    cluster = Cluster(
        tmp_path / "data", database, IMAGEGATE_BUILTIN_LATENCY_MS="2000", **cluster_env
    )
    try:
        cluster.start("w1")
        ids = cluster.submit(4)
        wait_until(lambda: cluster.running_on("w1") == 4, timeout=30, what="4 jobs running")
        worker = cluster.workers["w1"]
        assert worker.proc is not None
        worker.proc.send_signal(signal.SIGTERM)
        assert worker.exit_code(timeout=60) == 0
        # Finished by the worker itself, before it exited.
        assert set(cluster.statuses(ids).values()) == {"completed"}
        assert cluster.worker_row("w1")[1] == "stopped"
    finally:
        cluster.stop()


@pytest.mark.timeout(300)
def test_a_drain_that_times_out_hands_jobs_back_at_once(
    tmp_path: Path, database: str, cluster_env: dict[str, str]
) -> None:
    """Jobs longer than the drain timeout go to another worker without waiting for
    the stopped worker's lease: they finish before that lease would have expired."""
    lease_s = 120
    env = {**cluster_env, "IMAGEGATE_WORKER_LEASE_S": str(lease_s)}
    # Jobs of 8 s against a drain of 1 s: still running when the drain gives up, on a
    # busy machine too.
    cluster = Cluster(
        tmp_path / "data", database, IMAGEGATE_BUILTIN_LATENCY_MS="8000",
        IMAGEGATE_DRAIN_TIMEOUT_S="1", **env,
    )  # fmt: skip
    try:
        cluster.start("w1")
        ids = cluster.submit(3)
        wait_until(lambda: cluster.running_on("w1") == 3, timeout=30, what="3 jobs running")
        worker = cluster.workers["w1"]
        assert worker.proc is not None
        # Stopped before the second worker starts: a start-up slower than the jobs
        # (a busy machine) must not let them finish on w1 before the drain begins.
        worker.proc.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        assert worker.exit_code(timeout=60) == 0
        assert cluster.worker_row("w1")[1] == "stopped, handed back 3 running jobs"
        cluster.add_workers("w2")
        # Jobs left to w1's lease would be free only lease_s after its last heartbeat:
        # finishing sooner is the hand-back (less a heartbeat interval and some slack).
        wait_until(
            lambda: set(cluster.statuses(ids).values()) == {"completed"},
            timeout=lease_s - 5 - (time.monotonic() - stopped_at),
            interval=0.2,
            what="handed-back jobs completed by w2 before w1's lease expired",
        )
        attempts = cluster.attempts_by_worker()
        assert all(attempts[j] == ["w1", "w2"] for j in ids), attempts
    finally:
        cluster.stop()


def test_a_worker_id_in_use_is_refused_and_freed_by_death(
    tmp_path: Path, database: str, cluster_env: dict[str, str]
) -> None:
    cluster = Cluster(
        tmp_path / "data", database, IMAGEGATE_BUILTIN_LATENCY_MS="2000", **cluster_env
    )
    try:
        cluster.start("w1")
        twin = ServerProcess(
            cluster.root, command="worker", **{**cluster.env, "IMAGEGATE_WORKER_ID": "w1"}
        ).spawn()
        assert twin.exit_code(timeout=60) == 1
        assert "worker id 'w1' is held by pid" in twin.log()

        # Killed, then restarted on this host under the same id: it does not wait for
        # the lease (the old pid is gone) and finishes what it had started.
        ids = cluster.submit(2)
        wait_until(lambda: cluster.running_on("w1") == 2, timeout=30, what="2 jobs running")
        cluster.workers["w1"].kill(signal.SIGKILL)
        cluster.add_workers("w1", IMAGEGATE_WORKER_LEASE_S="600")
        with client(cluster.api.url, cluster.api.admin_key) as http:
            wait_until(
                lambda: all(
                    http.get(f"/api/image/jobs/{j}").json()["status"] == "completed" for j in ids
                ),
                timeout=30,
                interval=0.2,
                what="jobs finished by the restarted worker",
            )
    finally:
        cluster.stop()


def test_workers_without_an_id_take_free_slots_on_this_host(
    tmp_path: Path, database: str, cluster_env: dict[str, str]
) -> None:
    cluster = Cluster(tmp_path / "data", database, **cluster_env)
    try:
        cluster.api.start()
        first = ServerProcess(cluster.root, command="worker", **cluster.env).start()
        second = ServerProcess(cluster.root, command="worker", **cluster.env).start()
        cluster.workers.update(a=first, b=second)
        rows = cluster.query("SELECT id FROM workers WHERE stopped_at IS NULL ORDER BY id")
        ids = [r[0] for r in rows]
        assert len(ids) == 2 and ids[0].endswith("-1") and ids[1].endswith("-2"), ids
        [done] = cluster.submit(1)
        wait_until(lambda: cluster.statuses([done])[done] == "completed", timeout=30)
    finally:
        cluster.stop()


def test_api_processes_share_the_rate_limit_through_redis(
    tmp_path: Path, database: str, cluster_env: dict[str, str]
) -> None:
    """Two API processes, one Redis: the workspace's job-creation limit is one count."""
    env = {
        **cluster_env,
        "IMAGEGATE_REDIS_URL": "redis://127.0.0.1:6379/0",
        "IMAGEGATE_RATE_LIMIT_JOBS": "3/minute",
    }
    cluster = Cluster(tmp_path / "data", database, **env)
    second = ServerProcess(cluster.root, command="api", **cluster.env)
    try:
        cluster.api.start()
        second.start()
        key = cluster.api.admin_key
        answers = []
        for i, proc in enumerate([cluster.api, second, cluster.api, second]):
            with client(proc.url, key) as http:
                answers.append(http.post("/api/image/jobs", json={"prompt": f"p{i}", **DRAFT}))
        assert [a.status_code for a in answers] == [202, 202, 202, 429]
        assert answers[3].json()["code"] == "rate_limited"
        assert int(answers[3].headers["Retry-After"]) >= 1
        assert cluster.query("SELECT count(*) FROM jobs")[0][0] == 3
    finally:
        second.kill()
        cluster.stop()


def test_a_worker_whose_id_was_taken_over_stops_at_once(
    tmp_path: Path, database: str, cluster_env: dict[str, str]
) -> None:
    """Fencing: when another claim replaces this worker's (a reaper that declared it
    dead while it was only slow), its next heartbeat is refused and it exits."""
    cluster = Cluster(tmp_path / "data", database, **cluster_env)
    try:
        cluster.start("w1")
        cluster.query(
            "UPDATE workers SET incarnation = 'someone-else' WHERE id = 'w1' RETURNING id"
        )
        assert cluster.workers["w1"].exit_code(timeout=30) == 75
        assert "worker.fenced" in cluster.workers["w1"].log()
    finally:
        cluster.stop()
