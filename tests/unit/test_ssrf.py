"""The SSRF guard: every spelling of an internal address is refused, allowlisted ones
are admitted, and the transport dials only the address it checked."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpcore
import httpx
import pytest

from imagegate.errors import UnsafeUrl
from imagegate.net.ssrf import (
    GuardedTransport,
    UrlGuard,
    UrlPolicy,
    forbidden_reason,
    literal_address,
    loose_ipv4,
)

LOOPBACK_SPELLINGS = [
    "https://127.0.0.1/",
    "https://127.1/",
    "https://2130706433/",
    "https://0x7f000001/",
    "https://0177.0.0.1/",
    "https://0x7f.1/",
    "https://127.0.0.1./",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[::1]/",
    "https://[::127.0.0.1]/",
    "https://[2002:7f00:1::]/",
    "https://[64:ff9b::127.0.0.1]/",
    "https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/",  # fullwidth digits
    "https://localhost/",
    "https://LOCALHOST./",
]
INTERNAL = [
    "https://169.254.169.254/latest/meta-data/",
    "https://[fe80::1]/",
    "https://10.0.0.1/",
    "https://172.16.5.4/",
    "https://192.168.0.1/",
    "https://100.64.0.1/",
    "https://[fc00::1]/",
    "https://[fd12:3456::1]/",
    "https://224.0.0.1/",
    "https://[ff02::1]/",
    "https://0.0.0.0/",
    "https://0/",
    "https://[::]/",
    "https://240.0.0.1/",
    "https://255.255.255.255/",
    "https://198.18.0.1/",
    "https://192.0.2.10/",
    "https://[2001:db8::1]/",
]
MALFORMED = [
    "ftp://example.com/",
    "file:///etc/passwd",
    "gopher://example.com/",
    "https://user:secret@example.com/hook",
    "https://@/",
    "https://127%2e0%2e0%2e1/",
    "not a url",
    "https://" + "a" * 3000 + ".com/",
]


def resolver(*answers: list[str]) -> Any:
    """A resolver that gives each answer in turn (the last one thereafter)."""
    calls: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        return answers[min(len(calls), len(answers)) - 1]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


PUBLIC = resolver(["93.184.215.14"])


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS + INTERNAL)
async def test_internal_addresses_are_refused_however_spelled(url: str) -> None:
    guard = UrlGuard(UrlPolicy(), resolver(["127.0.0.1", "::1"]))
    with pytest.raises(UnsafeUrl) as refused:
        await guard.check(url, field="url")
    assert refused.value.code == "unsafe_url"
    assert refused.value.extra["field"] == "url"


@pytest.mark.parametrize("url", MALFORMED)
async def test_malformed_and_non_https_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        await UrlGuard(UrlPolicy(), PUBLIC).check(url)


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("127.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("10.1", "10.0.0.1"),
        ("192.168.257", "192.168.1.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "127.0.0.1"),
        ("::ffff:a9fe:a9fe", "169.254.169.254"),
    ],
)
def test_numeric_hosts_read_as_inet_aton_reads_them(host: str, address: str) -> None:
    assert literal_address(host) == ipaddress.ip_address(address)


@pytest.mark.parametrize("host", ["example.com", "1.2.3.4.5", "256.1.1.1", "0x1g", "1e3", ""])
def test_names_and_out_of_range_numbers_are_not_addresses(host: str) -> None:
    assert loose_ipv4(host) is None


def test_reasons_name_the_range() -> None:
    reason = forbidden_reason(ipaddress.ip_address("169.254.169.254"))
    assert reason is not None and "link-local" in reason
    assert "shared" in str(forbidden_reason(ipaddress.ip_address("100.100.0.1")))
    assert "embedding 10.0.0.1" in str(forbidden_reason(ipaddress.ip_address("2002:a00:1::")))
    assert forbidden_reason(ipaddress.ip_address("8.8.8.8")) is None
    assert forbidden_reason(ipaddress.ip_address("2606:4700:4700::1111")) is None


async def test_public_https_passes_and_keeps_its_addresses() -> None:
    checked = await UrlGuard(UrlPolicy(), PUBLIC).check("https://Hooks.Example.com/x?y=1")
    assert checked.host == "hooks.example.com"
    assert checked.port == 443
    assert checked.addresses == (ipaddress.ip_address("93.184.215.14"),)


async def test_a_name_with_any_internal_address_is_refused() -> None:
    guard = UrlGuard(UrlPolicy(), resolver(["93.184.215.14", "10.0.0.7"]))
    with pytest.raises(UnsafeUrl, match=r"resolves to 10\.0\.0\.7"):
        await guard.check("https://mixed.example.com/")


async def test_unresolvable_names_are_refused() -> None:
    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(UnsafeUrl, match="does not resolve"):
        await UrlGuard(UrlPolicy(), nxdomain).check("https://nope.example.com/")


async def test_http_needs_the_allowlist_or_the_setting() -> None:
    with pytest.raises(UnsafeUrl, match="use https"):
        await UrlGuard(UrlPolicy(), PUBLIC).check("http://hooks.example.com/")
    await UrlGuard(UrlPolicy(allow_http=True), PUBLIC).check("http://hooks.example.com/")


async def test_allowlisted_loopback_is_admitted_over_http() -> None:
    policy = UrlPolicy(allowlist=(ipaddress.ip_network("127.0.0.0/8"),))
    guard = UrlGuard(policy, resolver(["127.0.0.1"]))
    for url in ("http://127.0.0.1:8080/hook", "http://127.1:8080/", "https://[::ffff:127.0.0.1]/"):
        checked = await guard.check(url)
        assert checked.addresses == (ipaddress.ip_address("127.0.0.1"),)
    # The allowlist admits what it lists, nothing more.
    with pytest.raises(UnsafeUrl):
        await guard.check("http://10.0.0.1/")
    with pytest.raises(UnsafeUrl):
        await UrlGuard(policy, resolver(["127.0.0.1", "::1"])).check("http://localhost:8080/")


class RecordingBackend(httpcore.AsyncMockBackend):
    """Answers every connection with a canned 200, remembering where it dialed."""

    def __init__(self) -> None:
        super().__init__([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"] * 10)
        self.dialed: list[tuple[str, int]] = []

    async def connect_tcp(self, host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        self.dialed.append((host, port))
        return await super().connect_tcp(host, port, *args, **kwargs)


def rebinding() -> Any:
    """A name that answers a public address first and the metadata service after."""
    return resolver(["93.184.215.14"], ["169.254.169.254"])


async def test_the_transport_dials_the_address_it_checked_with_the_original_host() -> None:
    backend, resolve = RecordingBackend(), rebinding()
    guard = UrlGuard(UrlPolicy(allow_http=True), resolve)
    async with httpx.AsyncClient(transport=GuardedTransport(guard, backend=backend)) as client:
        response = await client.post("http://hooks.example.com:8080/in", content=b"{}")
    assert response.status_code == 200
    assert backend.dialed == [("93.184.215.14", 8080)]
    assert resolve.calls == ["hooks.example.com"]  # resolved once: no second lookup
    assert response.request.headers["host"] == "hooks.example.com:8080"


async def test_a_rebound_name_is_refused_before_any_connection() -> None:
    backend, resolve = RecordingBackend(), rebinding()
    guard = UrlGuard(UrlPolicy(allow_http=True), resolve)
    transport = GuardedTransport(
        guard, backend=backend, limits=httpx.Limits(max_keepalive_connections=0)
    )
    async with httpx.AsyncClient(transport=transport) as client:
        assert (await client.get("http://hooks.example.com/")).status_code == 200
        with pytest.raises(UnsafeUrl, match=r"169\.254\.169\.254"):
            await client.get("http://hooks.example.com/")
    assert backend.dialed == [("93.184.215.14", 80)]


async def test_the_transport_refuses_unchecked_urls_and_follows_no_proxy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:3128")
    backend = RecordingBackend()
    guard = UrlGuard(UrlPolicy(), resolver(["10.0.0.1"]))
    async with httpx.AsyncClient(transport=GuardedTransport(guard, backend=backend)) as client:
        with pytest.raises(UnsafeUrl):
            await client.get("https://internal.example.com/")
        with pytest.raises(UnsafeUrl):
            await client.get("https://127.1/")
    assert backend.dialed == []
