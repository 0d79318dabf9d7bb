"""Processes starting at once on an empty database mint one admin key between them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from imagegate.db.migrate import upgrade
from imagegate.runtime import Runtime
from imagegate.services.keys import Authenticator, bootstrap_admin_key, list_keys
from imagegate.settings import Settings
from tests.support.postgres import fresh_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    with ExitStack() as stack:
        yield stack.enter_context(fresh_database()) if request.param == "postgresql" else None


async def test_concurrent_bootstraps_make_one_admin_key(
    tmp_path: Path, database_url: str | None
) -> None:
    # Four "processes", each with its own runtime (pool) and data dir, one database.
    all_settings = []
    for n in range(4):
        data_dir = tmp_path / f"p{n}"
        url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
        settings = Settings(data_dir=data_dir, database_url=url)
        settings.ensure_data_dir()
        all_settings.append(settings)
    upgrade(all_settings[0].resolved_database_url)
    runtimes = [Runtime.build(s, with_providers=False) for s in all_settings]
    try:
        made = await asyncio.gather(*(bootstrap_admin_key(rt) for rt in runtimes))
        minted = [key for key in made if key is not None]
        assert len(minted) == 1
        keys = await list_keys(runtimes[0])
        assert [(k.workspace, k.role) for k in keys] == [("default", "admin")]
        # The one key written to disk is the one that works.
        winner = next(s for s, key in zip(all_settings, made, strict=True) if key)
        secret = winner.admin_key_path.read_text().strip()
        assert (await Authenticator(runtimes[1])(secret)).is_admin
    finally:
        for rt in runtimes:
            await rt.close()
