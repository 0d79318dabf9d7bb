"""Reject oversized request bodies before anything reads them: one cap for every
route, and a larger one for the few paths that take files (uploads). The facades of
other protocols (/mj, /v1) answer in their own shapes (``answers``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imagegate.api.errors import problem

# A protocol's answer to a body over ``cap`` bytes.
TooLarge = Callable[[int], Response]


class BodySizeLimit:
    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        per_path: Mapping[str, int] | None = None,
        answers: Mapping[str, TooLarge] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Exact paths (no templates) with a cap of their own.
        self.per_path = dict(per_path or {})
        # Path prefixes ("/mj/") whose refusal is not imagegate's problem document.
        self.answers = dict(answers or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.per_path.get(scope["path"], self.max_bytes)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit():
            # The server holds the client to the length it declared: nothing longer
            # reaches the app, so the declared length alone decides.
            if int(declared) > cap:
                await self._reject(cap, scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        # No length declared (a chunked body): read it here, up to the cap, before the
        # app sees any of it. Raising from inside the app's read instead would reach
        # FastAPI's body parser, which answers any read error with a 400.
        buffered = await _read_capped(receive, cap)
        if buffered is None:
            await self._reject(cap, scope, receive, send)
            return
        await self.app(scope, _replay(buffered, receive), send)

    async def _reject(self, cap: int, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope["path"])
        shaped = next((a for p, a in self.answers.items() if path.startswith(p)), None)
        response = shaped(cap) if shaped is not None else problem(
            413,
            "payload_too_large",
            "Payload too large",
            f"Request bodies are limited to {cap} bytes.",
        )  # fmt: skip
        await response(scope, receive, send)


async def _read_capped(receive: Receive, max_bytes: int) -> list[Message] | None:
    """The request's messages up to the end of its body; None once it passes the cap
    (at most ``max_bytes`` plus one chunk is ever held)."""
    messages: list[Message] = []
    seen = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages  # the client left: let the app see the disconnect
        seen += len(message.get("body", b""))
        if seen > max_bytes:
            return None
        if not message.get("more_body", False):
            return messages


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        # Later reads (a streaming response waiting for the disconnect) go to the server.
        return pending.pop(0) if pending else await receive()

    return replayed
