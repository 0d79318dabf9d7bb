"""Database transactions and statements per job, per stage, on imagegate's database and
DBOS's system database.

    PYTHONPATH=src .venv/bin/python bench/transactions.py [--jobs 50] [--postgres URL]

Runs ``imagegate serve`` under tests/support/txcount.py (SQLAlchemy event listeners on
every engine of the process, DBOS's included) with the zero-cost placeholder provider,
warms it up with a few jobs, then runs ``--jobs`` one-image draft jobs one at a time
(each waited for) and prints what they cost, divided by the number of jobs. The queue
is polled every ``--poll`` seconds (long by default, so that idle polls, which depend
on time and not on jobs, stay out of the figures; they are shown apart: ``queue
poll``). ``--postgres`` runs on a fresh database of that server.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.postgres import fresh_database  # noqa: E402
from tests.support.server import ServerProcess, wait_until  # noqa: E402

PER_JOB_STAGES = (
    "create", "enqueue", "dispatch", "start", "progress", "events", "complete",
    "status change", "provider telemetry", "routing", "routing slots", "job reads",
    "step record", "workflow end", "workflow reads",
)  # fmt: skip


def counted_server(data: Path, database_url: str | None, poll_s: float) -> ServerProcess:
    env = {
        "IMAGEGATE_BUILTIN_PLACEHOLDER": "true",
        "IMAGEGATE_BUILTIN_PROCESSES": "0",
        "IMAGEGATE_RATE_LIMIT_REQUESTS": "off",
        "IMAGEGATE_RATE_LIMIT_JOBS": "off",
        "IMAGEGATE_LOG_LEVEL": "WARNING",
        "IMAGEGATE_QUEUE_POLL_INTERVAL_S": str(poll_s),
        "IMAGEGATE_TXCOUNT_FILE": str(data / "txcount.json"),
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)]),
    }
    if database_url:
        env["IMAGEGATE_DATABASE_URL"] = database_url
    program = [sys.executable, str(ROOT / "tests" / "support" / "txcount.py")]
    return ServerProcess(data, program=program, **env)


def counts(server: ServerProcess) -> dict[str, Any]:
    """The server's totals so far (tests/support/txcount.py)."""
    path = Path(server.env["IMAGEGATE_TXCOUNT_FILE"])
    path.unlink(missing_ok=True)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGUSR1)
    wait_until(path.exists, 10, what="the transaction counts")
    return dict(json.loads(path.read_text()))


def job_status(server: ServerProcess, job_id: str) -> str:
    """Read from the database by a connection of this process, so that waiting for a
    job costs the server nothing (an HTTP poll would be counted)."""
    url = server.env.get("IMAGEGATE_DATABASE_URL")
    query = "SELECT status FROM jobs WHERE id = %s"
    if url:
        with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
            row = conn.execute(query, (job_id,)).fetchone()
    else:
        with sqlite3.connect(server.data_dir / "imagegate.db") as conn:
            row = conn.execute(query.replace("%s", "?"), (job_id,)).fetchone()
    return str(row[0])


def run_jobs(server: ServerProcess, client: httpx.Client, jobs: int) -> None:
    body = {"prompt": "bench: a red fox in snow", "variations": 1, "mode": "draft"}
    for _ in range(jobs):
        job_id = client.post("/api/image/jobs", json=body).json()["job_id"]

        def done(job_id: str = job_id) -> bool:
            status = job_status(server, job_id)
            assert status not in ("failed", "canceled"), status
            return status == "completed"

        wait_until(done, 30, 0.005, f"job {job_id}")


def per_stage(before: dict[str, Any], after: dict[str, Any]) -> dict[tuple[str, str], list[int]]:
    table: dict[tuple[str, str], list[int]] = {}
    for sign, snap in ((-1, before), (1, after)):
        for row in snap["stages"]:
            cell = table.setdefault((row["database"], row["stage"]), [0, 0])
            cell[0] += sign * row["transactions"]
            cell[1] += sign * row["statements"]
    return {k: v for k, v in table.items() if v != [0, 0]}


def print_table(diff: dict[tuple[str, str], list[int]], jobs: int, seconds: float) -> None:
    print(f"{'database':10} {'stage':22} {'tx/job':>7} {'stmts/job':>9}")
    totals = {"imagegate": [0.0, 0.0], "dbos": [0.0, 0.0]}
    apart = []
    for (db, stage), (tx, st) in sorted(diff.items()):
        if stage in ("queue poll", "background", "event feed", "webhook delivery"):
            apart.append((db, stage, tx, st))
            continue
        print(f"{db:10} {stage:22} {tx / jobs:7.2f} {st / jobs:9.2f}")
        totals[db][0] += tx / jobs
        totals[db][1] += st / jobs
    for db, (tx, st) in totals.items():
        print(f"{db:10} {'TOTAL per job':22} {tx:7.2f} {st:9.2f}")
    print(f"all        {'TOTAL per job':22} {sum(t[0] for t in totals.values()):7.2f}"
          f" {sum(t[1] for t in totals.values()):9.2f}")  # fmt: skip
    print(f"apart (time-driven or per request, over {seconds:.1f} s):")
    for db, stage, tx, st in apart:
        print(f"{db:10} {stage:22} {tx / jobs:7.2f} {st / jobs:9.2f}  ({tx / seconds:.1f} tx/s)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--postgres", help="a PostgreSQL server URL (a fresh database on it)")
    parser.add_argument("--poll", type=float, default=5.0)
    parser.add_argument("--signatures", action="store_true", help="print statement shapes")
    args = parser.parse_args()
    with ExitStack() as stack:
        data = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="imagegate-tx-")))
        url = None
        if args.postgres:
            os.environ["IMAGEGATE_TEST_POSTGRES_URL"] = args.postgres
            url = stack.enter_context(fresh_database())
        server = counted_server(data, url, args.poll).start()
        stack.callback(server.stop)
        key = server.create_key("bench")
        client = stack.enter_context(
            httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"})
        )
        run_jobs(server, client, 3)  # warm-up: first-use reads stay out of the figures
        before = counts(server)
        start = time.monotonic()
        run_jobs(server, client, args.jobs)
        time.sleep(0.5)  # let the last job's engine records land
        seconds = time.monotonic() - start
        after = counts(server)
    print(f"{args.jobs} one-image draft jobs, placeholder provider, "
          f"{'PostgreSQL' if url else 'SQLite'}, queue poll {args.poll:g} s")  # fmt: skip
    print_table(per_stage(before, after), args.jobs, seconds)
    print(f"pool pre-pings (round trips without a transaction): {after['pre_pings']}")
    if args.signatures:
        for row in after["signatures"]:
            print(f"  {row['count']:6} {row['database']:9} {row['shape']}")


if __name__ == "__main__":
    main()
