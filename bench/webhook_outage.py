"""The full-size webhook outage of tests/integration/webhooks/test_outage.py: a receiver
down while 200 jobs complete, the server stopped mid-outage and restarted, then the
receiver back; it asserts that every event arrives once and prints each phase's time.

    .venv/bin/python bench/webhook_outage.py                      # SQLite, SIGKILL
    .venv/bin/python bench/webhook_outage.py --postgres --sigterm --jobs 200
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

# The scenario lives with the tests (tests/support/outage.py), so both run one copy.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.outage import run_outage
from tests.support.postgres import fresh_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--postgres", action="store_true", help="a fresh PostgreSQL database")
    parser.add_argument("--sigterm", action="store_true", help="stop with SIGTERM, not SIGKILL")
    args = parser.parse_args()
    stop = signal.SIGTERM if args.sigterm else signal.SIGKILL
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="imagegate-outage-")))
        database = stack.enter_context(fresh_database()) if args.postgres else None
        run = run_outage(tmp / "data", args.jobs, stop, database)
    backend = "postgresql" if args.postgres else "sqlite"
    print(f"{run.jobs} jobs, {backend}, {stop.name}: every event delivered once")
    print(f"  jobs completed (receiver down)  {run.jobs_done_s:6.1f} s")
    print(f"  refused delivery attempts       {run.refused_attempts:6d}")
    print(f"  stop + start of the server      {run.restart_s:6.1f} s")
    print(f"  receiver up -> all delivered    {run.delivered_s:6.1f} s")


if __name__ == "__main__":
    main()
