"""What every network adapter needs: one HTTP client per provider, bounded reads of
what providers answer, and one reading of HTTP failures into the provider error
taxonomy (providers/errors.py).

Every body a provider sends is read with a byte cap and a deadline (``ReadLimits``):
JSON and other API answers through :func:`call`, result images through
:func:`fetch_image`, which also checks the content type and follows redirects only
through the SSRF guard, one checked hop at a time.

Adapters add only what is particular to their provider: paths, fields, status values,
and how it says "moderated"."""

from __future__ import annotations

import asyncio
import contextlib
import io
import ipaddress
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
from PIL import Image

from imagegate.domain.retry import parse_retry_after
from imagegate.errors import UnsafeUrl
from imagegate.net.ssrf import CheckedUrl, GuardedTransport, Network, UrlGuard, UrlPolicy
from imagegate.observability import tracing
from imagegate.providers.base import GeneratedImage
from imagegate.providers.errors import (
    BadResponseError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    ResponseTooLargeError,
    RetryableProviderError,
    UnsafeResultUrlError,
)
from imagegate.providers.options import DEFAULT_MAX_CONNECTIONS

if TYPE_CHECKING:
    from imagegate.settings import Settings

# Statuses that say "try again later" rather than "this request is wrong".
_TRANSIENT = {408, 409, 425, 500, 502, 503, 504, 520, 521, 522, 523, 524, 529}
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_IMAGE_PIXELS = 8192 * 8192
MAX_REDIRECTS = 5
# An error body is read only this far: enough for the message, never a flood.
ERROR_BODY_BYTES = 16 * 1024
# What a result image may be served as. Object stores often say only octet-stream.
_IMAGE_TYPES = ("image/", "application/octet-stream", "binary/octet-stream")


