"""Rates, the in-process counter store on an injected clock, and the limiter's answers."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from structlog.testing import capture_logs

from imagegate.domain.rates import Allowance, Rate, parse_rate
from imagegate.domain.records import Principal
from imagegate.errors import RateLimited
from imagegate.rate_limits import Count, CountersUnavailable, MemoryCounterStore, RedisCounterStore
from imagegate.services import rate_limits
from imagegate.settings import Settings

# A window boundary for every window length used here (1 s, 60 s, 3600 s).
START = datetime(2030, 1, 1, tzinfo=UTC)
ALICE = Principal(key_id="key_a", workspace_id="ws_a", workspace_name="a", role="member")


class FakeClock:
    def __init__(self) -> None:
        self.at = START

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryCounterStore:
    return MemoryCounterStore(clock)


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("600/minute", Rate(600, 60)),
        ("5/second", Rate(5, 1)),
        (" 10 / hours ", Rate(10, 3600)),
        ("60/MINUTE", Rate(60, 60)),
        ("off", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_rate(text: str | None, rate: Rate | None) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["600", "0/minute", "-1/minute", "ten/minute", "5/day", "5/m"])
def test_parse_rate_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="N/second, N/minute or N/hour"):
        parse_rate(text)


def test_settings_check_rates_at_start_up() -> None:
    with pytest.raises(ValidationError, match="IMAGEGATE_RATE_LIMIT_JOBS: a rate is"):
        Settings(rate_limit_jobs="60 per minute")
    settings = Settings(rate_limit_requests="OFF", rate_limit_jobs="3/Minutes")
    assert settings.request_rate is None
    assert settings.job_rate == Rate(3, 60)
    assert settings.rate_limit_jobs == "3/minute"


async def test_admits_up_to_the_limit_and_does_not_count_refusals(
    store: MemoryCounterStore, clock: FakeClock
) -> None:
    accepted = [(await store.add("k", 1, 60, limit=3)).accepted for _ in range(5)]
    assert accepted == [True, True, True, False, False]
    count = await store.add("k", 0, 60)
    assert (count.previous, count.current, count.total) == (0, 3, 3)
    # Other keys, and the same key over another window, count apart.
    assert (await store.add("other", 1, 60, limit=3)).accepted
    assert (await store.add("k", 1, 3600, limit=3)).accepted


async def test_the_previous_window_fades_out(store: MemoryCounterStore, clock: FakeClock) -> None:
    for _ in range(10):
        await store.add("k", 1, 60, limit=10)
    clock.advance(60)  # the next window begins: all 10 still weigh fully
    assert not (await store.add("k", 1, 60, limit=10)).accepted
    clock.advance(15)  # a quarter in: 10 * 3/4 = 7.5 weigh, 8 rounded up
    count = await store.add("k", 0, 60)
    assert (count.previous, count.current, count.elapsed_ms, count.total) == (10, 0, 15_000, 8)
    for _ in range(2):
        assert (await store.add("k", 1, 60, limit=10)).accepted
    assert not (await store.add("k", 1, 60, limit=10)).accepted
    clock.advance(120)  # two windows on: nothing left
    assert (await store.add("k", 0, 60)).total == 0


async def test_add_is_general_for_quotas(store: MemoryCounterStore) -> None:
    # Quotas add amounts other than one, without a limit, and read back.
    assert (await store.add("credits", 40, 3600)).total == 40
    assert (await store.add("credits", 25, 3600)).total == 65
    assert not (await store.add("credits", 50, 3600, limit=100)).accepted
    assert (await store.add("credits", 35, 3600, limit=100)).total == 100


async def test_idle_counters_are_swept(
    store: MemoryCounterStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("imagegate.rate_limits.memory.SWEEP_EVERY", 2)
    await store.add("old", 1, 1)
    clock.advance(5)
    await store.add("new", 1, 1)
    assert [name for name, _ in store._slots] == ["new"]


async def test_retry_after_is_exact_to_the_second(
    store: MemoryCounterStore, clock: FakeClock
) -> None:
    """Waiting out Retry-After always finds room; a second less never does."""
    rng = random.Random(7)
    for trial in range(200):
        rate = Rate(rng.randint(1, 20), rng.choice([1, 60]))
        key = f"k{trial}"
        while True:
            try:
                await rate_limits._take(_rt(store, rate), key, rate, "hits")
            except RateLimited as refused:
                wait = refused.allowance.retry_after_s
                break
            clock.advance(rng.random() * rate.window_s / rate.limit)
        assert wait is not None and wait >= 1
        clock.advance(wait - 1)
        assert (await store.add(key, 0, rate.window_s)).total + 1 > rate.limit
        clock.advance(1)
        assert (await store.add(key, 1, rate.window_s, limit=rate.limit)).accepted


def test_allowance_while_there_is_room() -> None:
    count = Count(True, previous=0, current=4, elapsed_ms=20_500, window_ms=60_000)
    assert rate_limits.allowance_for(count, Rate(10, 60)) == Allowance(10, 60, 6, 40)


def test_allowance_when_refused() -> None:
    # 6 * 50/60 = 5 of the previous window's hits weigh, + 4 = 9; one more fits once
    # they weigh 3, 30 s into the window: 20 s on.
    count = Count(False, previous=6, current=4, elapsed_ms=10_000, window_ms=60_000)
    allowance = rate_limits.allowance_for(count, Rate(8, 60))
    assert allowance == Allowance(8, 60, 0, 20, retry_after_s=20)
    assert allowance.refused
    # The current window alone is full: it must end (in 40 s), then its 10 hits fade
    # to 9 (6 s into the next).
    count = Count(False, previous=0, current=10, elapsed_ms=20_000, window_ms=60_000)
    assert rate_limits.allowance_for(count, Rate(10, 60)).retry_after_s == 46


async def test_checks_count_per_key_and_per_workspace(store: MemoryCounterStore) -> None:
    rt = SimpleNamespace(
        counters=store, settings=SimpleNamespace(request_rate=Rate(2, 60), job_rate=Rate(1, 60))
    )
    bob = Principal(key_id="key_b", workspace_id="ws_a", workspace_name="a", role="member")
    assert await rate_limits.check_request(rt, ALICE) == Allowance(2, 60, 1, 60)
    assert (await rate_limits.check_request(rt, bob)).remaining == 1
    assert (await rate_limits.check_job(rt, ALICE)).remaining == 0
    with pytest.raises(RateLimited, match="1/minute jobs per workspace") as refused:
        await rate_limits.check_job(rt, bob)
    assert refused.value.code == "rate_limited"
    # Hits are assumed spread over their window, so a hit at a window's start is
    # remembered until the next one ends.
    assert refused.value.extra == {"retry_after": 120}


async def test_off_rates_count_nothing(store: MemoryCounterStore) -> None:
    rt = SimpleNamespace(counters=store, settings=SimpleNamespace(request_rate=None, job_rate=None))
    assert await rate_limits.check_request(rt, ALICE) is None
    assert store._slots == {}


class _DownScript:
    """A Redis script whose server is gone; counts the tries."""

    def __init__(self) -> None:
        self.tries = 0

    async def __call__(self, **_: Any) -> list[int]:
        self.tries += 1
        raise RedisConnectionError("Connection refused")


async def test_an_unreachable_redis_fails_open_and_is_not_hammered() -> None:
    script = _DownScript()
    client = SimpleNamespace(register_script=lambda _: script)
    now = [100.0]
    store = RedisCounterStore(client, monotonic=lambda: now[0])
    rt = SimpleNamespace(counters=store, settings=SimpleNamespace(request_rate=Rate(1, 60)))
    with capture_logs() as logs:
        for _ in range(3):
            assert await rate_limits.check_request(rt, ALICE) is None
        assert script.tries == 1  # then the store waits out its cooldown
        with pytest.raises(CountersUnavailable):
            await store.ping()
        now[0] += 5.1
        assert await rate_limits.check_request(rt, ALICE) is None
        assert script.tries == 2
    assert [(e["event"], e["log_level"]) for e in logs] == [("counters.unavailable", "warning")] * 2


def _rt(store: MemoryCounterStore, rate: Rate) -> Any:
    return SimpleNamespace(counters=store, settings=SimpleNamespace(request_rate=rate))
