"""What every network adapter needs: one HTTP client per provider, and one reading of
HTTP failures into the provider error taxonomy (providers/errors.py).

Adapters add only what is particular to their provider: paths, fields, status values,
and how it says "moderated"."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from PIL import Image

from imagegate.domain.retry import parse_retry_after
from imagegate.providers.base import GeneratedImage
from imagegate.providers.errors import (
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    RetryableProviderError,
)
from imagegate.providers.options import DEFAULT_MAX_CONNECTIONS

# Statuses that say "try again later" rather than "this request is wrong".
_TRANSIENT = {408, 409, 425, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529}
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_IMAGE_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class ProviderConfig:
    """One ``[providers.<name>]`` table of the configuration file, resolved."""

    name: str
    type: str
    base_url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    models: tuple[str, ...] = ()
    timeout_s: float = 60.0
    poll_interval_s: float = 1.0
    # The file's ``options`` table, as written: each adapter checks it against its own
    # model (providers/options.py) when it is built.
    options: Mapping[str, Any] = field(default_factory=dict)


def make_client(
    config: ProviderConfig,
    headers: dict[str, str] | None = None,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> httpx.AsyncClient:
    """A pooled client for one provider. Connect fast, read as long as the provider's
    slowest documented call; redirects are not followed (result URLs are fetched
    with :func:`fetch_image`, which follows them). ``max_connections`` is the
    adapter's ``options.max_connections`` (providers/options.py)."""
    return httpx.AsyncClient(
        base_url=config.base_url or "",
        headers=headers or {},
        timeout=httpx.Timeout(config.timeout_s, connect=10.0),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=100),
        follow_redirects=False,
    )


def retry_after_s(response: httpx.Response) -> float | None:
    """The answer's ``Retry-After`` in seconds, if it gave one."""
    return parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))


def error_for(
    response: httpx.Response, what: str, *, provider_job_id: str | None = None
) -> ProviderError:
    """The taxonomy's reading of a non-2xx answer. Moderation is provider-specific
    and must be recognised by the adapter before it calls this."""
    detail = f"{what}: HTTP {response.status_code} {snippet(response)}"
    status = response.status_code
    if status == 429:
        return RateLimitedError(
            detail, retry_after=retry_after_s(response), provider_job_id=provider_job_id
        )
    if status in _TRANSIENT or status >= 500:
        return RetryableProviderError(detail, provider_job_id=provider_job_id)
    if 400 <= status < 500:
        return PermanentProviderError(detail, provider_job_id=provider_job_id)
    # 1xx/3xx where a final answer was expected: unclassified, retried a bounded number.
    return ProviderError(detail, provider_job_id=provider_job_id)


def snippet(response: httpx.Response, limit: int = 300) -> str:
    """The start of a body, for error messages: enough to diagnose, never a flood."""
    try:
        text = response.text
    except (httpx.ResponseNotRead, UnicodeDecodeError):
        return ""
    return " ".join(text.split())[:limit]


def json_body(response: httpx.Response, what: str) -> Any:
    """The response's JSON; a body that is not JSON is an unclassified provider error."""
    try:
        return response.json()
    except ValueError as error:
        raise ProviderError(f"{what}: malformed JSON body: {snippet(response)!r}") from error


async def call(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    what: str,
    *,
    provider_job_id: str | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One request; transport failures become retryable errors."""
    try:
        return await client.request(method, url, **kwargs)
    except httpx.TimeoutException as error:
        raise RetryableProviderError(
            f"{what}: timed out ({type(error).__name__})", provider_job_id=provider_job_id
        ) from error
    except httpx.TransportError as error:
        raise RetryableProviderError(
            f"{what}: {type(error).__name__}: {error}", provider_job_id=provider_job_id
        ) from error


async def fetch_image(
    client: httpx.AsyncClient, url: str, what: str, *, provider_job_id: str | None = None
) -> bytes:
    """Download a result image. An expired or missing result URL is retryable: the
    images are gone, and only a new submission can make them again."""
    response = await call(
        client, "GET", url, what, provider_job_id=provider_job_id, follow_redirects=True
    )
    if response.status_code in {403, 404, 410}:
        raise ResultExpiredError(
            f"{what}: result URL answered {response.status_code}", provider_job_id=provider_job_id
        )
    if response.status_code != 200:
        raise error_for(response, what, provider_job_id=provider_job_id)
    if len(response.content) > MAX_IMAGE_BYTES:
        raise ProviderError(f"{what}: image larger than {MAX_IMAGE_BYTES} bytes")
    return response.content


class ResultExpiredError(RetryableProviderError):
    code = "provider_result_expired"


def decode_image(data: bytes, seed: int, what: str) -> GeneratedImage:
    """Check that ``data`` is an image we can store (and how big it is)."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ProviderError(f"{what}: image of {width}x{height} is too large")
            image.verify()
            fmt = (image.format or "png").lower()
    except ProviderError:
        raise
    except Exception as error:
        raise ProviderError(f"{what}: not a readable image ({error})") from error
    content_type = {"jpeg": "image/jpeg", "webp": "image/webp"}.get(fmt, f"image/{fmt}")
    return GeneratedImage(data, content_type, width, height, seed)


async def poll_until(
    check: Callable[[], Awaitable[Any | None]],
    *,
    interval_s: float,
    timeout_s: float,
    what: str,
    provider_job_id: str | None = None,
) -> Any:
    """Call ``check`` every ``interval_s`` until it returns something other than
    ``None``; a provider job still unfinished after ``timeout_s`` is retryable and
    resumable (the next attempt polls the same job)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = await check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise RetryableProviderError(
                f"{what}: not finished after {timeout_s:g} s",
                provider_job_id=provider_job_id,
                resumable=True,
            )
        await asyncio.sleep(interval_s)