@dataclass(frozen=True)
class ReadLimits:
    """How much of a provider's answer is read, and for how long (the
    ``IMAGEGATE_PROVIDER_*`` settings). ``allowlist``: the networks result downloads
    may reach besides public addresses and the provider's own ``base_url``."""

    max_image_bytes: int = MAX_IMAGE_BYTES
    max_json_bytes: int = MAX_JSON_BYTES
    download_timeout_s: float = 120.0
    max_redirects: int = MAX_REDIRECTS
    allowlist: tuple[Network, ...] = ()
    resolve_timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> ReadLimits:
        return cls(
            max_image_bytes=settings.provider_max_image_bytes,
            max_json_bytes=settings.provider_max_json_bytes,
            download_timeout_s=settings.provider_download_timeout_s,
            allowlist=settings.ssrf_networks,
            resolve_timeout_s=settings.ssrf_resolve_timeout_s,
        )

    def inline_images_cap(self, count: int) -> int:
        """The cap for an answer that carries ``count`` images itself (base64 in JSON
        grows them by a third), beside the usual JSON around them."""
        return max(1, count) * (self.max_image_bytes * 4 // 3 + 4) + self.max_json_bytes


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
    reads: ReadLimits = field(default_factory=ReadLimits)


class ProviderClient(httpx.AsyncClient):
    """An httpx client that knows the read limits of the provider it belongs to, so
    :func:`call` and :func:`fetch_image` need no extra argument to apply them."""

    def __init__(self, *, reads: ReadLimits, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.reads = reads

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        """Every request (each redirect hop too) in the job's trace: a span, and the
        ``traceparent`` header that tells the provider which."""
        with tracing.client_call("provider.http", method=request.method) as traceparent:
            if traceparent is not None:
                request.headers["traceparent"] = traceparent
            return await super().send(request, **kwargs)


def _reads(client: httpx.AsyncClient) -> ReadLimits:
    limits = getattr(client, "reads", None)
    return limits if isinstance(limits, ReadLimits) else ReadLimits()


def make_client(
    config: ProviderConfig,
    headers: dict[str, str] | None = None,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> httpx.AsyncClient:
    """A pooled client for one provider's API. Connect fast, read as long as the
    provider's slowest documented call; redirects are not followed (result URLs are
    fetched with :func:`fetch_image` through :func:`make_download_client`).
    ``max_connections`` is the adapter's ``options.max_connections``."""
    return ProviderClient(
        reads=config.reads,
        base_url=config.base_url or "",
        headers=headers or {},
        timeout=httpx.Timeout(config.timeout_s, connect=10.0),
        limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=100),
        follow_redirects=False,
    )


def make_download_client(
    config: ProviderConfig,
    headers: dict[str, str] | None = None,
    *,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> httpx.AsyncClient:
    """The client result images are fetched with: every request, each redirect hop
    included, goes through the SSRF guard (as webhooks do), which admits public
    addresses, ``IMAGEGATE_SSRF_ALLOWLIST`` and the provider's own ``base_url`` (the
    operator named it: a self-hosted ComfyUI or an emulator on loopback). Relative
    URLs resolve against ``base_url``."""
    policy = UrlPolicy(config.reads.allowlist, False, config.reads.resolve_timeout_s)
    guard = _ProviderGuard(policy, config.base_url)
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=100)
    return ProviderClient(
        reads=config.reads,
        base_url=config.base_url or "",
        headers=headers or {},
        transport=GuardedTransport(guard, limits=limits),
        timeout=httpx.Timeout(config.timeout_s, connect=10.0),
        follow_redirects=False,
        trust_env=False,
    )


class _ProviderGuard(UrlGuard):
    """The SSRF guard, trusting one more origin: the provider's configured base URL."""

    def __init__(self, policy: UrlPolicy, base_url: str | None) -> None:
        super().__init__(policy)
        self._trusted = _origin(httpx.URL(base_url)) if base_url else None

    async def check(self, url: str, field: str | None = None) -> CheckedUrl:
        parsed = httpx.URL(url)
        if self._trusted is None or _origin(parsed) != self._trusted:
            return await super().check(url, field)
        # The operator's own host: any address it resolves to is fine, but it is still
        # resolved once here and dialled as checked (the transport insists on that).
        trusted = UrlGuard(UrlPolicy(_ALL, True, self.policy.resolve_timeout_s), self._resolve)
        return await trusted.check(url, field)


_ALL: tuple[Network, ...] = (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


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
    """The response's JSON; a body that is not JSON is an unclassified provider error.
    (The body was read by :func:`call`, within the JSON cap.)"""
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
    max_bytes: int | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One request, its body read whole but at most ``max_bytes`` (the JSON cap
    unless the answer carries images) and within the download deadline; transport
    failures become retryable errors, a body over the cap ``ResponseTooLargeError``."""
    reads = _reads(client)
    cap = max_bytes or reads.max_json_bytes
    with _transport_failures(what, provider_job_id):
        async with client.stream(method, url, **kwargs) as response:
            async with _deadline(reads, what, provider_job_id):
                body = await read_capped(response, cap, what, provider_job_id=provider_job_id)
    return _with_body(response, body)


@contextlib.contextmanager
def _transport_failures(what: str, provider_job_id: str | None) -> Iterator[None]:
    """httpx's timeouts and transport failures, as the retryable errors they are."""
    try:
        yield
    except httpx.TimeoutException as error:
        raise RetryableProviderError(
            f"{what}: timed out ({type(error).__name__})", provider_job_id=provider_job_id
        ) from error
    except httpx.TransportError as error:
        raise RetryableProviderError(
            f"{what}: {type(error).__name__}: {error}", provider_job_id=provider_job_id
        ) from error


async def read_capped(
    response: httpx.Response, cap: int, what: str, *, provider_job_id: str | None = None
) -> bytes:
    """A streamed response's (decoded) body, refused as soon as it passes ``cap``
    bytes: a declared ``Content-Length`` over the cap before any byte is read, an
    endless or lying body at the first chunk past it. Memory stays within the cap."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise ResponseTooLargeError(
            f"{what}: answer of {int(declared)} bytes is over the {cap}-byte limit",
            provider_job_id=provider_job_id,
        )
    # One growing buffer, not a list of chunks joined at the end: getvalue() hands
    # over the buffer itself, so a body is held once, not twice.
    body = io.BytesIO()
    async for chunk in response.aiter_bytes():
        if body.tell() + len(chunk) > cap:
            raise ResponseTooLargeError(
                f"{what}: answer is over the {cap}-byte limit", provider_job_id=provider_job_id
            )
        body.write(chunk)
    return body.getvalue()


def _with_body(response: httpx.Response, body: bytes) -> httpx.Response:
    """A finished response holding ``body`` (already decoded: the encoding headers go,
    or it would be decoded twice)."""
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code, headers=headers, content=body, request=response.request
    )


@contextlib.asynccontextmanager
async def _deadline(
    reads: ReadLimits, what: str, provider_job_id: str | None
) -> AsyncIterator[None]:
    """The whole read, however slowly the body trickles, within the download deadline
    (httpx's read timeout is per chunk, so a byte a minute would never trip it)."""
    try:
        async with asyncio.timeout(reads.download_timeout_s):
            yield
    except TimeoutError:
        raise RetryableProviderError(
            f"{what}: the answer did not finish within {reads.download_timeout_s:g} s",
            provider_job_id=provider_job_id,
        ) from None


async def fetch_image(
    client: httpx.AsyncClient,
    url: str,
    what: str,
    *,
    provider_job_id: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    """Download a result image with a client from :func:`make_download_client`:
    streamed under the image cap and the download deadline, an image content type,
    redirects followed by hand (at most ``max_redirects``), each hop checked by the
    client's SSRF guard; ``headers`` (credentials) go to the first origin only. An
    expired or missing result URL is retryable: the images are gone, and only a new
    submission can make them again."""
    reads = _reads(client)
    async with _deadline(reads, what, provider_job_id):
        for _ in range(reads.max_redirects + 1):
            response, body = await _fetch_once(client, url, what, provider_job_id, headers)
            if body is not None:
                return body
            target = response.url.join(response.headers["location"])
            if _origin(target) != _origin(response.url):
                headers = None
            url = str(target)
    raise ProviderError(
        f"{what}: more than {reads.max_redirects} redirects", provider_job_id=provider_job_id
    )


async def _fetch_once(
    client: httpx.AsyncClient,
    url: str,
    what: str,
    provider_job_id: str | None,
    headers: dict[str, str] | None,
) -> tuple[httpx.Response, bytes | None]:
    """One hop: the image's bytes, or ``None`` with the redirect to follow."""
    reads = _reads(client)
    try:
        with _transport_failures(what, provider_job_id):
            async with client.stream("GET", url, headers=headers) as response:
                if response.is_redirect:
                    return response, None
                if response.status_code in {403, 404, 410}:
                    raise ResultExpiredError(
                        f"{what}: result URL answered {response.status_code}",
                        provider_job_id=provider_job_id,
                    )
                if response.status_code != 200:
                    failed = _with_body(response, await _error_body(response))
                    raise error_for(failed, what, provider_job_id=provider_job_id)
                kind = response.headers.get("content-type", "").strip().lower()
                if kind and not kind.startswith(_IMAGE_TYPES):
                    raise BadResponseError(
                        f"{what}: result URL answered {kind.split(';')[0]!r}, not an image",
                        provider_job_id=provider_job_id,
                    )
                return response, await read_capped(
                    response, reads.max_image_bytes, what, provider_job_id=provider_job_id
                )
    except UnsafeUrl as error:
        raise UnsafeResultUrlError(
            f"{what}: refused to fetch {_shown(url)}: {error.detail}",
            provider_job_id=provider_job_id,
        ) from error


async def _error_body(response: httpx.Response) -> bytes:
    """The start of an error answer, for its message; the rest is never read."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= ERROR_BODY_BYTES:
            break
    return b"".join(chunks)[:ERROR_BODY_BYTES]


def _shown(url: str) -> str:
    """A URL for a message: scheme, host and path, never the signed query."""
    parsed = httpx.URL(url)
    return str(parsed.copy_with(query=None, fragment=None))


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
