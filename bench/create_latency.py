"""Create latency at a steady request rate, and dispatch latency on an idle server.

    .venv/bin/python bench/create_latency.py [--rate 100] [--seconds 20]

Prints p50/p99 of POST /api/image/jobs (draft, one image each, so the worker runs
alongside) and the p50 of 202 → running, measured from the server's own timestamps.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import datetime

import httpx

from _server import percentile, running_server

BODY = {"prompt": "bench: a lighthouse at dusk", "variations": 1, "mode": "draft"}


async def steady_load(url: str, key: str, rate: float, seconds: float) -> list[float]:
    latencies: list[float] = []
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, headers=headers, limits=limits) as client:

        async def one() -> None:
            start = time.perf_counter()
            response = await client.post("/api/image/jobs", json=BODY)
            latencies.append((time.perf_counter() - start) * 1000)
            response.raise_for_status()

        tasks = []
        begin = time.perf_counter()
        for i in range(int(rate * seconds)):
            # Open loop: requests leave on schedule whatever the server does.
            await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies


def dispatch_latency(url: str, key: str, samples: int) -> list[float]:
    headers = {"Authorization": f"Bearer {key}"}
    delays = []
    with httpx.Client(base_url=url, headers=headers) as client:
        for _ in range(samples):
            job_id = client.post("/api/image/jobs", json=BODY).json()["job_id"]
            while not (job := client.get(f"/api/image/jobs/{job_id}").json())["started_at"]:
                time.sleep(0.05)
            created = datetime.fromisoformat(job["created_at"])
            started = datetime.fromisoformat(job["started_at"])
            delays.append((started - created).total_seconds() * 1000)
            client.post(f"/api/image/jobs/{job_id}/cancel")  # frees the slot for the next
            time.sleep(0.2)  # idle between samples
    return delays


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--env", action="append", default=[], help="server setting K=V")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    with running_server(**env) as (url, key):
        dispatch = dispatch_latency(url, key, args.samples)
        latencies = asyncio.run(steady_load(url, key, args.rate, args.seconds))
    print(f"create  at {args.rate:.0f} req/s for {args.seconds:.0f} s: n={len(latencies)}")
    print(
        f"  p50 {percentile(latencies, 50):.1f} ms   p99 {percentile(latencies, 99):.1f} ms"
        f"   max {max(latencies):.1f} ms   (target p50 <= 15 ms)"
    )
    print(f"dispatch (202 -> running) on an idle server: n={len(dispatch)}")
    print("  samples (ms):", " ".join(f"{d:.0f}" for d in dispatch))
    print(
        f"  p50 {percentile(dispatch, 50):.1f} ms   p99 {percentile(dispatch, 99):.1f} ms"
        "   (target p50 <= 150 ms)"
    )


if __name__ == "__main__":
    main()
