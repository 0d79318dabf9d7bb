"""PostgreSQL LISTEN/NOTIFY on one channel: "a job run was just enqueued". Every
process that runs jobs listens, so an enqueue by any process (an API process, another
worker) wakes their dispatchers at once rather than at their next queue poll."""

from __future__ import annotations

import threading
from collections.abc import Callable

import psycopg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

CHANNEL = "imagegate_dispatch"
# How long a listener waits for a notification before checking whether to stop.
LISTEN_TICK_S = 1.0
RECONNECT_S = 1.0


async def notify(conn: AsyncConnection) -> None:
    """Notify the listeners (delivered when the caller's transaction commits)."""
    await conn.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


def plain_url(url: str) -> str:
    """The SQLAlchemy URL of a PostgreSQL database, as libpq takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def listen(url: str, on_notify: Callable[[], None], stop: threading.Event) -> None:
    """Call ``on_notify`` for each notification until ``stop`` is set (run it in a
    thread of its own). A lost connection is made again; notifications sent meanwhile
    are lost, which costs only the wait for the next queue poll."""
    while not stop.is_set():
        try:
            with psycopg.connect(plain_url(url), autocommit=True) as conn:
                conn.execute(f"LISTEN {CHANNEL}")
                while not stop.is_set():
                    for _ in conn.notifies(timeout=LISTEN_TICK_S):
                        on_notify()
        except psycopg.Error:
            stop.wait(RECONNECT_S)
