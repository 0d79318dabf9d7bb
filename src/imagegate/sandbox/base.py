"""What every emulator shares: fault injection, submission counts, the control
endpoints under ``/_sandbox``, and real images to return.

Faults are chosen two ways. Globally, ``POST /_sandbox/faults`` with a JSON body of
:class:`FaultSettings` fields applies to every later request (``DELETE`` clears).
Per request, a marker in the prompt, which is how a test reaches an emulator through
imagegate: ``sandbox:429``, ``sandbox:500``, ``sandbox:503``, ``sandbox:moderate``,
``sandbox:malformed``, ``sandbox:timeout``, ``sandbox:expired``, ``sandbox:fail``
(the provider's job ends in its failed state), ``sandbox:slow`` (5 s of latency)."""

from __future__ import annotations

import asyncio
import functools
import random
import re
from collections import Counter, deque
from dataclasses import dataclass, field, replace
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from imagegate.domain.params import OutputFormat
from imagegate.imaging import encode
from imagegate.render import render_image

_MARKER = re.compile(r"sandbox:(\w+)")
# A request told to time out hangs this long: longer than any client should wait.
HANG_S = 3600.0
TRACE_IDS_KEPT = 1000


class FaultSettings(BaseModel):
    """Global faults. Rates are probabilities per submission; ``error_count`` fails
    exactly the next N submissions (deterministic, for tests)."""

    latency_ms: int = Field(default=0, ge=0)
    error_status: int | None = Field(default=None, ge=400, le=599)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    error_count: int = Field(default=0, ge=0)
    retry_after_s: int | None = Field(default=None, ge=0)
    timeout: bool = False
    malformed: bool = False
    moderation: bool = False
    expire_results: bool = False
    fail_jobs: bool = False
    # How long an asynchronous provider's job takes before it is ready.
    job_duration_ms: int = Field(default=0, ge=0)


@dataclass
class Decision:
    """What to do to one submission."""

    status: int | None = None
    retry_after_s: int | None = None
    timeout: bool = False
    malformed: bool = False
    moderated: bool = False
    expired: bool = False
    fail_job: bool = False
    latency_s: float = 0.0

    @property
    def any(self) -> bool:
        return self != Decision(latency_s=self.latency_s)


@dataclass
class Sandbox:
    """One emulator's state: its faults, what it has seen, and its jobs."""

    provider: str
    faults: FaultSettings = field(default_factory=FaultSettings)
    stats: Counter[str] = field(default_factory=Counter)
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Seeded: an error rate gives the same sequence of failures on every run.
    in_flight: int = 0
    # The trace ids of the latest requests' ``traceparent`` headers, newest last: what
    # a test checks imagegate propagated to its provider.
    trace_ids: deque[str] = field(default_factory=lambda: deque(maxlen=TRACE_IDS_KEPT))
    rng: random.Random = field(default_factory=lambda: random.Random(0))  # noqa: S311

    def decide(self, prompt: str | None, *, submission: bool = True) -> Decision:
        """The faults for a request carrying ``prompt`` (markers win over settings)."""
        f = self.faults
        decision = Decision(latency_s=f.latency_ms / 1000, retry_after_s=f.retry_after_s)
        if submission:
            status = f.error_status or 500
            if f.error_count > 0:
                self.faults = f.model_copy(update={"error_count": f.error_count - 1})
                decision.status = status
            elif f.error_rate and self.rng.random() < f.error_rate:
                decision.status = status
            decision = replace(
                decision,
                timeout=f.timeout,
                malformed=f.malformed,
                moderated=f.moderation,
                expired=f.expire_results,
                fail_job=f.fail_jobs,
            )
        for marker in _MARKER.findall(prompt or ""):
            _apply_marker(decision, marker.lower())
        if decision.any:
            self.stats["faults_injected"] += 1
        return decision

    async def delay(self, decision: Decision) -> None:
        if decision.timeout:
            await asyncio.sleep(HANG_S)
        if decision.latency_s:
            await asyncio.sleep(decision.latency_s)

    def count(self, what: str) -> None:
        self.stats[what] += 1

    def reset(self) -> None:
        self.faults = FaultSettings()
        self.stats.clear()
        self.jobs.clear()
        self.trace_ids.clear()
        self.rng = random.Random(0)  # noqa: S311


