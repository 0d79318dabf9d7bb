"""imagegate's Prometheus series, and the small calls that move them.

The calls sit where the events already happen (the runner, routing, the webhook
deliverer, the rate limits, the event feed, the HTTP middleware) and cost a few
microseconds each: no database work. What only the database knows (queue depth, the
oldest queued job, breaker states) is read at scrape time, in exposition.py.

Label values are bounded: statuses, actions and outcomes are enums, providers come from
the configuration, error codes from the code; ``bounded`` keeps any of them from
growing without end all the same. Never a job id, a prompt or a user as a label.

With ``PROMETHEUS_MULTIPROC_DIR`` set (before the process starts) prometheus-client
keeps the values in files there, and any process's /metrics shows the sum over the
host's processes (docs/observability.md)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from imagegate.domain.records import JobRecord

# The ``*_created`` timestamps double every series for little use (Prometheus infers
# resets itself); the client's own switch turns them off for the whole process.
disable_created_metrics()  # type: ignore[no-untyped-call]

# Seconds; from a fast local draft (tens of ms) to a slow provider (minutes).
_DURATION_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
_DISPATCH_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
_HTTP_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 60)
# Distinct values one label may take in one process before the rest read "other".
MAX_LABEL_VALUES = 100
MAX_LABEL_CHARS = 64
OTHER = "other"


class _Bounded:
    """The values seen for one kind of label, at most ``MAX_LABEL_VALUES`` of them."""

    def __init__(self) -> None:
        self._seen: set[str] = set()

    def __call__(self, value: str | None) -> str:
        if not value:
            return "none"
        value = value[:MAX_LABEL_CHARS]
        if value in self._seen:
            return value
        if len(self._seen) >= MAX_LABEL_VALUES:
            return OTHER
        self._seen.add(value)
        return value


provider_label, code_label, route_label = _Bounded(), _Bounded(), _Bounded()
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

JOBS_CREATED = Counter(
    "imagegate_jobs_created_total", "Jobs accepted (202), by action and requested provider.",
    ["action", "provider"],
)  # fmt: skip
JOBS_FINISHED = Counter(
    "imagegate_jobs_finished_total", "Jobs that reached a final status.",
    ["status", "action", "provider"],
)  # fmt: skip
DISPATCH = Histogram(
    "imagegate_job_dispatch_seconds", "From a job's creation to the start of its first attempt.",
    buckets=_DISPATCH_BUCKETS,
)  # fmt: skip
END_TO_END = Histogram(
    "imagegate_job_duration_seconds", "From a job's creation to its final status.",
    ["status"], buckets=_DURATION_BUCKETS,
)  # fmt: skip
ATTEMPTS = Histogram(
    "imagegate_attempt_duration_seconds",
    "One provider call of an attempt, by provider and outcome (ok, failed, moderated).",
    ["provider", "outcome"], buckets=_DURATION_BUCKETS,
)  # fmt: skip
PROVIDER_ERRORS = Counter(
    "imagegate_provider_errors_total", "Failed provider calls, by provider and error code.",
    ["provider", "code"],
)  # fmt: skip
RATE_LIMITED = Counter(
    "imagegate_rate_limited_total", "Requests refused with 429, by limit (requests, jobs).",
    ["limit"],
)  # fmt: skip
WEBHOOK_ATTEMPTS = Counter(
    "imagegate_webhook_attempts_total",
    "Webhook delivery attempts, by what the delivery became (delivered, pending: to be "
    "retried, exhausted, failed, disabled).",
    ["outcome"],
)  # fmt: skip
WEBHOOK_LAG = Histogram(
    "imagegate_webhook_delivery_lag_seconds",
    "From an event to its successful delivery (retries included).",
    buckets=_DURATION_BUCKETS,
)  # fmt: skip
SSE_LISTENERS = Gauge(
    "imagegate_sse_listeners", "Server-Sent Events streams open now.",
    multiprocess_mode="livesum",
)  # fmt: skip
HTTP_REQUESTS = Counter(
    "imagegate_http_requests_total",
    "HTTP requests answered, by method, route template and status.",
    ["method", "route", "status"],
)  # fmt: skip
HTTP_SECONDS = Histogram(
    "imagegate_http_request_duration_seconds",
    "Time to answer an HTTP request (to its first byte).",
    ["method", "route"], buckets=_HTTP_BUCKETS,
)  # fmt: skip


def seconds_between(since: datetime, now: datetime) -> float:
    if since.tzinfo is None:  # SQLite hands datetimes back without their zone (UTC)
        since = since.replace(tzinfo=UTC)
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return max(0.0, (now - since).total_seconds())


def job_created(action: str, provider: str | None, count: int = 1) -> None:
    """``count`` jobs committed (after the transaction: a rolled-back create is none)."""
    JOBS_CREATED.labels(action, provider_label(provider)).inc(count)


def job_started(job: JobRecord, now: datetime) -> None:
    """An attempt began; the first one of a job measures its dispatch."""
    if job.attempts == 1:
        DISPATCH.observe(seconds_between(job.created_at, now))


def job_finished(job: JobRecord, status: str, now: datetime) -> None:
    JOBS_FINISHED.labels(status, job.action, provider_label(job.provider)).inc()
    END_TO_END.labels(status).observe(seconds_between(job.created_at, now))


def provider_call(provider: str, outcome: str, error_code: str | None, seconds: float) -> None:
    name = provider_label(provider)
    ATTEMPTS.labels(name, outcome).observe(seconds)
    if error_code:
        PROVIDER_ERRORS.labels(name, code_label(error_code)).inc()


def rate_limited(limit: str) -> None:
    RATE_LIMITED.labels(limit).inc()


def webhook_attempt(outcome: str, event_at: datetime, now: datetime) -> None:
    WEBHOOK_ATTEMPTS.labels(outcome).inc()
    if outcome == "delivered":
        WEBHOOK_LAG.observe(seconds_between(event_at, now))


@contextlib.asynccontextmanager
async def sse_listener() -> AsyncIterator[None]:
    """One Server-Sent Events stream open for as long as the block runs."""
    SSE_LISTENERS.inc()
    try:
        yield
    finally:
        SSE_LISTENERS.dec()


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    template = route_label(route)
    method = method if method in _METHODS else OTHER
    HTTP_REQUESTS.labels(method, template, str(status)).inc()
    HTTP_SECONDS.labels(method, template).observe(seconds)
