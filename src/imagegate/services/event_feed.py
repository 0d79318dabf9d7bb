"""Live job events for this process's clients: SSE streams and ``Prefer: wait``.

Events are written to ``job_events`` by whichever process runs the job, possibly on
another machine, so the database is the one place to learn of them. One poller per
process reads new rows (only while someone listens) and hands each to the
subscriptions that want it: a job's, or a workspace's.

PostgreSQL assigns ids when rows are inserted, not when they commit, so a row with a
lower id can appear after a higher one was read. The poller therefore re-reads a
window of ids below the highest it has seen and skips those it already handed out."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from imagegate.db import events_repo
from imagegate.domain.records import EventRecord
from imagegate.observability import metrics
from imagegate.observability.logging import get_logger
from imagegate.runtime import Runtime

log = get_logger("imagegate.events")

TERMINAL = frozenset({"job.completed", "job.failed", "job.canceled"})
POLL_INTERVAL_S = 0.1
# Ids below the highest seen that are read again, for rows that committed late.
LOOKBACK_IDS = 512
BATCH = 1000
# A subscriber that falls this far behind is dropped rather than buffered forever.
QUEUE_LIMIT = 10_000


class SentIds:
    """Which event ids a stream has sent, in constant space, however long it runs.

    Every id at or below ``floor`` counts as sent: the client's ``Last-Event-ID``, or
    ids more than ``window`` below the newest sent. Above the floor, ids are kept one
    by one (at most ``window`` of them), because on PostgreSQL a lower id can commit
    after a higher one was read. The feed itself re-reads only ``LOOKBACK_IDS`` below
    its newest, so a row later than the window is one it would not hand out either."""

    def __init__(self, after_id: int, window: int = 2 * LOOKBACK_IDS) -> None:
        self.floor = after_id
        self.high = after_id
        self.window = window
        self._recent: set[int] = set()
        self._order: list[int] = []  # a heap of the same ids, to drop the lowest first

    def __len__(self) -> int:
        return len(self._recent)

    def first_time(self, event_id: int) -> bool:
        """True, and remembered, if ``event_id`` was not sent yet."""
        if event_id <= self.floor or event_id in self._recent:
            return False
        self._recent.add(event_id)
        heapq.heappush(self._order, event_id)
        self.high = max(self.high, event_id)
        self.floor = max(self.floor, self.high - self.window)
        while self._order and self._order[0] <= self.floor:
            self._recent.discard(heapq.heappop(self._order))
        return True


@dataclass(eq=False)
class Subscription:
    job_id: str | None
    workspace_id: str | None
    queue: asyncio.Queue[EventRecord] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    overflowed: bool = False

    def wants(self, event: EventRecord) -> bool:
        if self.job_id is not None and event.job_id != self.job_id:
            return False
        return self.workspace_id is None or event.workspace_id == self.workspace_id


class EventFeed:
    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._subscriptions: set[Subscription] = set()
        self._listening = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._high = 0
        self._seen: set[int] = set()

    async def start(self) -> None:
        async with self._rt.db.connect() as conn:
            self._high = await events_repo.last_id(conn)
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @asynccontextmanager
    async def subscribe(
        self, *, job_id: str | None = None, workspace_id: str | None = None
    ) -> AsyncIterator[Subscription]:
        subscription = Subscription(job_id, workspace_id)
        self._subscriptions.add(subscription)
        self._listening.set()
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)
            if not self._subscriptions:
                self._listening.clear()

    async def _run(self) -> None:
        while True:
            await self._listening.wait()
            try:
                await self._poll()
            except Exception as error:  # the next poll tries again
                log.warning("events.poll_failed", error=repr(error))
            await asyncio.sleep(POLL_INTERVAL_S)

    async def _poll(self) -> None:
        while True:
            async with self._rt.db.connect() as conn:
                rows = await events_repo.after(conn, self._high - LOOKBACK_IDS, limit=BATCH)
            fresh = [row for row in rows if row.id not in self._seen]
            for row in fresh:
                self._seen.add(row.id)
                self._high = max(self._high, row.id)
                self._dispatch(row)
            floor = self._high - 2 * LOOKBACK_IDS
            self._seen = {i for i in self._seen if i > floor}
            if len(rows) < BATCH:
                return

    def _dispatch(self, row: EventRecord) -> None:
        for subscription in list(self._subscriptions):
            if subscription.overflowed or not subscription.wants(row):
                continue
            try:
                subscription.queue.put_nowait(row)
            except asyncio.QueueFull:
                subscription.overflowed = True
                log.warning("events.subscriber_dropped", job_id=subscription.job_id)


async def follow(
    feed: EventFeed,
    rt: Runtime,
    *,
    workspace_id: str,
    job_id: str | None = None,
    after_id: int = 0,
) -> AsyncIterator[EventRecord]:
    """The events of a job (ending with its terminal event) or of a workspace (never
    ending), from ``after_id`` on: first what is stored, then live, without gaps or
    repeats. Subscribes before reading the backlog, so nothing falls in between."""
    async with (
        feed.subscribe(job_id=job_id, workspace_id=workspace_id) as live,
        metrics.sse_listener(),
    ):
        sent = SentIds(after_id)
        cursor = after_id
        while True:
            async with rt.db.connect() as conn:
                backlog = await events_repo.after(
                    conn, cursor, limit=BATCH, job_id=job_id, workspace_id=workspace_id
                )
            for index, row in enumerate(backlog):
                sent.first_time(row.id)
                yield row
                if job_id is not None and _ends(row, backlog[index + 1 :]):
                    return
            if len(backlog) < BATCH:
                break
            cursor = backlog[-1].id
        while not live.overflowed:
            row = await live.queue.get()
            if not sent.first_time(row.id):
                continue
            yield row
            if job_id is not None and row.type in TERMINAL:
                return


def _ends(row: EventRecord, later: list[EventRecord]) -> bool:
    """A terminal event ends a job's stream, unless the job was requeued after it."""
    return row.type in TERMINAL and not any(r.type == "job.requeued" for r in later)


async def wait_for_end(
    feed: EventFeed, rt: Runtime, *, workspace_id: str, job_id: str, timeout_s: float
) -> None:
    """Return when the job has reached a terminal status, or after ``timeout_s``."""
    async with feed.subscribe(job_id=job_id, workspace_id=workspace_id) as live:
        # Subscribed first: an end that happens now is either stored or delivered.
        async with rt.db.connect() as conn:
            ends = await events_repo.after(
                conn, 0, job_id=job_id, workspace_id=workspace_id, limit=BATCH
            )
        if ends and _ends(ends[-1], []):
            return
        try:
            async with asyncio.timeout(timeout_s):
                while not live.overflowed:
                    if (await live.queue.get()).type in TERMINAL:
                        return
        except TimeoutError:
            return
