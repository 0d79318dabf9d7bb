from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.postgres import fresh_database
from tests.support.sandbox import SandboxProcess
from tests.support.server import ServerProcess

FAULT_MARKER = "__fail__"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One real server per database backend: every test that uses it runs on SQLite
    and on PostgreSQL. Prompts containing ``__fail__`` fail on their first three
    attempts (so a job dead-letters after three, and succeeds on requeue)."""
    with ExitStack() as stack:
        database = {}
        if request.param == "postgresql":
            database["IMAGEGATE_DATABASE_URL"] = stack.enter_context(fresh_database())
        proc = ServerProcess(
            tmp_path_factory.mktemp(f"server-{request.param}"),
            IMAGEGATE_BUILTIN_FAULT_MARKER=FAULT_MARKER,
            IMAGEGATE_BUILTIN_FAULT_ATTEMPTS="3",
            IMAGEGATE_MAX_ATTEMPTS="3",
            IMAGEGATE_KEY_CACHE_TTL_S="1",
            **database,
        ).start()
        yield proc
        proc.stop()


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="session")
def sandboxes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[str], SandboxProcess]]:
    """``sandboxes("openai")``: that provider's emulator, started once per session and
    reset (no faults, no stats, no jobs) for each caller."""
    started: dict[str, SandboxProcess] = {}
    log_dir = tmp_path_factory.mktemp("sandboxes")

    def get(provider: str) -> SandboxProcess:
        if provider not in started:
            started[provider] = SandboxProcess(provider, log_dir).start()
        started[provider].reset()
        return started[provider]

    yield get
    for proc in started.values():
        proc.stop()
