"""The SSRF guard: every URL a user gives imagegate to call (webhooks now, image URLs
later) goes through here, at the API (refused with 422 ``unsafe_url``) and again at the
moment of connecting.

A URL passes when it is https (http only for allowlisted addresses, or when the
operator allows it), carries no credentials, and every address its host resolves to
is public: not loopback, private, link-local (cloud metadata at 169.254.169.254),
shared (CGNAT), unique-local, multicast, unspecified, reserved or documentation space,
nor an IPv6 address that embeds one of those (IPv4-mapped, IPv4-compatible, 6to4,
NAT64). ``IMAGEGATE_SSRF_ALLOWLIST`` (CIDRs) admits addresses the operator trusts.

Hosts are read the way they will be used: the URL is parsed by httpx, the client
that sends the request, and a numeric host is read with ``inet_aton``'s rules, which
the system resolver applies (``127.1``, ``2130706433``, ``0x7f000001`` and
``0177.0.0.1`` are all 127.0.0.1), so no spelling reaches an address unchecked.

DNS rebinding — a name that resolves to a public address when checked and to an
internal one when connecting — is closed by resolving once: ``GuardedTransport``
checks the request's URL, then dials one of the addresses it checked."""

from __future__ import annotations

import asyncio
import contextvars
import ipaddress
import re
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx
import idna

from imagegate.errors import UnsafeUrl
from imagegate.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# (host, port) → the addresses it resolves to, as strings.
Resolver = Callable[[str, int], Awaitable[list[str]]]

MAX_URL_CHARS = 2048
_HOSTNAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")
_NUMBER = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$")

_V4_RULES: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "an unspecified address"),
    ("127.0.0.0/8", "a loopback address"),
    ("10.0.0.0/8", "a private address (RFC 1918)"),
    ("172.16.0.0/12", "a private address (RFC 1918)"),
    ("192.168.0.0/16", "a private address (RFC 1918)"),
    ("169.254.0.0/16", "a link-local address (cloud metadata lives there)"),
    ("100.64.0.0/10", "a shared address (carrier-grade NAT)"),
    ("224.0.0.0/4", "a multicast address"),
    ("240.0.0.0/4", "a reserved address"),
    ("198.18.0.0/15", "a benchmarking address"),
)
_V6_RULES: tuple[tuple[str, str], ...] = (
    ("::/128", "an unspecified address"),
    ("::1/128", "a loopback address"),
    ("::/96", "an IPv4-compatible address"),
    ("fe80::/10", "a link-local address"),
    ("fec0::/10", "a site-local address"),
    ("fc00::/7", "a unique local address"),
    ("ff00::/8", "a multicast address"),
)
_V4_NETS = tuple((ipaddress.IPv4Network(n), why) for n, why in _V4_RULES)
_V6_NETS = tuple((ipaddress.IPv6Network(n), why) for n, why in _V6_RULES)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


@dataclass(frozen=True)
class UrlPolicy:
    allowlist: tuple[Network, ...] = ()
    allow_http: bool = False
    resolve_timeout_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        return cls(
            settings.ssrf_networks, settings.webhook_allow_http, settings.ssrf_resolve_timeout_s
        )

    def allows(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.allowlist)


@dataclass(frozen=True)
class CheckedUrl:
    """A URL that passed, and the addresses of its host that were checked."""

    url: str
    host: str  # as httpx sends it: lower case, IDNA-encoded
    port: int
    addresses: tuple[IPAddress, ...]


def loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``host`` read as ``inet_aton`` reads it (1 to 4 parts, each decimal, octal with a
    leading 0, or hex with 0x; the last part fills the remaining bytes), or ``None``
    if it is not a number at all."""
    parts = host.lower().split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMBER.match(p) for p in parts):
        return None
    try:
        values = [_inet_aton_part(p) for p in parts]
    except ValueError:
        return None
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        return None
    number = 0
    for value in head:
        number = number << 8 | value
    return ipaddress.IPv4Address(number << 8 * (4 - len(head)) | last)


def _inet_aton_part(part: str) -> int:
    if part.startswith("0x"):
        return int(part, 16)
    return int(part, 8 if len(part) > 1 and part[0] == "0" else 10)


def normalize(address: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (``::ffff:a.b.c.d``) is the IPv4 address the system dials."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def literal_address(host: str) -> IPAddress | None:
    """The address ``host`` spells, if it spells one (an IPv6 literal, with or without
    brackets, or any inet_aton form of IPv4, with one trailing dot allowed)."""
    host = host.strip("[]") if host.startswith("[") else host
    if ":" in host:
        try:
            return normalize(ipaddress.IPv6Address(host))
        except ValueError:
            return None
    return loose_ipv4(host.removesuffix("."))


def forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` may not be called, or ``None`` if it is a public address."""
    address = normalize(address)
    if isinstance(address, ipaddress.IPv4Address):
        for net, why in _V4_NETS:
            if address in net:
                return why
        return None if address.is_global else "not a public address"
    if address.scope_id:
        return "a scoped address"
    for net6, why in _V6_NETS:
        if address in net6:
            return why
    embedded = address.sixtofour or (
        ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None
    )
    if embedded is not None:
        inner = forbidden_reason(embedded)
        return f"an IPv6 address embedding {embedded}, {inner}" if inner else None
    return None if address.is_global else "not a public address"


