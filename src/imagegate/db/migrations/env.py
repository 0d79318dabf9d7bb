"""Alembic environment: runs against the URL set by ``imagegate.db.migrate``."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine, event, text

from imagegate.db.models import Base
from imagegate.db.session import apply_sqlite_pragmas, is_sqlite

# An arbitrary, fixed number: the advisory lock every imagegate process migrates under.
MIGRATION_LOCK = 7_316_843_201

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url is not None

engine = create_engine(url)
if is_sqlite(url):

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        apply_sqlite_pragmas(dbapi_conn)


with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=is_sqlite(url),
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            # Many processes start at once in a scaled-out deployment and each
            # migrates: the lock makes the others wait, then find nothing to do.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.run_migrations()
engine.dispose()
