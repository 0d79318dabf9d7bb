"""A migrated database on each backend, with a Runtime on a clock the test moves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from imagegate.db.migrate import upgrade
from imagegate.runtime import Runtime
from imagegate.settings import Settings
from tests.support.postgres import fresh_database


class MovableClock:
    def __init__(self, at: datetime | None = None) -> None:
        self.at = at or datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


@asynccontextmanager
async def migrated_runtime(
    backend: str, data_dir: Path, clock: MovableClock, **settings: Any
) -> AsyncIterator[Runtime]:
    """``backend`` is "sqlite" (a file in ``data_dir``) or "postgresql" (a throwaway
    database on the test server)."""
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database()) if backend == "postgresql" else None
        config = Settings(data_dir=data_dir, database_url=url, **settings)
        config.ensure_data_dir()
        upgrade(config.resolved_database_url)
        rt = Runtime.build(config, clock)
        try:
            yield rt
        finally:
            await rt.close()
