from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess

FAULT_MARKER = "__fail__"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One real server for the session. Prompts containing ``__fail__`` fail on their
    first three attempts (so a job dead-letters after three, and succeeds on requeue)."""
    proc = ServerProcess(
        tmp_path_factory.mktemp("server"),
        IMAGEGATE_BUILTIN_FAULT_MARKER=FAULT_MARKER,
        IMAGEGATE_BUILTIN_FAULT_ATTEMPTS="3",
        IMAGEGATE_MAX_ATTEMPTS="3",
        IMAGEGATE_KEY_CACHE_TTL_S="1",
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")
