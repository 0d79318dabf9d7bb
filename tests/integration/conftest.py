from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.support.api import client
from tests.support.server import ServerProcess


@pytest.fixture
def workspace_key(server: ServerProcess) -> str:
    """A member key in a fresh workspace of its own."""
    return server.create_key(f"ws-{uuid.uuid4().hex[:10]}")


@pytest.fixture
def http(server: ServerProcess, workspace_key: str) -> Iterator[httpx.Client]:
    with client(server.url, workspace_key) as c:
        yield c


@pytest.fixture
def admin_http(server: ServerProcess) -> Iterator[httpx.Client]:
    with client(server.url, server.admin_key) as c:
        yield c
