"""Rate limits on the wire: the ``RateLimit-*`` headers (draft-ietf-httpapi-ratelimit-
headers-07) and ``Retry-After``."""

from __future__ import annotations

from fastapi import Request
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.domain.rates import Allowance

STATE_KEY = "rate_limit"


def headers_for(allowance: Allowance) -> dict[str, str]:
    headers = {
        "RateLimit-Limit": str(allowance.limit),
        "RateLimit-Remaining": str(allowance.remaining),
        "RateLimit-Reset": str(allowance.reset_s),
        "RateLimit-Policy": f"{allowance.limit};w={allowance.window_s}",
    }
    if allowance.retry_after_s is not None:
        headers["Retry-After"] = str(allowance.retry_after_s)
    return headers


def remember(request: Request, allowance: Allowance | None) -> None:
    """Have this request's response carry ``allowance`` (see ``RateLimitHeaders``),
    unless a rate already counted for it has less left: a client reads the one
    headroom that binds it."""
    if allowance is None:
        return
    known: Allowance | None = getattr(request.state, STATE_KEY, None)
    if known is None or allowance.remaining <= known.remaining:
        setattr(request.state, STATE_KEY, allowance)


class RateLimitHeaders:
    """Writes the allowance the request remembered onto its response, whatever the
    response: a model, a raw ``JSONResponse`` or an error. A 429 keeps the headers of
    the rate that refused it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The same dict becomes ``request.state`` for the routes below.
        state = scope.setdefault("state", {})

        async def send_with_headers(message: Message) -> None:
            allowance = state.get(STATE_KEY)
            if message["type"] == "http.response.start" and allowance is not None:
                headers = MutableHeaders(scope=message)
                if "ratelimit-limit" not in headers:
                    headers.update(headers_for(allowance))
            await send(message)

        await self.app(scope, receive, send_with_headers)
