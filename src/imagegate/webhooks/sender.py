"""One HTTP attempt of a webhook, and nothing else: what came back, as data.

The client is injected (in production one whose transport is the SSRF guard's; in
tests any httpx transport), and so are the clocks, so an attempt's outcome, latency
and Retry-After are exact in tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from imagegate import __version__
from imagegate.domain.retry import parse_retry_after
from imagegate.errors import UnsafeUrl
from imagegate.net.ssrf import GuardedTransport, UrlGuard

SNIPPET_BYTES = 500
USER_AGENT = f"imagegate-webhooks/{__version__}"


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None  # None: no answer (refused, timed out, unsafe address)
    latency_ms: int
    response_snippet: str | None
    error: str | None
    retry_after_s: float | None = None


def guarded_client(guard: UrlGuard, timeout_s: float) -> httpx.AsyncClient:
    """The client deliveries go through: the guard's transport, no redirects, no
    proxies from the environment."""
    return httpx.AsyncClient(
        transport=GuardedTransport(guard),
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout_s),
    )


async def send(
    client: httpx.AsyncClient,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    timeout_s: float,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    monotonic: Callable[[], float] = time.monotonic,
) -> AttemptResult:
    """POST ``body`` to ``url``; never raises for what the receiver or the network
    does. ``timeout_s`` bounds the whole attempt, connection to the last byte read."""
    started = monotonic()

    def elapsed_ms() -> int:
        return max(0, round((monotonic() - started) * 1000))

    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("POST", url, content=body, headers=headers) as response:
                snippet = await _snippet(response)
    except UnsafeUrl as error:
        return AttemptResult(None, elapsed_ms(), None, f"unsafe_url: {error.detail}")
    except (TimeoutError, httpx.TimeoutException):
        return AttemptResult(None, elapsed_ms(), None, f"no answer within {timeout_s:g} s")
    except httpx.HTTPError as error:
        reason = str(error) or type(error).__name__
        return AttemptResult(None, elapsed_ms(), None, f"request failed: {reason}"[:500])
    status = response.status_code
    problem = None
    if 300 <= status < 400:
        where = response.headers.get("location", "nowhere")
        problem = f"redirect to {where} not followed: answer 2xx at the URL itself"[:500]
    elif not 200 <= status < 300:
        problem = f"HTTP {status}"
    retry_after = parse_retry_after(response.headers.get("retry-after"), now())
    return AttemptResult(status, elapsed_ms(), snippet, problem, retry_after)


async def _snippet(response: httpx.Response) -> str | None:
    """The first bytes of the answer; the rest is never read."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= SNIPPET_BYTES:
            break
    data = b"".join(chunks)[:SNIPPET_BYTES]
    return data.decode("utf-8", errors="replace") if data else None
