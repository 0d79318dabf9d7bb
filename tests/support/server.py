"""A real imagegate server process on loopback, for integration and end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from imagegate.runtime import Runtime
from imagegate.services.keys import create_key
from imagegate.settings import Settings

BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, timeout: float, interval: float = 0.02, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def wait_for_progress(
    measure: Any, target: int, stall_s: float, interval: float = 0.2, what: str = ""
) -> int:
    """Poll ``measure`` (a count that grows as work gets done) until it reaches
    ``target``; fail only when it has not grown for ``stall_s``. A deadline scaled to the
    work: a slow machine that keeps finishing jobs passes, a stuck run fails after
    ``stall_s`` whatever the size of the run, and the message says how far it got."""
    best, moved_at = -1, time.monotonic()
    while True:
        value = int(measure())
        if value >= target:
            return value
        now = time.monotonic()
        if value > best:
            best, moved_at = value, now
        elif now - moved_at > stall_s:
            raise AssertionError(
                f"no progress for {stall_s:g}s waiting for {what or measure}: {best}/{target}"
            )
        time.sleep(interval)


class ServerProcess:
    """``imagegate serve`` (or ``api``, or ``worker``, which has no port) in a child
    process with its own data dir and port."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        command: str = "serve",
        program: list[str] | None = None,
        **env: str,
    ) -> None:
        self.command = command
        # What runs in place of the ``imagegate`` command (a wrapper injecting faults).
        self.program = program or [str(BIN / "imagegate")]
        self.data_dir = data_dir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "IMAGEGATE_DATA_DIR": str(data_dir),
            "IMAGEGATE_PORT": str(self.port),
            "IMAGEGATE_QUEUE_POLL_INTERVAL_S": "0.02",
            "IMAGEGATE_RETRY_BASE_DELAY_S": "0.05",
            **env,
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / f"server-{self.port}.log"

    def start(self, timeout: float = 60) -> ServerProcess:
        return self.spawn().wait_ready(timeout)

    def spawn(self) -> ServerProcess:
        """Start the process without waiting for it (to start several at once)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [*self.program, self.command], env=self.env, stdout=log, stderr=log
        )
        return self

    def wait_ready(self, timeout: float = 60) -> ServerProcess:
        wait_until(self._ready, timeout, 0.05, f"{self.command} on {self.url} ({self.log_path})")
        return self

    def exit_code(self, timeout: float = 60) -> int:
        """Wait for the process to end by itself; its exit status."""
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.command} exited early:\n{self.log()}")
        if self.command == "worker":
            return "is taking jobs" in self.log()
        try:
            return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def settings(self) -> Settings:
        """The settings this process runs with (same data dir, same database)."""
        return Settings(data_dir=self.data_dir, database_url=self.env.get("IMAGEGATE_DATABASE_URL"))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def admin_key(self) -> str:
        return (self.data_dir / "admin.key").read_text().strip()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                # Where it hangs: on SIGUSR2 imagegate writes every thread's stack to
                # its stderr, which is this server's log.
                self.proc.send_signal(signal.SIGUSR2)
                time.sleep(2)
                self.proc.kill()
                self.proc = None
                raise AssertionError(
                    f"{self.command} did not exit 30 s after signal {sig}; its log ends:\n"
                    + self.log()[-6000:]
                ) from None
        self.proc = None

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def cli(
        self, *args: str, key: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        """Run the ``imagegate`` CLI against this server."""
        full_env = {**self.env, "IMAGEGATE_API_KEY": key or self.admin_key, **env}
        full_env.pop("IMAGEGATE_PORT", None)
        full_env["IMAGEGATE_URL"] = self.url
        return subprocess.run(
            [str(BIN / "imagegate"), *args],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def create_key(self, workspace: str, admin: bool = False) -> str:
        """A new key for ``workspace``, written straight to the server's database (the
        CLI's own path is tested in tests/e2e/test_keys.py; a subprocess per test costs
        seconds)."""

        async def make() -> str:
            rt = Runtime.build(self.settings(), with_providers=False)
            try:
                key = await create_key(rt, workspace, "test", role="admin" if admin else "member")
            finally:
                await rt.close()
            return key.secret

        return asyncio.run(make())
