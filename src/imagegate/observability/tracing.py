"""One trace id per job, from the request that created it to every log line, provider
call and webhook delivery about it, in whichever process runs it.

The W3C Trace Context (``traceparent``) is the carrier: taken from the create request
(or made anew), kept on the job row (``jobs.traceparent``), bound in structlog's
context variables while a process works on the job, and sent on every provider HTTP
call (providers/http.py reads :func:`outgoing` itself: adapters never see it) and on
webhook deliveries. This module needs nothing but the standard library; spans are
exported only when the ``tracing`` extra is installed and configured (otel.py)."""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import structlog

from imagegate.observability import otel

if TYPE_CHECKING:
    from imagegate.domain.records import JobRecord

# version-traceid-parentid-flags, lower-case hex (W3C Trace Context, level 1). A
# version other than 00 is read as 00 when it has at least these fields, as asked.
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO_TRACE, _ZERO_SPAN = "0" * 32, "0" * 16
MAX_HEADER_CHARS = 256
P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True)
class TraceContext:
    """Where the work in hand sits in its trace: the trace, and the span (ours, or the
    caller's) that what happens next descends from."""

    trace_id: str
    span_id: str
    sampled: bool = True

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{'01' if self.sampled else '00'}"

    def child(self) -> TraceContext:
        """A new span of the same trace (no exporter: an id for the next hop)."""
        return TraceContext(self.trace_id, _span_id(), self.sampled)


def parse(header: str | None) -> TraceContext | None:
    """The context a ``traceparent`` value names; ``None`` for anything malformed
    (the spec says: ignore it and start a new trace)."""
    if not header or len(header) > MAX_HEADER_CHARS:
        return None
    match = _TRACEPARENT.match(header.strip())
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest) or trace_id == _ZERO_TRACE:
        return None
    if span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, bool(int(flags, 16) & 1))


def new_trace() -> TraceContext:
    return TraceContext(secrets.token_hex(16), _span_id())


def _span_id() -> str:
    return secrets.token_hex(8)


def for_job(job: JobRecord) -> TraceContext:
    """The job's trace: the one it was created in; a job recorded before traces were
    kept gets one derived from its id, so every process still logs the same id."""
    found = parse(job.traceparent)
    if found is not None:
        return found
    digest = hashlib.sha256(job.id.encode()).hexdigest()
    return TraceContext(digest[:32], digest[32:48])


_current: ContextVar[TraceContext | None] = ContextVar("imagegate_trace", default=None)


def current() -> TraceContext | None:
    return _current.get()


def current_traceparent() -> str | None:
    """What a job created now keeps: the request's trace and span."""
    found = _current.get()
    return found.traceparent if found is not None else None


@contextlib.contextmanager
def span(name: str, parent: TraceContext | None, **attributes: str | int) -> Iterator[TraceContext]:
    """A span under ``parent`` (the root of a new trace without one), current until
    the block ends: log lines carry its trace id, outgoing calls name it as their
    parent. Exported when otel is configured."""
    with otel.span(name, parent, attributes) as ids:
        if ids is not None:
            here = TraceContext(ids[0], ids[1], parent.sampled if parent else True)
        elif parent is not None:
            here = parent.child()
        else:
            here = new_trace()
        token = _current.set(here)
        with structlog.contextvars.bound_contextvars(trace_id=here.trace_id):
            try:
                yield here
            finally:
                _current.reset(token)


# The span a decorated job step opens once it has read its job (``enter_job``).
_pending: ContextVar[tuple[str, list[tuple[str, contextlib.ExitStack]]] | None] = ContextVar(
    "imagegate_pending_span", default=None
)


def job_step(name: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate an async job step: the span named ``name`` that :func:`enter_job`
    opens inside it ends when the step returns. A step reads its job first, so the
    trace is known only then, and the step's body need not be indented under a
    ``with`` for it."""

    def wrap(step: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @wraps(step)
        async def traced(*args: P.args, **kwargs: P.kwargs) -> R:
            stacks: list[tuple[str, contextlib.ExitStack]] = []
            token = _pending.set((name, stacks))
            try:
                return await step(*args, **kwargs)
            finally:
                _pending.reset(token)
                for _, stack in reversed(stacks):
                    stack.close()

        return traced

    return wrap


def enter_job(job: JobRecord, **attributes: str | int) -> TraceContext:
    """Work on ``job`` from here on is in its trace: log lines carry its ``trace_id``
    and provider calls send its ``traceparent``. Inside a :func:`job_step` the span
    (and the binding) end with the step; elsewhere the binding lasts for the rest of
    the calling task (the engine runs each job step in a task of its own job)."""
    parent = for_job(job)
    pending = _pending.get()
    if pending is None:
        here = parent.child()
        _current.set(here)
        structlog.contextvars.bind_contextvars(trace_id=here.trace_id)
        return here
    name, stacks = pending
    stack = contextlib.ExitStack()
    stacks.append((job.id, stack))
    return stack.enter_context(span(name, parent, job_id=job.id, **attributes))


def outgoing() -> str | None:
    """The ``traceparent`` for a request about to leave (a child of the current
    span), or ``None`` outside any trace."""
    found = _current.get()
    return found.child().traceparent if found is not None else None


@contextlib.contextmanager
def client_call(name: str, **attributes: str | int) -> Iterator[str | None]:
    """A span for one outgoing request of the work in hand; yields the
    ``traceparent`` to send with it (``None`` outside any trace: nothing is sent)."""
    parent = _current.get()
    if parent is None:
        yield None
        return
    with span(name, parent, **attributes) as here:
        yield here.traceparent
