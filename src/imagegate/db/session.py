"""Database engines and sessions for the app's own tables."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

SessionFactory = async_sessionmaker


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def sync_url(url: str) -> str:
    """The same database for a synchronous driver (Alembic runs synchronously)."""
    return url.replace("sqlite+aiosqlite", "sqlite", 1)


def apply_sqlite_pragmas(dbapi_conn: Any) -> None:
    # WAL lets readers run beside the one writer. synchronous=NORMAL keeps every
    # commit through a process crash (SIGKILL); only a power loss can drop the last
    # few, which is the trade SQLite's own docs recommend for WAL.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str, pool_size: int = 10) -> AsyncEngine:
    if is_sqlite(url):
        # One connection: SQLite has one writer at a time anyway, and two connections
        # of this process contending for the lock would wait in SQLite's busy handler,
        # which sleeps in steps of up to 100 ms. Queueing for the connection is fast.
        engine = create_async_engine(url, pool_size=1, max_overflow=0, pool_timeout=60)

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            apply_sqlite_pragmas(dbapi_conn)

        return engine
    # No overflow: the pool is the process's whole budget of server connections.
    return create_async_engine(url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True)


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[Any]:
    return async_sessionmaker(engine, expire_on_commit=False)
