"""The trace context's rules (W3C traceparent), how a job's trace reaches log lines
and outgoing calls, the optional exporter's spans, and the metrics' label bounds."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from imagegate.domain.jobs import JobStatus
from imagegate.domain.records import JobRecord
from imagegate.observability import metrics, otel, tracing
from imagegate.services.scrape import authorized

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
PARENT = f"00-{TRACE}-{SPAN}-01"
NOW = datetime(2026, 12, 4, tzinfo=UTC)


def _job(traceparent: str | None = PARENT, job_id: str = "job_1") -> JobRecord:
    return JobRecord(
        id=job_id, workspace_id="ws_1", api_key_id=None, user=None, status=JobStatus.QUEUED,
        action="imagine", parent_job_id=None, prompt="p", negative_prompt=None, params={},
        progress=0, provider="builtin", model="builtin", attempts=0, runs=1, error_code=None,
        error_message=None, dead_letter=False, estimated_credits=1, charged_credits=0,
        metadata={}, created_at=NOW, started_at=None, completed_at=None,
        traceparent=traceparent,
    )  # fmt: skip


def test_a_well_formed_traceparent_is_read() -> None:
    found = tracing.parse(PARENT)
    assert found == tracing.TraceContext(TRACE, SPAN, sampled=True)
    assert found.traceparent == PARENT
    assert tracing.parse(f"00-{TRACE}-{SPAN}-00") == tracing.TraceContext(TRACE, SPAN, False)
    # A later version may add fields; its first four are read as version 00's.
    assert tracing.parse(f"01-{TRACE}-{SPAN}-01-more") == tracing.TraceContext(TRACE, SPAN)


@pytest.mark.parametrize(
    "header",
    [
        None, "", "junk", PARENT.upper(), f"ff-{TRACE}-{SPAN}-01", f"00-{TRACE}-{SPAN}-01-x",
        f"00-{'0' * 32}-{SPAN}-01", f"00-{TRACE}-{'0' * 16}-01", f"00-{TRACE[:-1]}-{SPAN}-01",
        PARENT + "-" + "x" * 300,
    ],
)  # fmt: skip
def test_a_malformed_traceparent_starts_a_new_trace(header: str | None) -> None:
    assert tracing.parse(header) is None


def test_a_job_recorded_without_a_trace_gets_one_from_its_id() -> None:
    first, again = tracing.for_job(_job(None)), tracing.for_job(_job(None))
    assert first == again and len(first.trace_id) == 32
    assert tracing.for_job(_job(None, "job_2")).trace_id != first.trace_id
    assert tracing.for_job(_job()).trace_id == TRACE


def test_log_lines_and_outgoing_calls_carry_the_span_only_inside_it() -> None:
    assert tracing.outgoing() is None
    with tracing.span("work", tracing.parse(PARENT)) as here:
        # What structlog's merge_contextvars adds to every line (observability/logging).
        assert structlog.contextvars.get_contextvars()["trace_id"] == TRACE
        sent = tracing.outgoing()
        assert sent is not None and sent.split("-")[1] == TRACE
        assert sent.split("-")[2] not in (SPAN, here.span_id)  # a new span per call
    assert here.trace_id == TRACE and here.span_id != SPAN
    assert tracing.outgoing() is None
    assert "trace_id" not in structlog.contextvars.get_contextvars()


async def test_a_job_steps_trace_ends_with_the_step() -> None:
    seen: list[str | None] = []

    @tracing.job_step("job.attempt")
    async def step(job: JobRecord) -> str:
        seen.append(tracing.outgoing())
        tracing.enter_job(job)
        seen.append(tracing.outgoing())
        return "done"

    assert await step(_job()) == "done"
    assert seen[0] is None and seen[1] is not None and TRACE in seen[1]
    assert tracing.outgoing() is None


def test_spans_are_exported_in_the_jobs_trace_under_its_parent() -> None:
    exporter = InMemorySpanExporter()
    otel.use(SimpleSpanProcessor(exporter), "imagegate-test")
    try:

        async def attempt() -> None:
            @tracing.job_step("job.attempt")
            async def step() -> None:
                tracing.enter_job(_job())
                with tracing.client_call("provider.http", method="POST") as sent:
                    assert sent is not None

            await step()

        asyncio.run(attempt())
        with tracing.span("http.request", None) as root:
            pass
    finally:
        otel.shutdown()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert set(spans) == {"job.attempt", "provider.http", "http.request"}
    job_attempt, call = spans["job.attempt"], spans["provider.http"]
    assert format(job_attempt.context.trace_id, "032x") == TRACE
    assert job_attempt.parent is not None and format(job_attempt.parent.span_id, "016x") == SPAN
    assert call.parent is not None and call.parent.span_id == job_attempt.context.span_id
    assert job_attempt.attributes is not None and job_attempt.attributes["job_id"] == "job_1"
    # A request that came without a traceparent is the root of its own trace.
    assert spans["http.request"].parent is None
    assert format(spans["http.request"].context.trace_id, "032x") == root.trace_id
    assert job_attempt.resource.attributes["service.name"] == "imagegate-test"


def test_label_values_stay_bounded() -> None:
    bounded = metrics._Bounded()
    assert bounded(None) == "none"
    values = [bounded(f"provider-{i}") for i in range(metrics.MAX_LABEL_VALUES + 5)]
    assert values[: metrics.MAX_LABEL_VALUES] == [
        f"provider-{i}" for i in range(metrics.MAX_LABEL_VALUES)
    ]
    assert set(values[metrics.MAX_LABEL_VALUES :]) == {metrics.OTHER}
    assert bounded("provider-0") == "provider-0"  # the ones seen keep their name
    assert len(bounded("x" * 500)) <= metrics.MAX_LABEL_CHARS


def test_dispatch_is_measured_on_the_first_attempt_only() -> None:
    before = metrics.DISPATCH._sum.get()  # type: ignore[attr-defined]
    later = datetime(2026, 12, 4, 0, 0, 2, tzinfo=UTC)
    metrics.job_started(replace(_job(), attempts=1), later)
    metrics.job_started(replace(_job(), attempts=2), later)
    assert metrics.DISPATCH._sum.get() - before == pytest.approx(2.0)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("token", "header", "allowed"),
    [
        (None, None, True), ("s3cret", None, False), ("s3cret", "Bearer s3cret", True),
        ("s3cret", "bearer s3cret", True), ("s3cret", "Bearer wrong", False),
        ("s3cret", "s3cret", False), ("s3cret", "Basic s3cret", False),
    ],
)  # fmt: skip
def test_a_scrape_token_when_one_is_set(
    token: str | None, header: str | None, allowed: bool
) -> None:
    settings: Any = SimpleNamespace(metrics_token=SecretStr(token) if token else None)
    assert authorized(settings, header) is allowed
