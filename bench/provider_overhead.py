"""What imagegate adds on top of a provider, and how many provider calls one worker
holds at once.

    .venv/bin/python bench/provider_overhead.py overhead [--provider openai] [--jobs 200]
    .venv/bin/python bench/provider_overhead.py inflight [--provider openai] [--jobs 1000]
    .venv/bin/python bench/provider_overhead.py action [--provider openai] [--jobs 100]

``overhead``: against the provider's emulator with no latency, sequential jobs. It
prints p50/p99 of (a) the adapter alone calling the emulator, (b) the attempt inside
imagegate (started_at → completed_at: routing, the call, storing, completing), and
(c) the whole job as a client sees it (POST → completed, polling every 5 ms). The
difference between (b) and (a) is the router and the runner; (c) minus (b) is queueing
and dispatch.

``inflight``: the emulator answers after 2 s; ``--jobs`` jobs are created at once and
run by one ``imagegate serve``. It prints the time until the last completes against
the ideal (2 s after the last create), and the server's peak RSS.

``action``: what a follow-up action adds over an imagine, against the emulator with no
latency: sequential imagine jobs, then sequential ``variation`` actions on one of their
images (the source read from storage and sent to the provider's edit endpoint), p50/p99
of the attempt and of the whole job as the client sees it, for each."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from imagegate.domain.routing import percentile

BIN = Path(sys.executable).parent
BODY = {"prompt": "a lighthouse at dusk", "variations": 1, "mode": "draft", "seed": 7}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(log.read_text())
        time.sleep(0.1)


class Setup:
    def __init__(self, provider: str, tmp: Path, **server_env: str) -> None:
        self.tmp = tmp
        self.database = server_env.get("IMAGEGATE_DATABASE_URL")
        self.sandbox_port = free_port()
        log = (tmp / "sandbox.log").open("wb")
        self.sandbox = subprocess.Popen(
            [str(BIN / "imagegate"), "sandbox", provider, "--port", str(self.sandbox_port)],
            stdout=log,
            stderr=log,
        )
        self.sandbox_url = f"http://127.0.0.1:{self.sandbox_port}"
        wait_http(self.sandbox_url + "/_sandbox/stats", self.sandbox, tmp / "sandbox.log")
        config = tmp / "imagegate.toml"
        config.write_text(
            f"[providers.builtin]\nenabled = false\n\n[providers.{provider}]\n"
            f'base_url = "{self.base_url(provider)}"\napi_key_env = "BENCH_PROVIDER_KEY"\n'
        )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "IMAGEGATE_DATA_DIR": str(tmp / "data"),
            "IMAGEGATE_PORT": str(self.port),
            "IMAGEGATE_CONFIG": str(config),
            "BENCH_PROVIDER_KEY": "sk-sandbox",
            "IMAGEGATE_LOG_LEVEL": "WARNING",
            "IMAGEGATE_RATE_LIMIT_REQUESTS": "off",
            "IMAGEGATE_RATE_LIMIT_JOBS": "off",
            **server_env,
        }
        log = (tmp / "server.log").open("wb")
        self.server = subprocess.Popen(
            [str(BIN / "imagegate"), "serve"], env=env, stdout=log, stderr=log
        )
        wait_http(self.url + "/readyz", self.server, tmp / "server.log")
        self.key = (tmp / "data" / "admin.key").read_text().strip()

    def base_url(self, provider: str) -> str:
        return self.sandbox_url + ("/v1" if provider in {"openai", "replicate", "bfl"} else "")

    def faults(self, **settings: Any) -> None:
        httpx.post(self.sandbox_url + "/_sandbox/faults", json=settings).raise_for_status()

    def stop(self) -> None:
        for proc in (self.server, self.sandbox):
            proc.terminate()
            proc.wait(timeout=60)


async def adapter_alone(provider: str, base_url: str, runs: int) -> list[float]:
    from imagegate.domain.params import Mode
    from imagegate.providers.base import GenerationRequest, NoCorrelation
    from imagegate.providers.config import ProviderTable
    from imagegate.providers.registry import _build

    table = ProviderTable(base_url=base_url, api_key_env="BENCH_PROVIDER_KEY")
    os.environ["BENCH_PROVIDER_KEY"] = "sk-sandbox"
    adapter = _build(provider, provider, table, os.environ.get)
    model = adapter.capabilities().models[0]
    request = GenerationRequest(
        "a lighthouse at dusk", None, 512, 512, (7,), "none", Mode.DRAFT, model
    )

    async def nothing(_: float) -> None:
        return None

    times = []
    for _ in range(runs):
        start = time.perf_counter()
        await adapter.generate(request, nothing, NoCorrelation())
        times.append((time.perf_counter() - start) * 1000)
    await adapter.aclose()  # type: ignore[attr-defined]
    return times


def overhead(provider: str, jobs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup(provider, Path(tmp))
        try:
            direct = asyncio.run(adapter_alone(provider, setup.base_url(provider), jobs))
            attempt, whole = [], []
            headers = {"Authorization": f"Bearer {setup.key}"}
            with httpx.Client(base_url=setup.url, headers=headers, timeout=60) as http:
                for _ in range(jobs):
                    start = time.perf_counter()
                    job_id = http.post("/api/image/jobs", json=BODY).json()["job_id"]
                    while (job := http.get(f"/api/image/jobs/{job_id}").json())["status"] not in {
                        "completed",
                        "failed",
                    }:
                        time.sleep(0.005)
                    whole.append((time.perf_counter() - start) * 1000)
                    assert job["status"] == "completed", job
                    attempt.append(_ms(job["started_at"], job["completed_at"]))
        finally:
            setup.stop()
    for name, values in [("adapter alone", direct), ("attempt in imagegate", attempt),
                         ("job, client's view", whole)]:  # fmt: skip
        p50, p99 = percentile(values, 50), percentile(values, 99)
        print(f"{name:22s} p50 {p50:7.1f} ms   p99 {p99:7.1f} ms")
    print(
        f"router + runner add p50 {percentile(attempt, 50) - percentile(direct, 50):+.1f} ms, "
        f"p99 {percentile(attempt, 99) - percentile(direct, 99):+.1f} ms per job"
    )


def action(provider: str, jobs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup(provider, Path(tmp))
        figures: dict[str, tuple[list[float], list[float]]] = {}
        try:
            headers = {"Authorization": f"Bearer {setup.key}"}
            with httpx.Client(base_url=setup.url, headers=headers, timeout=60) as http:
                parent = _timed(http, "/api/image/jobs", BODY)[2]
                variation = {"action": "variation", "index": 1, "variations": 1}
                for name, path, body in [
                    ("imagine", "/api/image/jobs", BODY),
                    ("variation", f"/api/image/jobs/{parent}/actions", variation),
                ]:
                    runs = [_timed(http, path, body) for _ in range(jobs)]
                    figures[name] = ([r[0] for r in runs], [r[1] for r in runs])
        finally:
            setup.stop()
    for name, (attempt, whole) in figures.items():
        print(
            f"{name:10s} attempt p50 {percentile(attempt, 50):6.1f} ms p99 "
            f"{percentile(attempt, 99):6.1f} ms   job p50 {percentile(whole, 50):6.1f} ms p99 "
            f"{percentile(whole, 99):6.1f} ms"
        )
    (a_imagine, w_imagine), (a_action, w_action) = figures["imagine"], figures["variation"]
    print(
        f"an action adds p50 {percentile(a_action, 50) - percentile(a_imagine, 50):+.1f} ms to "
        f"the attempt, {percentile(w_action, 50) - percentile(w_imagine, 50):+.1f} ms to the job"
    )


def _timed(http: httpx.Client, path: str, body: dict[str, Any]) -> tuple[float, float, str]:
    """(attempt ms, whole job ms, job id) of one job, polled every 5 ms."""
    start = time.perf_counter()
    response = http.post(path, json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    while (job := http.get(f"/api/image/jobs/{job_id}").json())["status"] not in {
        "completed",
        "failed",
    }:
        time.sleep(0.005)
    assert job["status"] == "completed", job
    whole = (time.perf_counter() - start) * 1000
    return _ms(job["started_at"], job["completed_at"]), whole, str(job_id)


def _ms(start: str, end: str) -> float:
    from datetime import datetime

    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds() * 1000


def inflight(provider: str, jobs: int, database: str | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {"IMAGEGATE_DATABASE_URL": database} if database else {}
        setup = Setup(
            provider, Path(tmp),
            IMAGEGATE_WORKSPACE_CONCURRENCY=str(jobs), IMAGEGATE_DATABASE_POOL_SIZE="20", **env,
        )  # fmt: skip
        try:
            setup.faults(latency_ms=2000)
            try:
                created, done = asyncio.run(_flood(setup, jobs))
            except Exception:
                print((setup.tmp / "server.log").read_text()[-3000:])
                raise
            rss = _peak_rss_mib(setup.server.pid)
        finally:
            setup.stop()
    print(
        f"{jobs} jobs in flight at 2 s each: last created after {created:.2f} s, all done "
        f"after {done:.2f} s (ideal {created + 2:.2f} s; {done - created - 2:+.2f} s over); "
        f"server peak RSS {rss:.0f} MiB"
    )


async def _flood(setup: Setup, jobs: int) -> tuple[float, float]:
    headers = {"Authorization": f"Bearer {setup.key}"}
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(
        base_url=setup.url, headers=headers, timeout=120, limits=limits
    ) as http:
        start = time.perf_counter()
        responses = await asyncio.gather(
            *(http.post("/api/image/jobs", json=BODY) for _ in range(jobs))
        )
        created = time.perf_counter() - start
        assert all(r.status_code == 202 for r in responses), responses[0].text
        while await _finished(setup) < jobs:
            await asyncio.sleep(0.05)
        return created, time.perf_counter() - start


async def _finished(setup: Setup) -> int:
    # Counted in the database, so that polling does not load the server measured.
    if setup.database:
        async with await psycopg.AsyncConnection.connect(setup.database) as conn:
            cursor = await conn.execute(
                "SELECT count(*) FROM jobs WHERE status IN ('completed', 'failed')"
            )
            row = await cursor.fetchone()
    else:
        with sqlite3.connect(f"file:{setup.tmp / 'data' / 'imagegate.db'}?mode=ro", uri=True) as c:
            row = c.execute(
                "SELECT count(*) FROM jobs WHERE status IN ('completed', 'failed')"
            ).fetchone()
    assert row is not None
    return int(row[0])


def _peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", choices=["overhead", "inflight", "action"])
    parser.add_argument("--provider", default="openai")
    parser.add_argument("--jobs", type=int)
    parser.add_argument(
        "--postgres", metavar="URL", help="run the server on this (empty) PostgreSQL database"
    )
    args = parser.parse_args()
    if args.what == "overhead":
        overhead(args.provider, args.jobs or 200)
    elif args.what == "action":
        action(args.provider, args.jobs or 100)
    else:
        inflight(args.provider, args.jobs or 1000, args.postgres)


if __name__ == "__main__":
    main()