async def system_resolver(host: str, port: int) -> list[str]:
    """getaddrinfo in a thread: the answers the system would connect to."""
    infos = await asyncio.to_thread(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


class UrlGuard:
    """Checks URLs against a ``UrlPolicy``; ``resolver`` is injectable for tests."""

    def __init__(self, policy: UrlPolicy, resolver: Resolver | None = None) -> None:
        self.policy = policy
        self._resolve = resolver or system_resolver

    async def check(self, url: str, field: str | None = None) -> CheckedUrl:
        """The checked URL with its addresses; raises ``UnsafeUrl`` naming ``field``."""

        def refuse(why: str) -> UnsafeUrl:
            return UnsafeUrl(f"{field + ': ' if field else ''}{why}", field=field)

        parsed = _parse(url, refuse)
        scheme = parsed.scheme
        if scheme not in ("http", "https"):
            raise refuse(f"only https URLs are allowed, not {scheme or 'no scheme'}")
        if parsed.userinfo:
            raise refuse("credentials in URLs are not allowed")
        host = parsed.raw_host.decode("ascii")
        port = parsed.port or (443 if scheme == "https" else 80)
        literal = literal_address(host)
        if literal is None and not _HOSTNAME.match(host.removesuffix(".")):
            raise refuse(f"{host!r} is not a valid host name")
        addresses = (literal,) if literal else await self._addresses(host, port, refuse)
        for address in addresses:
            why = None if self.policy.allows(address) else forbidden_reason(address)
            if why:
                raise refuse(f"{_spelled(host, address, resolved=literal is None)} is {why}")
        if scheme == "http" and not self.policy.allow_http:
            if not all(self.policy.allows(a) for a in addresses):
                raise refuse("use https: http is allowed only for allowlisted addresses")
        return CheckedUrl(url, host, port, addresses)

    async def _addresses(
        self, host: str, port: int, refuse: Callable[[str], UnsafeUrl]
    ) -> tuple[IPAddress, ...]:
        try:
            async with asyncio.timeout(self.policy.resolve_timeout_s):
                answers = await self._resolve(host, port)
        except TimeoutError:
            timeout = self.policy.resolve_timeout_s
            raise refuse(f"{host} did not resolve within {timeout:g} s") from None
        except OSError as error:
            raise refuse(f"{host} does not resolve ({error})") from None
        addresses: list[IPAddress] = []
        for answer in answers:
            try:
                address = normalize(ipaddress.ip_address(answer))
            except ValueError:
                raise refuse(f"{host} resolves to {answer!r}, which is not an address") from None
            if address not in addresses:
                addresses.append(address)
        if not addresses:
            raise refuse(f"{host} does not resolve")
        return tuple(addresses)


def _spelled(host: str, address: IPAddress, *, resolved: bool) -> str:
    if resolved:
        return f"{host} resolves to {address}, which"
    return host if host.strip("[]") == str(address) else f"{host} ({address})"


def _parse(url: str, refuse: Callable[[str], UnsafeUrl]) -> httpx.URL:
    if len(url) > MAX_URL_CHARS:
        raise refuse(f"URLs have at most {MAX_URL_CHARS} characters")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as error:
        # httpx refuses some spellings the system would accept (0177.0.0.1): say what
        # they are, so the refusal is not mistaken for a typo.
        try:
            host = urlsplit(url).hostname or ""
        except ValueError:
            host = ""
        address = literal_address(host) or literal_address(_uts46(host))
        why = forbidden_reason(address) if address else None
        if address is not None and why:
            raise refuse(f"{_spelled(host, address, resolved=False)} is {why}") from None
        raise refuse(f"not a valid URL ({error})") from None
    if not parsed.raw_host:
        raise refuse("the URL has no host")
    return parsed


def _uts46(host: str) -> str:
    """``host`` as a browser would map it (fullwidth digits and dots become ASCII)."""
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        return host


# The URL the current task's request was checked as: set by GuardedTransport, read by
# _PinnedBackend when the connection pool opens a connection for that request.
_CHECKED: contextvars.ContextVar[CheckedUrl | None] = contextvars.ContextVar(
    "imagegate_checked_url", default=None
)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that calls only checked addresses, and only the ones checked.

    httpx hands each request to an httpcore connection pool, which opens connections
    through a *network backend*: ``connect_tcp(host, port)``. Our backend never
    resolves: it dials an address the guard checked for this very request (passed
    along in a context variable, which follows the request through the pool in its
    task). Everything above the socket is untouched, so the request still names the
    original host: the Host header, TLS SNI and certificate verification all use the
    hostname, as they must. A pooled connection is reused only for the same scheme,
    host and port, and was itself opened to a checked address. Redirects are never
    followed (that is the client's setting) and environment proxies are ignored (a
    proxy would resolve the name again)."""

    def __init__(
        self,
        guard: UrlGuard,
        *,
        backend: httpcore.AsyncNetworkBackend | None = None,
        limits: httpx.Limits = httpx.Limits(max_connections=200, max_keepalive_connections=50),
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._guard = guard
        # httpx takes no network backend, so the pool it built is replaced by one that
        # has ours (same settings as httpx's own: http/1.1, no connect retries).
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(backend or httpcore.AnyIOBackend()),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        checked = await self._guard.check(str(request.url))
        token = _CHECKED.set(checked)
        try:
            return await super().handle_async_request(request)
        finally:
            _CHECKED.reset(token)


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        checked = _CHECKED.get()
        if checked is None or (checked.host, checked.port) != (host, port):
            # Fail closed: a connection nobody checked is never opened.
            raise UnsafeUrl(f"refused to connect to {host}:{port}: it was not checked")
        error: Exception | None = None
        for address in checked.addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as failed:
                error = failed
        assert error is not None
        raise error

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise UnsafeUrl("unix sockets are never called")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)
