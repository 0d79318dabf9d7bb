"""Every request in a trace, and counted: the ``traceparent`` it came with (or a new
trace) is current while it runs, so its log lines and the jobs it creates carry the
trace id; its route template, status and time go to the HTTP series."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.observability import metrics, tracing

UNMATCHED = "unmatched"  # no route: one label for every unknown path


class Observe:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = _header(scope, b"traceparent")
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before it answers
        answered: float | None = None

        async def observed_send(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = int(message["status"]), time.perf_counter()
            await send(message)

        route = UNMATCHED
        try:
            with tracing.span("http.request", tracing.parse(header), method=scope["method"]):
                try:
                    await self.app(scope, receive, observed_send)
                finally:
                    # The router writes the matched route into the scope it was given.
                    matched = scope.get("route")
                    route = str(getattr(matched, "path", UNMATCHED))
        finally:
            elapsed = (answered or time.perf_counter()) - started
            metrics.http_request(scope["method"], route, status, elapsed)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None
