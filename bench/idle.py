"""What an idle server costs, and how fast it answers the first job after idling.

    .venv/bin/python bench/idle.py [--seconds 10] [--env IMAGEGATE_DATABASE_URL=...]

Prints the CPU share of one core that ``imagegate serve`` (API and worker in one
process) used while nothing happened, read from /proc (Linux), then the dispatch
delay (202 -> running, from the server's own timestamps) of a job created after
that idle spell, which must not pay for the idle pacing (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime
from pathlib import Path

import httpx

from _server import running_server_process

BODY = {"prompt": "bench: a lighthouse at dusk", "variations": 1, "mode": "draft"}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def first_dispatch_ms(url: str, key: str) -> float:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        job_id = client.post("/api/image/jobs", json=BODY).json()["job_id"]
        while not (job := client.get(f"/api/image/jobs/{job_id}").json())["started_at"]:
            time.sleep(0.01)
    started = datetime.fromisoformat(job["started_at"])
    return (started - datetime.fromisoformat(job["created_at"])).total_seconds() * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--settle", type=float, default=3, help="idle before measuring")
    parser.add_argument("--env", action="append", default=[], help="server setting K=V")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    with running_server_process(**env) as (url, key, proc):
        time.sleep(args.settle)
        before = cpu_seconds(proc.pid)
        time.sleep(args.seconds)
        used = cpu_seconds(proc.pid) - before
        dispatch = first_dispatch_ms(url, key)
    print(f"idle server ({', '.join(args.env) or 'defaults'}), {args.seconds:.0f} s:")
    print(f"  CPU {100 * used / args.seconds:.1f} % of one core")
    print(f"  first job after idling: dispatch {dispatch:.0f} ms")


if __name__ == "__main__":
    main()
