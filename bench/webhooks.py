"""Webhook delivery: deliveries per second to a fast loopback receiver, and the latency
from a job's completion (its ``completed_at``) to the receipt of ``job.completed``.

Two phases, each on a fresh server (embedded default: SQLite, one process):

* steady — jobs submitted at ``--rate`` per second; every event of the endpoint's types
  is delivered as the jobs run. Latency is measured here.
* burst — the same jobs, but the server holds its deliveries back (its dispatcher waits
  ``--hold`` seconds before it first looks), then releases them all at once: how fast
  the engine drains a backlog, with no jobs competing for the cores.

    .venv/bin/python bench/webhooks.py --jobs 300 --rate 20
    .venv/bin/python bench/webhooks.py --jobs 300 --rate 20 --postgres postgresql://127.0.0.1:5432/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from _server import percentile, running_server
from scale_out import fresh_database

TYPES = ["job.queued", "job.running", "job.completed"]


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server (keep-alive, 204 to everything) that notes arrivals."""

    arrivals: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    duplicates: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = dict(
                    line.split(": ", 1) for line in head.decode().split("\r\n")[1:] if ": " in line
                )
                lower = {k.lower(): v for k, v in headers.items()}
                body = await reader.readexactly(int(lower.get("content-length", 0)))
                now = time.time()
                if lower["webhook-id"] in self.ids:
                    self.duplicates += 1
                else:
                    self.ids.add(lower["webhook-id"])
                    self.arrivals.append((now, json.loads(body)))
                writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()  # the client hung up, or the benchmark is over


async def submit(http: httpx.AsyncClient, jobs: int, rate: float) -> None:
    """``jobs`` draft jobs at ``rate`` per second (0: as fast as 16 connections go)."""
    body = {"prompt": "a lighthouse at dusk --draft", "variations": 1}

    async def one(i: int) -> None:
        response = await http.post("/api/image/jobs", json={**body, "seed": i})
        assert response.status_code == 202, response.text

    if rate <= 0:
        slots = asyncio.Semaphore(16)

        async def limited(i: int) -> None:
            async with slots:
                await one(i)

        await asyncio.gather(*(limited(i) for i in range(jobs)))
        return
    started, tasks = time.monotonic(), []
    for i in range(jobs):
        await asyncio.sleep(max(0.0, started + i / rate - time.monotonic()))
        tasks.append(asyncio.create_task(one(i)))
    await asyncio.gather(*tasks)


async def run(
    jobs: int, rate: float, env: dict[str, str], deadline_s: float, postgres: str | None
) -> Receiver:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with ExitStack() as stack:
        if postgres:
            env = {**env, "IMAGEGATE_DATABASE_URL": stack.enter_context(fresh_database(postgres))}
        url, key = stack.enter_context(
            running_server(IMAGEGATE_SSRF_ALLOWLIST="127.0.0.0/8", **env)
        )
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            endpoint = {"url": f"http://127.0.0.1:{port}/hooks", "event_types": TYPES}
            assert (await http.post("/api/image/webhooks", json=endpoint)).status_code == 201
            await submit(http, jobs, rate)
            expected, give_up = jobs * len(TYPES), time.monotonic() + deadline_s
            while len(receiver.ids) < expected and time.monotonic() < give_up:
                await asyncio.sleep(0.2)
    server.close()
    return receiver


def report(title: str, receiver: Receiver, jobs: int) -> None:
    times = sorted(at for at, _ in receiver.arrivals)
    expected = jobs * len(TYPES)
    print(f"\n{title}: {len(receiver.ids)}/{expected} deliveries, {receiver.duplicates} duplicates")
    if len(times) > 1:
        span = times[-1] - times[0]
        print(f"  deliveries/s, first to last receipt: {len(times) / span:.1f} ({span:.2f} s)")
    waits = [
        (at - datetime.fromisoformat(event["data"]["completed_at"]).timestamp()) * 1000
        for at, event in receiver.arrivals
        if event["type"] == "job.completed"
    ]
    if waits:
        print(
            f"  completed_at → receipt of job.completed: p50 {percentile(waits, 50):.0f} ms, "
            f"p99 {percentile(waits, 99):.0f} ms, max {max(waits):.0f} ms (n={len(waits)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20, help="jobs/s in the steady phase")
    parser.add_argument("--hold", type=float, default=30, help="burst: seconds held back")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument("--skip-burst", action="store_true")
    parser.add_argument("--postgres", metavar="URL", help="a PostgreSQL server to run on")
    args = parser.parse_args()
    env = dict(item.split("=", 1) for item in args.env)

    steady = asyncio.run(run(args.jobs, args.rate, env, 120, args.postgres))
    report(f"steady, {args.jobs} jobs at {args.rate:g}/s", steady, args.jobs)
    if args.skip_burst:
        return
    held = {**env, "IMAGEGATE_WEBHOOK_DISPATCH_INTERVAL_S": str(args.hold)}
    burst = asyncio.run(run(args.jobs, 0, held, args.hold + 120, args.postgres))
    report(f"burst, {args.jobs * len(TYPES)} deliveries released at once", burst, args.jobs)


if __name__ == "__main__":
    main()
