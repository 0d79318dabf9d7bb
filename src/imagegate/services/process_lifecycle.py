"""Starting and stopping one imagegate process's share of the work.

``serve`` and ``worker`` run jobs under a worker id; ``api`` only enqueues. All of
them take turns at reaping dead workers' jobs, so a fleet of API processes alone
still brings back the jobs of a worker that died."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from imagegate.db import jobs_repo
from imagegate.domain.records import JobPresenter, OwnUrlBody
from imagegate.engine import dbos_engine, webhook_engine
from imagegate.observability.logging import get_logger
from imagegate.runtime import Runtime
from imagegate.services import jobs as jobs_service
from imagegate.services import workers
from imagegate.services.workers import Fleet, Membership

log = get_logger("imagegate.node")
DRAIN_POLL_S = 0.2


@dataclass
class Node:
    rt: Runtime
    membership: Membership | None
    fleet: Fleet
    requeued_jobs: int

    @property
    def runs_jobs(self) -> bool:
        return self.membership is not None


async def start(
    rt: Runtime,
    membership: Membership | None,
    present_job: JobPresenter,
    own_url_body: OwnUrlBody | None = None,
) -> Node:
    """Launch the engine in this event loop (it runs jobs and webhook deliveries only
    with a membership), queue any job a crash left unqueued, and begin heartbeats and
    reaping. ``present_job`` renders the job that webhook bodies carry;
    ``own_url_body`` the body a job's own URL may get instead."""
    executor_id = membership.worker_id if membership else f"api-{workers.process_name()}"
    if membership is not None:
        webhook_engine.prepare(rt, present_job, own_url_body)
    await dbos_engine.launch(rt, executor_id, runs_jobs=membership is not None)
    if membership is not None:
        await webhook_engine.start(rt)
    requeued = await jobs_service.reconcile(rt)
    return Node(rt, membership, Fleet(rt, membership).start(), requeued)


async def stop(node: Node) -> None:
    """Stop taking jobs, give running ones IMAGEGATE_DRAIN_TIMEOUT_S to finish, then
    free the worker id: whatever is still unfinished goes to the other workers."""
    await node.fleet.stop_reaping()
    await webhook_engine.stop_dispatching()
    me = node.membership
    drain_s = node.rt.settings.drain_timeout_s if me and await _running(node.rt, me) else 0
    dbos_engine.stop_dequeuing()
    if drain_s and me is not None:
        log.info("worker.draining", worker_id=me.worker_id, timeout_s=drain_s)
        # Heartbeats go on through the drain, so no reaper takes these jobs meanwhile.
        await _drain(node.rt, me, drain_s)
    await webhook_engine.stop_deliveries()
    # In a thread: the engine's threads may need this event loop to finish on.
    await asyncio.to_thread(dbos_engine.shutdown, 0)
    await node.fleet.stop_heartbeat()
    await node.rt.providers.aclose()
    await webhook_engine.close()
    if me is None:
        return
    left = await _running(node.rt, me)
    reason = f"stopped, handed back {left} running jobs" if left else "stopped"
    await workers.leave(node.rt, me, reason[:64])


async def _drain(rt: Runtime, me: Membership, timeout_s: float) -> None:
    """Wait up to ``timeout_s`` for this worker's running jobs to end."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while await _running(rt, me) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(DRAIN_POLL_S)


async def _running(rt: Runtime, me: Membership) -> int:
    async with rt.db.connect() as conn:
        return await jobs_repo.running_on(conn, me.worker_id)
