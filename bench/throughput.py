"""Draft jobs completed per second by one `imagegate serve` process.

    .venv/bin/python bench/throughput.py [--jobs 500] [--variations 1]
    .venv/bin/python bench/throughput.py --jobs 400 --format jpeg --baseline
    .venv/bin/python bench/throughput.py --jobs 400 --format jpeg --write-baseline

Submits the jobs as fast as 16 connections allow, waits until all are finished, and
reports completions per second from the server's own timestamps (first created_at to
last completed_at).

``--baseline`` compares the end-to-end figure with the one committed in
bench/baselines/throughput.json for the same jobs, format and images, and exits with
status 1 if it is more than ``--slide`` (10 %) below: a slide shows the day it lands.
``--write-baseline`` records this run's figure there instead (on a quiet machine).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

from _server import running_server

BASELINES = Path(__file__).resolve().parent / "baselines" / "throughput.json"


async def all_jobs(client: httpx.AsyncClient) -> list[dict[str, object]]:
    jobs: list[dict[str, object]] = []
    cursor = None
    while True:
        params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/api/image/jobs", params=params)).json()
        jobs += page["data"]
        if not (cursor := page["next_cursor"]):
            return jobs


async def run(
    url: str, key: str, jobs: int, variations: int, concurrency: int, output_format: str
) -> float:
    """Run the jobs; completions per second, end to end."""
    body = {
        "prompt": "bench: a red fox in snow",
        "variations": variations,
        "mode": "draft",
        "output_format": output_format,
    }
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as client:
        gate = asyncio.Semaphore(concurrency)

        async def create() -> str:
            async with gate:
                response = await client.post("/api/image/jobs", json=body)
                response.raise_for_status()
                return str(response.json()["job_id"])

        wall = time.perf_counter()
        await asyncio.gather(*(create() for _ in range(jobs)))
        submitted = time.perf_counter() - wall
        submitted_at = datetime.now(UTC)
        # One cheap request every 200 ms, so polling does not weigh on the server.
        while (
            await client.get("/api/image/jobs", params={"status": "queued,running", "limit": 1})
        ).json()["data"]:
            await asyncio.sleep(0.2)
        wall = time.perf_counter() - wall
        finished = await all_jobs(client)
    return report(finished, jobs, variations, submitted, submitted_at, wall)


def report(
    finished: list[dict[str, object]],
    jobs: int,
    variations: int,
    submitted: float,
    submitted_at: datetime,
    wall: float,
) -> float:
    first = min(datetime.fromisoformat(str(j["created_at"])) for j in finished)
    last = max(datetime.fromisoformat(str(j["completed_at"])) for j in finished)
    span = (last - first).total_seconds()
    ok = sum(j["status"] == "completed" for j in finished)
    print(
        f"{jobs} draft jobs x {variations} image(s), {finished[0]['params']['output_format']}:"
        f" {ok} completed"
    )
    print(f"  submitted in {submitted:.1f} s ({jobs / submitted:.0f} creates/s)")
    print(f"  completed in {span:.1f} s -> {ok / span:.1f} jobs/s  (target >= 50 jobs/s)")
    # After the last create the client is quiet: what the worker alone sustains.
    after = sorted(
        datetime.fromisoformat(str(j["completed_at"]))
        for j in finished
        if j["completed_at"] and datetime.fromisoformat(str(j["completed_at"])) > submitted_at
    )
    if len(after) > 10:
        drain = (after[-1] - submitted_at).total_seconds()
        print(
            f"  after the last create: {len(after)} completed in {drain:.1f} s"
            f" -> {len(after) / drain:.1f} jobs/s"
        )
    print(f"  client wall time {wall:.1f} s")
    return ok / span


def compare(name: str, rate: float, slide: float, write: bool) -> int:
    """Check ``rate`` against the committed baseline ``name`` (or record it)."""
    baselines = json.loads(BASELINES.read_text()) if BASELINES.exists() else {}
    if write:
        baselines[name] = {
            "jobs_per_s": round(rate, 1),
            "measured": datetime.now(UTC).date().isoformat(),
        }
        BASELINES.parent.mkdir(exist_ok=True)
        BASELINES.write_text(json.dumps(baselines, indent=2, sort_keys=True) + "\n")
        print(f"  baseline {name} recorded: {rate:.1f} jobs/s")
        return 0
    if name not in baselines:
        print(f"  no baseline for {name} in {BASELINES}")
        return 0
    base = float(baselines[name]["jobs_per_s"])
    change = (rate - base) / base
    print(
        f"  baseline {name}: {base:.1f} jobs/s ({baselines[name]['measured']});"
        f" this run {change:+.0%}"
    )
    if change < -slide:
        print(f"  SLIDE: more than {slide:.0%} below the baseline")
        return 1
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--variations", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workspace-concurrency", type=int, default=32)
    parser.add_argument("--format", default="png", choices=["png", "jpeg", "webp"])
    parser.add_argument("--env", action="append", default=[], help="server setting K=V")
    parser.add_argument("--baseline", action="store_true", help="compare with the baseline")
    parser.add_argument("--write-baseline", action="store_true", help="record the baseline")
    parser.add_argument("--slide", type=float, default=0.10, help="tolerated drop (0.10)")
    args = parser.parse_args()
    env = {
        "IMAGEGATE_WORKSPACE_CONCURRENCY": str(args.workspace_concurrency),
        **dict(item.split("=", 1) for item in args.env),
    }
    with running_server(**env) as (url, key):
        rate = asyncio.run(run(url, key, args.jobs, args.variations, args.concurrency, args.format))
    if args.baseline or args.write_baseline:
        name = f"{args.jobs}x{args.variations}-{args.format}"
        sys.exit(compare(name, rate, args.slide, args.write_baseline))


if __name__ == "__main__":
    main()
