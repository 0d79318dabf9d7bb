"""``POST /v1/images/generations`` through imagegate, against the same load sent
straight to the OpenAI emulator imagegate calls (no latency injected).

    .venv/bin/python bench/openai_facade.py [--requests 200] [--concurrency 1 32]

One ``imagegate serve`` on SQLite in front of ``imagegate sandbox openai``. For each
concurrency it prints requests/s, p50 and p99 of the answer, the CPU seconds per
request of the imagegate process (from /proc, its render pool excluded: the emulator
makes the pictures) and its peak RSS; then the same for the emulator alone. Every
imagegate request is a durable job whose image is stored before the answer."""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import httpx

from imagegate.domain.routing import percentile
from provider_overhead import Setup

BODY = {"model": "gpt-image-1", "prompt": "a lighthouse at dusk", "size": "1024x1024",
        "quality": "low", "n": 1}  # fmt: skip
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def load(url: str, key: str, requests: int, concurrency: int) -> tuple[float, list[float]]:
    headers = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, limits=limits) as http:
        gate = asyncio.Semaphore(concurrency)
        times: list[float] = []

        async def one() -> None:
            async with gate:
                start = time.perf_counter()
                response = await http.post("/images/generations", json=BODY)
                assert response.status_code == 200, response.text[:300]
                assert response.json()["data"][0]["b64_json"]
                times.append((time.perf_counter() - start) * 1000)

        await one()  # warm: connections, the first job's code paths
        times.clear()
        wall = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        return time.perf_counter() - wall, times


def report(name: str, concurrency: int, requests: int, wall: float, times: list[float],
           cpu: float | None, rss: float | None) -> None:  # fmt: skip
    extra = f"   CPU {cpu * 1000 / requests:5.1f} ms/req   peak RSS {rss:.0f} MiB" if cpu else ""
    print(
        f"{name:10s} c={concurrency:<3d} {requests / wall:6.1f} req/s   p50 "
        f"{percentile(times, 50) or 0:7.1f} ms   p99 {percentile(times, 99) or 0:7.1f} ms{extra}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 32])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        setup = Setup(
            "openai", Path(tmp), IMAGEGATE_WORKSPACE_CONCURRENCY="64",
            IMAGEGATE_DATABASE_POOL_SIZE="20",
        )  # fmt: skip
        try:
            for concurrency in args.concurrency:
                before = cpu_s(setup.server.pid)
                wall, times = asyncio.run(
                    load(setup.url + "/v1", setup.key, args.requests, concurrency)
                )
                used = cpu_s(setup.server.pid) - before
                report("imagegate", concurrency, args.requests, wall, times, used,
                       peak_rss_mib(setup.server.pid))  # fmt: skip
                wall, times = asyncio.run(
                    load(setup.sandbox_url + "/v1", "sk-sandbox", args.requests, concurrency)
                )
                report("emulator", concurrency, args.requests, wall, times, None, None)
        finally:
            setup.stop()


if __name__ == "__main__":
    main()
