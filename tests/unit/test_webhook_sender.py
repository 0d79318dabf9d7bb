"""The HTTP attempt with an injected transport and clocks, and a whole delivery driven
through it on a virtual clock: schedule, redirects, 410, Retry-After, timeouts. No
test waits for the schedule."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from imagegate.domain.webhooks import DEFAULT_SCHEDULE_S, DeliveryStatus, decide
from imagegate.net.ssrf import GuardedTransport, UrlGuard, UrlPolicy
from imagegate.webhooks.sender import AttemptResult, send

URL = "https://hooks.example.com/in"
START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class VirtualClock:
    """Wall and monotonic time that move only when told."""

    def __init__(self) -> None:
        self.elapsed = 0.0

    def now(self) -> datetime:
        return START + timedelta(seconds=self.elapsed)

    def monotonic(self) -> float:
        return self.elapsed


def scripted(*answers: httpx.Response | Exception, clock: VirtualClock | None = None,
             takes_s: float = 0.0) -> tuple[httpx.AsyncClient, list[httpx.Request]]:  # fmt: skip
    """A client whose transport gives ``answers`` in turn (each taking ``takes_s`` of
    virtual time), remembering the requests."""
    seen: list[httpx.Request] = []
    queue: Iterator[httpx.Response | Exception] = iter(answers)

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if clock is not None:
            clock.elapsed += takes_s
        answer = next(queue)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.AsyncClient(transport=httpx.MockTransport(handle)), seen


async def attempt(
    client: httpx.AsyncClient, clock: VirtualClock, timeout_s: float = 15
) -> AttemptResult:
    return await send(
        client, URL, {"webhook-id": "msg_1"}, b"{}", timeout_s=timeout_s,
        now=clock.now, monotonic=clock.monotonic,
    )  # fmt: skip


async def test_a_2xx_with_latency_and_snippet() -> None:
    clock = VirtualClock()
    client, seen = scripted(httpx.Response(200, content=b"ok" * 400), clock=clock, takes_s=0.25)
    result = await attempt(client, clock)
    assert (result.status_code, result.latency_ms, result.error) == (200, 250, None)
    assert result.response_snippet == ("ok" * 400)[:500]
    assert seen[0].content == b"{}" and seen[0].headers["webhook-id"] == "msg_1"


async def test_redirects_are_not_followed() -> None:
    client, seen = scripted(
        httpx.Response(301, headers={"location": "https://elsewhere.example.com/"}),
        httpx.Response(200),
    )
    result = await attempt(client, VirtualClock())
    assert result.status_code == 301
    assert result.error is not None and "https://elsewhere.example.com/" in result.error
    assert len(seen) == 1


@pytest.mark.parametrize(
    ("header", "expected"),
    [("120", 120.0), ("Tue, 01 Dec 2026 12:05:00 GMT", 300.0), ("later", None)],
)
async def test_retry_after_is_read_against_the_injected_clock(
    header: str, expected: float | None
) -> None:
    client, _ = scripted(httpx.Response(429, headers={"retry-after": header}))
    result = await attempt(client, VirtualClock())
    assert (result.status_code, result.retry_after_s) == (429, expected)


async def test_timeouts_and_refusals_are_failed_attempts_not_exceptions() -> None:
    client, _ = scripted(httpx.ReadTimeout("slow"), httpx.ConnectError("refused"))
    timed_out = await attempt(client, VirtualClock())
    assert (timed_out.status_code, timed_out.error) == (None, "no answer within 15 s")
    refused = await attempt(client, VirtualClock())
    assert refused.status_code is None
    assert refused.error == "request failed: refused"


async def test_the_timeout_bounds_the_whole_attempt() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    client = httpx.AsyncClient(transport=httpx.MockTransport(hang))
    result = await attempt(client, VirtualClock(), timeout_s=0.05)
    assert result.error == "no answer within 0.05 s"


async def test_an_unsafe_address_at_sending_time_is_a_failed_attempt() -> None:
    async def rebound(host: str, port: int) -> list[str]:
        return ["169.254.169.254"]

    client = httpx.AsyncClient(transport=GuardedTransport(UrlGuard(UrlPolicy(), rebound)))
    result = await attempt(client, VirtualClock())
    assert result.status_code is None
    assert result.error is not None and result.error.startswith("unsafe_url: ")
    assert "169.254.169.254" in result.error


async def deliver(
    client: httpx.AsyncClient, clock: VirtualClock, schedule: tuple[float, ...] = DEFAULT_SCHEDULE_S
) -> tuple[DeliveryStatus, list[float]]:
    """What the engine does for a delivery, on the virtual clock: attempt, decide,
    'sleep' (advance the clock). Returns how it ended and when each attempt began."""
    times, number = [], 0
    while True:
        number += 1
        times.append(clock.elapsed)
        result = await attempt(client, clock)
        decision = decide(
            attempt=number, schedule=schedule, status_code=result.status_code,
            retry_after_s=result.retry_after_s, retry_after_max_s=6 * 3600,
            jitter_key=f"dlv_1:{number}",
        )  # fmt: skip
        if decision.final:
            return decision.status, times
        clock.elapsed += decision.delay_s


def near(value: float, target: float) -> bool:
    return target * 0.9 - 1 <= value <= target * 1.1 + 1


async def test_a_delivery_follows_the_schedule_until_it_is_exhausted() -> None:
    clock = VirtualClock()
    client, seen = scripted(*[httpx.Response(500)] * 10, clock=clock, takes_s=0.1)
    status, times = await deliver(client, clock)
    assert status is DeliveryStatus.EXHAUSTED
    assert len(seen) == 10
    total = 0.0
    for at, delay in zip(times[1:], DEFAULT_SCHEDULE_S[1:], strict=True):
        total += delay
        assert near(at, total)
    assert near(times[-1], 24 * 3600 + 20 * 3600 + 14 * 3600 + 10 * 3600 + 5 * 3600 + 9905)


async def test_redirects_timeouts_then_success() -> None:
    clock = VirtualClock()
    client, seen = scripted(
        httpx.Response(302, headers={"location": "/elsewhere"}),
        httpx.ReadTimeout("slow"),
        httpx.Response(307, headers={"location": "/again"}),
        httpx.Response(204),
        clock=clock,
    )
    status, times = await deliver(client, clock)
    assert status is DeliveryStatus.DELIVERED
    assert [str(r.url) for r in seen] == [URL] * 4  # never the redirect targets
    assert near(times[3], 5 + 300 + 1800)


async def test_410_stops_the_delivery_at_once() -> None:
    clock = VirtualClock()
    client, seen = scripted(httpx.Response(503), httpx.Response(410), clock=clock)
    status, _ = await deliver(client, clock)
    assert status is DeliveryStatus.DISABLED
    assert len(seen) == 2


async def test_retry_after_holds_the_next_attempt_back() -> None:
    clock = VirtualClock()
    client, _ = scripted(
        httpx.Response(429, headers={"retry-after": "3600"}),
        httpx.Response(503, headers={"retry-after": "1"}),
        httpx.Response(200),
        clock=clock,
    )
    status, times = await deliver(client, clock)
    assert status is DeliveryStatus.DELIVERED
    assert times[1] == 3600  # asked for an hour, instead of the schedule's 5 s
    assert near(times[2] - times[1], 300)  # a shorter hint leaves the schedule as it is
