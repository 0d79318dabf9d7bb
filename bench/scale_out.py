"""Draft jobs completed per second with 1, 2 and 4 `imagegate worker` processes on
PostgreSQL, the database transactions each job costs, and where the CPU goes.

    .venv/bin/python bench/scale_out.py [--workers 1 2 4] [--jobs 400] [--profile]

Each run gets a fresh database, one `imagegate api` and N workers; jobs are submitted
16 at a time and counted done from the database (so polling does not load the API).
CPU per job is read from /proc for each process (workers include their render
processes; PostgreSQL is every `postgres` process on the machine, so run it idle)."""

from __future__ import annotations

import argparse
import asyncio
import os
import pstats
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psycopg
from psycopg import sql

BIN = Path(sys.executable).parent
TICK = os.sysconf("SC_CLK_TCK")
BODY = {"prompt": "a lighthouse at dusk", "variations": 1, "mode": "draft"}


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    name = f"imagegate_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def processes() -> list[tuple[int, int, str]]:
    """(pid, parent pid, command name) of every process."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                head, tail = (entry / "stat").read_text().rsplit(")", 1)
            except (FileNotFoundError, ProcessLookupError):
                continue
            found.append((int(entry.name), int(tail.split()[1]), head.split("(", 1)[1]))
    return found


def tree_cpu(root: int, table: list[tuple[int, int, str]]) -> float:
    children: dict[int, list[int]] = {}
    for pid, ppid, _ in table:
        children.setdefault(ppid, []).append(pid)
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += cpu_seconds(pid)
        stack.extend(children.get(pid, []))
    return total


def postgres_cpu(table: list[tuple[int, int, str]]) -> float:
    return sum(cpu_seconds(pid) for pid, _, name in table if name.startswith("postgres"))


def transactions(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def completed(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM jobs WHERE status = 'completed'").fetchone()
    assert row is not None
    return int(row[0])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Cluster:
    def __init__(self, database_url: str, data_dir: Path, workers: int, profile: Path | None):
        self.port = free_port()
        self.env = {
            **os.environ,
            "IMAGEGATE_DATABASE_URL": database_url,
            "IMAGEGATE_DATA_DIR": str(data_dir),
            "IMAGEGATE_PORT": str(self.port),
            "IMAGEGATE_LOG_LEVEL": "WARNING",
            "IMAGEGATE_RATE_LIMIT_REQUESTS": "off",
            "IMAGEGATE_RATE_LIMIT_JOBS": "off",
            "IMAGEGATE_WORKSPACE_CONCURRENCY": "64",
        }
        self.data_dir = data_dir
        self.api = self._spawn([str(BIN / "imagegate"), "api"], "api")
        self._wait(lambda: self._http_ready(), "api")
        self.workers = []
        for n in range(workers):
            command = [str(BIN / "imagegate"), "worker"]
            if profile is not None and n == 0:
                command = [sys.executable, "-c", _PROFILED_WORKER.format(out=str(profile))]
            self.workers.append(self._spawn(command, f"worker{n}", IMAGEGATE_WORKER_ID=f"b{n}"))
        for n in range(workers):
            self._wait(lambda n=n: "is taking jobs" in self._log(f"worker{n}"), f"worker{n}")
        self.key = (data_dir / "admin.key").read_text().strip()

    def _spawn(self, command: list[str], name: str, **env: str) -> subprocess.Popen[bytes]:
        log = (self.data_dir / f"{name}.log").open("wb")
        return subprocess.Popen(command, env={**self.env, **env}, stdout=log, stderr=log)

    def _log(self, name: str) -> str:
        return (self.data_dir / f"{name}.log").read_text(errors="replace")

    def _http_ready(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/readyz").status_code == 200
        except httpx.HTTPError:
            return False

    def _wait(self, ready: object, name: str) -> None:
        deadline = time.monotonic() + 60
        while not ready():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not start:\n{self._log(name)}")
            time.sleep(0.1)

    def stop(self) -> None:
        for proc in [*self.workers, self.api]:
            proc.terminate()
        for proc in [*self.workers, self.api]:
            proc.wait(timeout=60)


_PROFILED_WORKER = (
    "import cProfile, sys; from imagegate.cli.main import app; "
    "sys.argv = ['imagegate', 'worker']; cProfile.run('app()', {out!r})"
)


async def submit(url: str, key: str, count: int, body: dict[str, object]) -> float:
    """Submit ``count`` jobs, 16 in flight; returns when the last was accepted."""
    limit = asyncio.Semaphore(16)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:

        async def one() -> None:
            async with limit:
                response = await http.post("/api/image/jobs", json=body)
                response.raise_for_status()

        await asyncio.gather(*(one() for _ in range(count)))
    return time.monotonic()


def run(server_url: str, workers: int, jobs: int, fmt: str, profile: Path | None) -> None:
    with fresh_database(server_url) as database, tempfile.TemporaryDirectory() as tmp:
        cluster = Cluster(database, Path(tmp), workers, profile)
        try:
            table = processes()
            before = {
                "api": tree_cpu(cluster.api.pid, table),
                "workers": sum(tree_cpu(w.pid, table) for w in cluster.workers),
                "postgres": postgres_cpu(table),
                "xacts": transactions(database),
            }
            start = time.monotonic()
            submitted = asyncio.run(
                submit(
                    f"http://127.0.0.1:{cluster.port}",
                    cluster.key,
                    jobs,
                    {**BODY, "output_format": fmt},
                )
            )
            done_at_submit = completed(database)
            while completed(database) < jobs:
                time.sleep(0.05)
            end = time.monotonic()
            table = processes()
            after = {
                "api": tree_cpu(cluster.api.pid, table),
                "workers": sum(tree_cpu(w.pid, table) for w in cluster.workers),
                "postgres": postgres_cpu(table),
                "xacts": transactions(database),
            }
        finally:
            cluster.stop()
    drain_rate = (jobs - done_at_submit) / max(end - submitted, 1e-9)
    per_job = {k: (after[k] - before[k]) / jobs for k in before}
    print(
        f"{workers} worker(s): {jobs / (end - start):6.1f} jobs/s end to end, "
        f"{drain_rate:6.1f}/s after submission | "
        f"{per_job['xacts']:5.1f} transactions/job | CPU ms/job: "
        f"api {per_job['api'] * 1000:5.1f}, workers {per_job['workers'] * 1000:5.1f}, "
        f"postgres {per_job['postgres'] * 1000:5.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--format", default="png", choices=["png", "jpeg", "webp"])
    parser.add_argument(
        "--database-server",
        default=os.environ.get(
            "IMAGEGATE_TEST_POSTGRES_URL", "postgresql://127.0.0.1:5432/postgres"
        ),
    )
    parser.add_argument(
        "--profile", action="store_true", help="profile worker 0 (its event-loop thread)"
    )
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs; {args.jobs} draft jobs ({args.format}) per run")
    for workers in args.workers:
        profile = Path(tempfile.mkdtemp()) / "worker.prof" if args.profile else None
        run(args.database_server, workers, args.jobs, args.format, profile)
        if profile is not None and profile.exists():
            print(f"  worker 0 profile ({profile}), top 15 by own time:")
            stats = pstats.Stats(str(profile))
            stats.sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main()
