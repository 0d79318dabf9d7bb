"""INSERT … ON CONFLICT for the backend at hand: the one construct SQLAlchemy spells per
dialect (PostgreSQL and SQLite share its syntax)."""

from __future__ import annotations

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection


def dialect_insert(conn: AsyncConnection, table: Table) -> postgresql.Insert:
    """An insert into ``table`` that offers ``on_conflict_do_nothing/_do_update``.
    Typed as PostgreSQL's: SQLite's has the same methods with the same arguments."""
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)  # type: ignore[return-value]
