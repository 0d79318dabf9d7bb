"""Every migration goes up, down and up again on both backends, and the schema it
builds is the one the models declare (a revision that forgets a column or an index
fails here, not on an operator's database)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from imagegate.db.migrate import alembic_config, upgrade
from imagegate.db.models import Base
from imagegate.db.session import sync_url
from tests.support.postgres import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrations.sqlite'}"
    else:
        with fresh_database() as url:
            yield url


def _differences(database_url: str) -> list[object]:
    engine = create_engine(sync_url(database_url))
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))
    finally:
        engine.dispose()


def test_migrations_go_up_down_and_up_to_the_models_schema(database_url: str) -> None:
    upgrade(database_url)
    assert _differences(database_url) == []
    command.downgrade(alembic_config(database_url), "base")
    upgrade(database_url)
    assert _differences(database_url) == []
