from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from tests.support.api import client
from tests.support.postgres import fresh_database
from tests.support.receiver import Receiver
from tests.support.server import ServerProcess

# Four attempts, 0.2 s apart: a receiver that fails three times is reached on the fourth.
SHORT_SCHEDULE = "0,0.2,0.2,0.2"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def hook_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server that may call loopback receivers (allowlisted, over http) on a short
    schedule; on each database backend."""
    with ExitStack() as stack:
        database = {}
        if request.param == "postgresql":
            database["IMAGEGATE_DATABASE_URL"] = stack.enter_context(fresh_database())
        proc = ServerProcess(
            tmp_path_factory.mktemp(f"hooks-{request.param}"),
            IMAGEGATE_SSRF_ALLOWLIST="127.0.0.0/8",
            IMAGEGATE_WEBHOOK_SCHEDULE_S=SHORT_SCHEDULE,
            IMAGEGATE_WEBHOOK_TIMEOUT_S="2",
            IMAGEGATE_KEY_CACHE_TTL_S="1",
            **database,
        ).start()
        yield proc
        proc.stop()


@pytest.fixture
def hook_http(hook_server: ServerProcess) -> Iterator[httpx.Client]:
    """A member key of a fresh workspace on ``hook_server``."""
    with client(hook_server.url, hook_server.create_key(f"ws-{uuid.uuid4().hex[:10]}")) as c:
        yield c


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running