def _apply_marker(decision: Decision, marker: str) -> None:
    if marker.isdigit():
        decision.status = int(marker)
        if decision.status == 429 and decision.retry_after_s is None:
            decision.retry_after_s = 1
    elif marker == "moderate":
        decision.moderated = True
    elif marker == "malformed":
        decision.malformed = True
    elif marker == "timeout":
        decision.timeout = True
    elif marker == "expired":
        decision.expired = True
    elif marker == "fail":
        decision.fail_job = True
    elif marker == "slow":
        decision.latency_s += 5.0


def error_response(decision: Decision, body: dict[str, Any]) -> Response:
    """The injected HTTP error, with ``Retry-After`` when one is set."""
    assert decision.status is not None
    headers = {"Retry-After": str(decision.retry_after_s)} if decision.retry_after_s else {}
    return JSONResponse(body, status_code=decision.status, headers=headers)


def malformed_response(media_type: str = "application/json") -> Response:
    """A 200 whose body is not what the API documents."""
    return Response('{"this is": not json', media_type=media_type)


async def render(
    prompt: str, width: int, height: int, seed: int, fmt: OutputFormat = OutputFormat.PNG
) -> bytes:
    """A real image for the emulated provider to return (off the event loop)."""
    return await asyncio.to_thread(_draw, prompt, width, height, seed, fmt)


# The renderer is deterministic, so a load test that repeats a request costs the
# emulator one drawing, not one per request.
@functools.lru_cache(maxsize=64)
def _draw(prompt: str, width: int, height: int, seed: int, fmt: OutputFormat) -> bytes:
    return encode(render_image(prompt, None, "none", seed, width, height), fmt)


def add_control_routes(app: FastAPI, sandbox: Sandbox) -> None:
    """``/_sandbox/stats``, ``/_sandbox/faults`` and ``/_sandbox/reset``."""

    @app.get("/_sandbox/stats")
    async def stats() -> dict[str, Any]:
        return {
            "provider": sandbox.provider, **dict(sandbox.stats), "jobs": len(sandbox.jobs),
            "trace_ids": list(sandbox.trace_ids),
        }  # fmt: skip

    @app.get("/_sandbox/faults")
    async def get_faults() -> dict[str, Any]:
        return sandbox.faults.model_dump()

    @app.post("/_sandbox/faults")
    async def set_faults(settings: FaultSettings) -> dict[str, Any]:
        sandbox.faults = settings
        return sandbox.faults.model_dump()

    @app.delete("/_sandbox/faults")
    async def clear_faults() -> dict[str, Any]:
        sandbox.faults = FaultSettings()
        return sandbox.faults.model_dump()

    @app.post("/_sandbox/reset")
    async def reset() -> dict[str, str]:
        sandbox.reset()
        return {"status": "reset"}

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Response:
        if request.url.path.startswith("/_sandbox"):
            response: Response = await call_next(request)
            return response
        # Requests at once, and the most ever: a client's concurrency limit, checked.
        sandbox.count("requests")
        traceparent = request.headers.get("traceparent", "")
        if traceparent.count("-") == 3:
            sandbox.trace_ids.append(traceparent.split("-")[1])
        sandbox.in_flight += 1
        sandbox.stats["max_in_flight"] = max(sandbox.stats["max_in_flight"], sandbox.in_flight)
        try:
            response = await call_next(request)
        finally:
            sandbox.in_flight -= 1
        return response


async def hang(request: Request, sandbox: Sandbox, status_code: int = 504) -> Response:
    """An injected timeout: no answer until the client gives up (a handler sleeping a
    fixed hour instead would keep a stopping server waiting for it). ``disconnected``
    in the stats counts the clients that gave up: a test's proof that a call in flight
    was abandoned."""
    # With the body read, the next ASGI message is the disconnect; receive() blocks for
    # it. (Request.is_disconnected() polls, and loses it under an HTTP middleware.)
    while (await request.receive())["type"] != "http.disconnect":
        pass
    sandbox.count("disconnected")
    return Response(status_code=status_code)
