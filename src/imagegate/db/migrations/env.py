"""Alembic environment: runs against the URL set by ``imagegate.db.migrate``."""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine, event

from imagegate.db.models import Base
from imagegate.db.session import apply_sqlite_pragmas, is_sqlite

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
        context.run_migrations()
engine.dispose()
