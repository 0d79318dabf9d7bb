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
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import txcount  # noqa: E402
from tests.support.postgres import fresh_database  # noqa: E402
from tests.support.server import ServerProcess, wait_until  # noqa: E402


def counted_server(data: Path, database_url: str | None, poll_s: float) -> ServerProcess:
    env = txcount.counted_env(
        data,
        IMAGEGATE_BUILTIN_PLACEHOLDER="true",
        IMAGEGATE_BUILTIN_PROCESSES="0",
        IMAGEGATE_RATE_LIMIT_REQUESTS="off",
        IMAGEGATE_RATE_LIMIT_JOBS="off",
        IMAGEGATE_LOG_LEVEL="WARNING",
        IMAGEGATE_QUEUE_POLL_INTERVAL_S=str(poll_s),
    )
    if database_url:
        env["IMAGEGATE_DATABASE_URL"] = database_url
    return ServerProcess(data, program=txcount.PROGRAM, **env)


def run_jobs(server: ServerProcess, client: httpx.Client, jobs: int) -> None:
    body = {"prompt": "bench: a red fox in snow", "variations": 1, "mode": "draft"}
    for _ in range(jobs):
        job_id = client.post("/api/image/jobs", json=body).json()["job_id"]

        def done(job_id: str = job_id) -> bool:
            status = txcount.job_status(server, job_id)
            assert status not in ("failed", "canceled"), status
            return status == "completed"

        wait_until(done, 30, 0.005, f"job {job_id}")


def print_table(diff: dict[tuple[str, str], list[int]], jobs: int, seconds: float) -> None:
    print(f"{'database':10} {'stage':22} {'tx/job':>7} {'stmts/job':>9}")
    totals = {"imagegate": [0.0, 0.0], "dbos": [0.0, 0.0]}
    apart = []
    for (db, stage), (tx, st) in sorted(diff.items()):
        if stage in txcount.TIME_DRIVEN:
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
        before = txcount.counts(server)
        start = time.monotonic()
        run_jobs(server, client, args.jobs)
        time.sleep(0.5)  # let the last job's engine records land
        seconds = time.monotonic() - start
        after = txcount.counts(server)
    print(f"{args.jobs} one-image draft jobs, placeholder provider, "
          f"{'PostgreSQL' if url else 'SQLite'}, queue poll {args.poll:g} s")  # fmt: skip
    print_table(txcount.per_stage(before, after), args.jobs, seconds)
    print(f"pool pre-pings (round trips without a transaction): {after['pre_pings']}")
    if args.signatures:
        for row in after["signatures"]:
            print(f"  {row['count']:6} {row['database']:9} {row['shape']}")


if __name__ == "__main__":
    main()
