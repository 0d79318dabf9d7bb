"""Optional OpenTelemetry export of imagegate's spans (the ``tracing`` extra).

Off unless the extra is installed *and* an OTLP endpoint is configured
(``IMAGEGATE_OTLP_ENDPOINT``, or OpenTelemetry's own ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``). The spans carry the trace ids tracing.py
keeps with each job, so the trace an operator finds in a log line is the one the
collector shows. Without the extra, :func:`span` only makes an id."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from imagegate.observability.logging import get_logger

if TYPE_CHECKING:
    from imagegate.observability.tracing import TraceContext

log = get_logger("imagegate.tracing")
_ENV = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# The tracer, once configured; ``Any`` because the SDK is an optional import.
_tracer: Any = None
_provider: Any = None


def configure(endpoint: str | None, service: str) -> bool:
    """Export spans to ``endpoint`` (else the OTEL_* variables' endpoint) over OTLP
    HTTP; False, and nothing changes, without an endpoint or without the extra."""
    if not endpoint and not any(os.environ.get(name) for name in _ENV):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(
            "tracing.unavailable",
            reason="an OTLP endpoint is set but the tracing extra is not installed "
            "(pip install 'imagegate[tracing]')",
        )
        return False
    if endpoint:
        # The exporter's own endpoint argument is the full traces URL.
        exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    else:
        exporter = OTLPSpanExporter()
    use(BatchSpanProcessor(exporter), service)
    log.info("tracing.exporting", endpoint=endpoint or "from OTEL_* variables", service=service)
    return True


def use(processor: Any, service: str = "imagegate") -> None:
    """Send spans through ``processor`` (an SDK span processor; tests pass one over
    the in-memory exporter)."""
    global _tracer, _provider
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    # A provider of our own, not the global one: DBOS and libraries that look at the
    # global provider keep their own behaviour.
    _provider = TracerProvider(resource=Resource.create({"service.name": service}))
    _provider.add_span_processor(processor)
    _tracer = _provider.get_tracer("imagegate")


def shutdown() -> None:
    """Flush and stop the exporter (at process exit; bounded by the SDK's timeouts)."""
    global _tracer, _provider
    if _provider is not None:
        _provider.shutdown()
    _tracer = _provider = None


@contextlib.contextmanager
def span(
    name: str, parent: TraceContext | None, attributes: Mapping[str, str | int]
) -> Iterator[tuple[str, str] | None]:
    """An exported span under ``parent`` (a new trace's root without one); yields its
    (trace id, span id), or ``None`` when nothing is exported: the caller makes ids."""
    if _tracer is None:
        yield None
        return
    from opentelemetry import trace

    context = None
    if parent is not None:
        remote = trace.SpanContext(
            trace_id=int(parent.trace_id, 16),
            span_id=int(parent.span_id, 16),
            is_remote=True,
            trace_flags=trace.TraceFlags(1 if parent.sampled else 0),
        )
        context = trace.set_span_in_context(trace.NonRecordingSpan(remote))
    with _tracer.start_as_current_span(name, context=context, attributes=dict(attributes)) as s:
        ids = s.get_span_context()
        yield format(ids.trace_id, "032x"), format(ids.span_id, "016x")
