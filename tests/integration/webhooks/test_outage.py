"""A receiver that is down while jobs complete — and the server killed (SIGKILL) or
stopped (SIGTERM) in the middle of it — then comes back: every event arrives, each
webhook-id counted once after deduplication, none missing.

The suite runs it with 40 jobs (80 deliveries, a few hundred refused attempts): the
same paths as the 200-job run of bench/webhook_outage.py, in a fraction of the time."""

from __future__ import annotations

import signal
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.outage import run_outage
from tests.support.postgres import fresh_database

JOBS = 40


# A guard against a hang only: the scenario fails first, when no job completes or no
# delivery lands for a minute (tests/support/outage.py), however slow the machine.
@pytest.mark.timeout(600)
@pytest.mark.parametrize(
    ("backend", "stop"),
    [("sqlite", signal.SIGKILL), ("postgresql", signal.SIGTERM)],
    ids=["sqlite-sigkill", "postgresql-sigterm"],
)
def test_every_event_arrives_after_an_outage_and_a_restart(
    tmp_path: Path, backend: str, stop: signal.Signals
) -> None:
    with ExitStack() as stack:
        database = stack.enter_context(fresh_database()) if backend == "postgresql" else None
        run_outage(tmp_path / "data", JOBS, stop, database)
