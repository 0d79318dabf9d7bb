"""Restart safety: SIGKILL or SIGTERM mid-run loses no accepted job."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from imagegate.runtime import Runtime
from imagegate.services.keys import Authenticator
from tests.support.api import TERMINAL, client
from tests.support.jobs import insert_unqueued_job
from tests.support.server import ServerProcess, wait_until


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_every_accepted_job_finishes_after_a_restart(tmp_path: Path, sig: signal.Signals) -> None:
    env = {"IMAGEGATE_BUILTIN_LATENCY_MS": "1500", "IMAGEGATE_WORKSPACE_CONCURRENCY": "3"}
    server = ServerProcess(tmp_path / "data", **env).start()
    key = server.admin_key
    with client(server.url, key) as http:
        ids = [
            http.post(
                "/api/image/jobs", json={"prompt": f"job {i}", "variations": 1, "mode": "draft"}
            ).json()["job_id"]
            for i in range(8)
        ]
        # Some jobs are running (mid provider call), the rest are still queued.
        wait_until(
            lambda: (
                sum(http.get(f"/api/image/jobs/{i}").json()["status"] == "running" for i in ids)
                >= 2
            ),
            timeout=30,
            what="jobs running",
        )
    server.kill(sig)

    restarted = ServerProcess(tmp_path / "data", port=server.port, **env).start()
    try:
        with client(restarted.url, key) as http:

            def all_done() -> bool:
                return all(
                    http.get(f"/api/image/jobs/{i}").json()["status"] in TERMINAL for i in ids
                )

            wait_until(all_done, timeout=90, interval=0.2, what="every job terminal")
            jobs = [http.get(f"/api/image/jobs/{i}").json() for i in ids]
        assert [j["status"] for j in jobs] == ["completed"] * len(ids)
        assert all(len(j["result_urls"]) == 1 for j in jobs)
    finally:
        restarted.stop()


def test_a_job_recorded_but_never_queued_runs_after_restart(tmp_path: Path) -> None:
    """A crash between recording a job and queueing it: the next start queues it."""
    server = ServerProcess(tmp_path / "data").start()
    key = server.admin_key
    server.kill()

    async def record_only() -> str:
        rt = Runtime.build(server.settings())
        try:
            principal = await Authenticator(rt)(key)
            return await insert_unqueued_job(
                rt, principal.workspace_id, principal.key_id, "builtin", "orphan"
            )
        finally:
            await rt.close()

    job_id = asyncio.run(record_only())
    restarted = ServerProcess(tmp_path / "data", port=server.port).start()
    try:
        with client(restarted.url, key) as http:
            wait_until(
                lambda: http.get(f"/api/image/jobs/{job_id}").json()["status"] in TERMINAL,
                timeout=30,
                what="orphan job finished",
            )
            assert http.get(f"/api/image/jobs/{job_id}").json()["status"] == "completed"
        assert '"requeued_jobs": 1' in restarted.log()
    finally:
        restarted.stop()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_render_processes_die_with_a_killed_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", IMAGEGATE_BUILTIN_PROCESSES="2").start()
    with client(server.url, server.admin_key) as http:
        job = http.post("/api/image/jobs", json={"prompt": "x", "variations": 1, "mode": "draft"})
        wait_until(
            lambda: (
                http.get(f"/api/image/jobs/{job.json()['job_id']}").json()["status"] == "completed"
            ),
            timeout=30,
        )
    assert server.proc is not None
    renderers = [pid for pid in _children(server.proc.pid) if b"spawn_main" in _cmdline(pid)]
    assert renderers, "no render process was started"
    server.kill(signal.SIGKILL)
    wait_until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in renderers),
        timeout=10,
        what="render processes to exit",
    )


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""
