"""Peak memory of one `imagegate serve` while its provider answers big images.

    .venv/bin/python bench/provider_memory.py [--jobs 50] [--mb 50]

A local HTTP server plays an OpenAI-compatible provider (dall-e-2, result URLs):
every generation's result URL answers a PNG of about ``--mb`` MB (noise, stored
uncompressed, so it is a valid image of that size). The server runs ``--jobs`` jobs
of one image each (the workspace's concurrency cap, 8 by default, runs them in
parallel), and the server process's peak resident memory (VmHWM) is printed, with
how the jobs ended.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from _server import running_server_process

CONFIG = """
[providers.builtin]
enabled = false

[providers.openai]
base_url = "{url}/v1"
api_key_env = "BENCH_PROVIDER_KEY"
models = ["dall-e-2"]

[providers.openai.options]
response_format = "url"
"""


def big_png(megabytes: float) -> bytes:
    side = int((megabytes * 1_000_000 / 3) ** 0.5)
    pixels = np.random.default_rng(7).integers(0, 256, (side, side, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG", compress_level=0)
    return out.getvalue()


def provider(image: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            host = f"http://127.0.0.1:{self.server.server_address[1]}"
            body = json.dumps({"created": 1, "data": [{"url": f"{host}/result.png"}]}).encode()
            self._send("application/json", body)

        def do_GET(self) -> None:
            self._send("image/png", image)

        def _send(self, kind: str, body: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--mb", type=float, default=50.0)
    args = parser.parse_args()
    image = big_png(args.mb)
    fake = provider(image)
    with tempfile.TemporaryDirectory(prefix="imagegate-bench-config-") as tmp:
        config = Path(tmp) / "imagegate.toml"
        config.write_text(CONFIG.format(url=f"http://127.0.0.1:{fake.server_address[1]}"))
        env = {"IMAGEGATE_CONFIG": str(config), "BENCH_PROVIDER_KEY": "sk-bench"}
        with running_server_process(**env) as (url, key, proc):
            idle = peak_rss_mb(proc.pid)
            headers = {"Authorization": f"Bearer {key}"}
            body = {"prompt": "bench: memory", "model": "openai:dall-e-2", "variations": 1}
            with httpx.Client(base_url=url, headers=headers, timeout=60) as http:
                started = time.perf_counter()
                created = [http.post("/api/image/jobs", json=body) for _ in range(args.jobs)]
                ids = [response.json()["job_id"] for response in created]
                ended: dict[str, str] = {}
                while len(ended) < len(ids):
                    for job_id in ids:
                        if job_id not in ended:
                            job = http.get(f"/api/image/jobs/{job_id}").json()
                            if job["status"] in ("completed", "failed", "canceled"):
                                ended[job_id] = job["status"]
                    time.sleep(0.2)
                wall = time.perf_counter() - started
            peak = peak_rss_mb(proc.pid)
    fake.shutdown()
    statuses = {s: list(ended.values()).count(s) for s in sorted(set(ended.values()))}
    print(
        f"{args.jobs} jobs, result images of {len(image) / 1e6:.1f} MB: "
        f"peak RSS {peak:.0f} MiB (idle {idle:.0f} MiB), {wall:.1f} s, {statuses}"
    )


if __name__ == "__main__":
    main()
