"""What a scrape of /metrics answers: this process's series (or, in multiprocess mode,
the sum over the host's processes), plus the gauges only the database knows, read by
one bounded query at most every ``STATE_TTL_S`` however often Prometheus asks."""

from __future__ import annotations

import asyncio
import hmac
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from imagegate.db import metrics_repo, providers_repo
from imagegate.domain.circuit_breaker import BreakerState
from imagegate.domain.jobs import JobStatus
from imagegate.observability.logging import get_logger
from imagegate.observability.metrics import provider_label, seconds_between
from imagegate.runtime import Runtime
from imagegate.settings import Settings

log = get_logger("imagegate.metrics")
STATE_TTL_S = 1.0
STATE_TIMEOUT_S = 2.0
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass
class _State:
    """The database's side of the picture, as of ``at`` (monotonic)."""

    at: float = float("-inf")
    ok: bool = False
    queued: int = 0
    running: int = 0
    oldest_queued_s: float = 0.0
    breakers: dict[str, BreakerState] = field(default_factory=dict)


class _StateCollector(Collector):
    def __init__(self, state: _State) -> None:
        self._state = state

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self._state
        yield GaugeMetricFamily(
            "imagegate_state_up", "1 if the database gauges below are fresh (read within "
            f"{STATE_TTL_S:g} s), 0 if the database could not be read.", value=int(s.ok),
        )  # fmt: skip
        if not s.ok:
            return
        yield GaugeMetricFamily("imagegate_queue_depth", "Jobs queued, not started.", s.queued)
        yield GaugeMetricFamily("imagegate_jobs_running", "Jobs running now.", s.running)
        yield GaugeMetricFamily(
            "imagegate_queue_oldest_age_seconds",
            "How long the oldest queued job has waited (0 when none waits).",
            s.oldest_queued_s,
        )
        breaker = GaugeMetricFamily(
            "imagegate_provider_breaker_state",
            "1 for the state each provider's circuit breaker is in, 0 for the others.",
            labels=["provider", "state"],
        )
        for provider, current in sorted(s.breakers.items()):
            for state in BreakerState:
                breaker.add_metric([provider, state.value], int(state is current))
        yield breaker


class Exposition:
    """One per process: renders the scrape and keeps the database gauges' cache."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._state = _State()
        self._lock = asyncio.Lock()
        self._collector = _StateCollector(self._state)

    async def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        await self._refresh()
        registry = CollectorRegistry()
        registry.register(self._collector)
        ours = _process_metrics()
        return ours + generate_latest(registry), CONTENT_TYPE_LATEST

    async def _refresh(self) -> None:
        async with self._lock:  # one query for a burst of scrapes
            if time.monotonic() - self._state.at < STATE_TTL_S:
                return
            try:
                async with asyncio.timeout(STATE_TIMEOUT_S):
                    await self._read()
                self._state.ok = True
            except Exception as error:  # a scrape must answer, database or not
                self._state.ok = False
                log.warning("metrics.state_unavailable", error=repr(error)[:300])
            self._state.at = time.monotonic()

    async def _read(self) -> None:
        async with self._rt.db.connect() as conn:
            counts = await metrics_repo.unfinished_jobs(conn)
            breakers = await providers_repo.all_breakers(conn)
        queued = counts[JobStatus.QUEUED]
        now = self._rt.clock.now()
        s = self._state
        s.queued, s.running = queued.jobs, counts[JobStatus.RUNNING].jobs
        oldest = queued.oldest_created_at
        s.oldest_queued_s = seconds_between(oldest, now) if oldest is not None else 0.0
        # Every configured provider shows, closed until its breaker says otherwise.
        s.breakers = {
            provider_label(entry.name): (
                breakers[entry.name].state if entry.name in breakers else BreakerState.CLOSED
            )
            for entry in self._rt.providers.entries()
        }


def _process_metrics() -> bytes:
    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return generate_latest(REGISTRY)
    # Multiprocess mode: the values are in the files every process of the host writes.
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


def authorized(settings: Settings, authorization: str | None) -> bool:
    """With ``IMAGEGATE_METRICS_TOKEN`` set, a scrape must send it as a bearer token."""
    token = settings.metrics_token
    if token is None:
        return True
    scheme, _, given = (authorization or "").partition(" ")
    expected = token.get_secret_value().encode()
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)


def mark_process_dead() -> None:
    """In multiprocess mode, drop this process's live gauges (SSE listeners) from the
    host's sums as it exits."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
