"""Start a throwaway ``imagegate serve`` for a benchmark (own data dir and port)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


@contextmanager
def running_server(**env: str) -> Iterator[tuple[str, str]]:
    """Yield (base URL, admin key) of a fresh server; stop it afterwards."""
    with running_server_process(**env) as (url, key, _):
        yield url, key


@contextmanager
def running_server_process(**env: str) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """Yield (base URL, admin key, process) of a fresh server; stop it afterwards."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="imagegate-bench-") as tmp:
        data = Path(tmp)
        full_env = {
            **os.environ,
            "IMAGEGATE_DATA_DIR": str(data),
            "IMAGEGATE_PORT": str(port),
            "IMAGEGATE_LOG_LEVEL": "WARNING",
            # Benchmarks measure the server, not its rate limits (--env can set them).
            "IMAGEGATE_RATE_LIMIT_REQUESTS": "off",
            "IMAGEGATE_RATE_LIMIT_JOBS": "off",
            **env,
        }
        log = (data / "server.log").open("wb")
        binary = Path(sys.executable).parent / "imagegate"
        proc = subprocess.Popen([str(binary), "serve"], env=full_env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(url + "/readyz").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit((data / "server.log").read_text())
                time.sleep(0.1)
            yield url, (data / "admin.key").read_text().strip(), proc
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def percentile(values: list[float], q: float) -> float:
    """imagegate's own percentile (nearest rank), so benches and the scorecard agree."""
    from imagegate.domain.routing import percentile as nearest

    value = nearest(values, q)
    assert value is not None, "no samples"
    return value
