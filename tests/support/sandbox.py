"""Provider emulators (``imagegate sandbox <provider>``) as real processes on loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import BIN, free_port, wait_until


class SandboxProcess:
    def __init__(self, provider: str, log_dir: Path) -> None:
        self.provider = provider
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"sandbox-{provider}-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SandboxProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [str(BIN / "imagegate"), "sandbox", self.provider, "--port", str(self.port)],
            stdout=log,
            stderr=log,
        )
        wait_until(self._ready, 30, 0.05, f"{self.provider} sandbox ({self.log_path})")
        return self

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(self.log_path.read_text())
        try:
            return httpx.get(self.url + "/_sandbox/stats", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def faults(self, **settings: Any) -> None:
        """Set global faults (fields of sandbox.base.FaultSettings)."""
        response = httpx.post(self.url + "/_sandbox/faults", json=settings, timeout=5)
        assert response.status_code == 200, response.text

    def reset(self) -> None:
        """Clear faults, stats and jobs."""
        assert httpx.post(self.url + "/_sandbox/reset", timeout=5).status_code == 200

    def stats(self) -> dict[str, Any]:
        response = httpx.get(self.url + "/_sandbox/stats", timeout=5)
        stats: dict[str, Any] = response.json()
        return stats
