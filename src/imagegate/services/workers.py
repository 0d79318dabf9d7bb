"""Many processes on one database: worker ids, heartbeats, and the survivors taking
over a dead worker's jobs.

The engine recovers a worker's unfinished runs only when that same worker restarts.
A worker that never comes back would strand them, so every worker holds its id
through a heartbeat, and one elected process (whoever holds the ``reaper`` lease)
puts the runs of any executor without a live heartbeat back on the queue."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from imagegate import __version__
from imagegate.db import workers_repo
from imagegate.db.workers_repo import WorkerRow
from imagegate.engine import dbos_engine
from imagegate.observability.logging import get_logger
from imagegate.runtime import Runtime
from imagegate.services import retention
from imagegate.services.enqueue_sweep import EnqueueSweep

log = get_logger("imagegate.fleet")

REAPER_LEASE = "reaper"
MAX_SLOTS = 1000
# The exit status of a worker that found its id taken over: a supervisor restarts it.
EXIT_FENCED = 75


class WorkerIdInUse(Exception):
    """A live process already holds the worker id this one asked for."""


@dataclass(frozen=True)
class Membership:
    """This process's hold on a worker id."""

    worker_id: str
    incarnation: str


def hostname() -> str:
    """This host's name, in the characters a worker id may use."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:80] or "host"


def process_name() -> str:
    """Names this process where no worker id does (lease holders, API executors)."""
    return f"{hostname()}:{os.getpid()}"


async def join(rt: Runtime, role: str) -> Membership:
    """Claim this process's worker id: IMAGEGATE_WORKER_ID, else the first free
    ``<host>-<n>``. Raises WorkerIdInUse if the configured id has a live holder."""
    host, pid, incarnation = hostname(), os.getpid(), uuid.uuid4().hex
    wanted = rt.settings.worker_id
    candidates = [wanted] if wanted else [f"{host}-{n}" for n in range(1, MAX_SLOTS + 1)]
    now = rt.clock.now()
    stale_before = now - timedelta(seconds=rt.settings.worker_lease_s)
    holder: WorkerRow | None = None
    for worker_id in candidates:
        async with rt.db.begin() as conn:
            holder = await workers_repo.get(conn, worker_id)
            claimed = await workers_repo.claim(
                conn, worker_id=worker_id, role=role, host=host, pid=pid,
                incarnation=incarnation, version=__version__, now=now,
                stale_before=stale_before, dead_pid=_exited_holder(holder, host),
            )  # fmt: skip
        if claimed:
            log.info("worker.joined", worker_id=worker_id, role=role, host=host, pid=pid)
            return Membership(worker_id, incarnation)
    if wanted and holder is not None:
        age = (now - holder.heartbeat_at).total_seconds()
        raise WorkerIdInUse(
            f"worker id {wanted!r} is held by pid {holder.pid} on {holder.host} (heartbeat "
            f"{age:.0f} s ago); give this process another IMAGEGATE_WORKER_ID, or stop "
            f"that one (its id frees at once) or wait for its lease "
            f"({rt.settings.worker_lease_s:g} s) to run out"
        )
    raise WorkerIdInUse(f"all {MAX_SLOTS} worker ids on {host} are held by live processes")


def _exited_holder(holder: WorkerRow | None, host: str) -> int | None:
    """The holder's pid if it is a process on this host that no longer runs: its id
    can be taken at once instead of after the lease."""
    if holder is None or holder.host != host:
        return None
    # Our own pid: an earlier life of this process (a container restarts as pid 1).
    if holder.pid == os.getpid() or not _pid_alive(holder.pid):
        return holder.pid
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def leave(rt: Runtime, membership: Membership, reason: str) -> None:
    """Free the worker id. Runs the engine left unfinished (a drain that timed out)
    are then taken over by the next reaper pass, without waiting for the lease."""
    async with rt.db.begin() as conn:
        await workers_repo.stop(
            conn, membership.worker_id, membership.incarnation, rt.clock.now(), reason
        )
    log.info("worker.left", worker_id=membership.worker_id, reason=reason)


async def reap_once(rt: Runtime, holder: str, sweep: EnqueueSweep | None = None) -> list[str]:
    """If this process holds the reaper lease, hand the runs of every executor with no
    live heartbeat to the survivors, then (with a ``sweep``) queue a page of the jobs
    whose enqueue failed. Returns the executors it recovered."""
    settings = rt.settings
    now = rt.clock.now()
    async with rt.db.begin() as conn:
        ttl = 3 * settings.worker_heartbeat_interval_s
        if not await workers_repo.take_lease(conn, REAPER_LEASE, holder, now, ttl):
            return []
    # Pending runs first, live workers second: a worker joins before it takes any run,
    # so one that starts between the two reads is seen as live, never as dead.
    pending = await dbos_engine.pending_executor_ids()
    stale_before = now - timedelta(seconds=settings.worker_lease_s)
    async with rt.db.begin() as conn:
        expired = await workers_repo.expire(conn, stale_before, now)
        live = {worker.id for worker in await workers_repo.live(conn, stale_before)}
    for worker_id in expired:
        log.warning("worker.expired", worker_id=worker_id, lease_s=settings.worker_lease_s)
    dead = sorted(pending - live)
    if dead:
        recovered = await dbos_engine.recover(dead)
        log.warning("worker.reaped", executors=dead, runs=recovered)
    if sweep is not None:
        try:
            await sweep.run_once(rt)
        except Exception as error:  # the next pass tries again; reaping went on
            log.warning("jobs.sweep_failed", error=repr(error))
    # The elected process is also the housekeeper (hourly by default).
    await retention.run_if_due(rt, holder)
    return dead


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _exit_fenced(reason: str) -> None:
    # Another worker may be running this one's jobs by now: stop at once, mid-step,
    # rather than let two processes work on the same job.
    log.critical("worker.fenced", reason=reason)
    sys.stderr.flush()
    os._exit(EXIT_FENCED)


class Fleet:
    """A process's standing duties: its heartbeat (if it holds a worker id) and a
    turn at reaping. Start it after the engine is launched."""

    def __init__(
        self,
        rt: Runtime,
        membership: Membership | None,
        on_fenced: Callable[[str], None] = _exit_fenced,
    ) -> None:
        self._rt = rt
        self._membership = membership
        self._on_fenced = on_fenced
        self._holder = membership.worker_id if membership else process_name()
        self._beating: asyncio.Task[None] | None = None
        self._reaping: asyncio.Task[None] | None = None
        self._sweep = EnqueueSweep()

    def start(self) -> Fleet:
        if self._membership is not None:
            self._beating = asyncio.create_task(self._beat_forever(self._membership))
        self._reaping = asyncio.create_task(self._reap_forever())
        return self

    async def stop_reaping(self) -> None:
        """Leave reaping to the other processes, at once: the lease is released rather
        than left to expire."""
        await _cancel(self._reaping)
        self._reaping = None
        async with self._rt.db.begin() as conn:
            await workers_repo.release_lease(conn, REAPER_LEASE, self._holder)

    async def stop_heartbeat(self) -> None:
        """Call only once this process runs no job: others may then take its runs."""
        await _cancel(self._beating)
        self._beating = None

    async def _beat_forever(self, me: Membership) -> None:
        interval = self._rt.settings.worker_heartbeat_interval_s
        last_ok = time.monotonic()
        while True:
            await asyncio.sleep(interval)
            try:
                async with self._rt.db.begin() as conn:
                    held = await workers_repo.heartbeat(
                        conn, me.worker_id, me.incarnation, self._rt.clock.now()
                    )
            except Exception as error:
                log.warning("worker.heartbeat_failed", worker_id=me.worker_id, error=repr(error))
                if time.monotonic() - last_ok > self._rt.settings.worker_lease_s:
                    self._on_fenced("no heartbeat reached the database for a whole lease")
                    return
                continue
            if not held:
                self._on_fenced("this worker was declared dead and its jobs handed over")
                return
            last_ok = time.monotonic()

    async def _reap_forever(self) -> None:
        interval = self._rt.settings.worker_heartbeat_interval_s
        while True:
            try:
                await reap_once(self._rt, self._holder, self._sweep)
            except Exception as error:  # a failed pass is retried on the next tick
                log.warning("reaper.failed", error=repr(error))
            await asyncio.sleep(interval)
