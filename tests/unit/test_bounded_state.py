"""State that must stay bounded however long a process runs: what an SSE stream
remembers of the ids it sent, and the ``fastest`` routing cache."""

from __future__ import annotations

import random

from imagegate.domain.routing import nearest_rank, percentile
from imagegate.services.event_feed import LOOKBACK_IDS, SentIds
from imagegate.ttl_cache import TtlCache


def test_a_long_streams_memory_of_sent_ids_stays_bounded() -> None:
    sent = SentIds(after_id=0)
    high = 0
    for event_id in range(1, 1_000_001):
        assert sent.first_time(event_id)
        high = event_id
        assert len(sent) <= sent.window
    assert sent.window == 2 * LOOKBACK_IDS
    assert len(sent) == sent.window
    assert sent.high == high
    assert sent.floor == high - sent.window


def test_each_id_is_sent_once_even_when_rows_commit_out_of_order() -> None:
    # A backlog read 1..100, then the live feed re-delivers 60..120 and a late row 55
    # that committed after 100 was read (PostgreSQL assigns ids before commit).
    sent = SentIds(after_id=0)
    delivered = [i for i in [*range(1, 101)] if sent.first_time(i)]
    delivered += [i for i in [*range(60, 121), 55] if sent.first_time(i)]
    assert delivered == [*range(1, 121)]
    assert not sent.first_time(55)


def test_ids_up_to_last_event_id_are_never_sent() -> None:
    sent = SentIds(after_id=500)
    assert not sent.first_time(500)
    assert not sent.first_time(3)
    assert sent.first_time(501)


def test_shuffled_ids_within_the_window_are_each_sent_once() -> None:
    rng = random.Random(7)
    sent = SentIds(after_id=0, window=64)
    delivered: list[int] = []
    for start in range(1, 32 * 300, 32):
        chunk = list(range(start, start + 32))
        rng.shuffle(chunk)
        for i in chunk + chunk[:5]:  # some ids arrive twice
            if sent.first_time(i):
                delivered.append(i)
        assert len(sent) <= 64
    assert len(delivered) == len(set(delivered)) == 32 * 300


class Ticks:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_the_cache_forgets_after_its_ttl_and_never_outgrows_its_cap() -> None:
    ticks = Ticks()
    cache: TtlCache[str, float | None] = TtlCache(3, 10.0, ticks)
    cache.put("a", None)
    assert cache.lookup("a") == (True, None)  # cached "nothing measured" is a hit
    ticks.t = 10.0
    assert cache.lookup("a") == (False, None)
    for name in "bcdef":
        cache.put(name, 1.0)
        assert len(cache) <= 3
    assert [cache.lookup(n)[0] for n in "bcdef"] == [False, False, True, True, True]


def test_one_percentile_definition() -> None:
    assert [nearest_rank(20, q) for q in (50, 95, 100)] == [10, 19, 20]
    assert nearest_rank(1, 95) == 1
    assert nearest_rank(6, 50) == 3
    assert percentile([60, 10, 50, 20, 40, 30], 50) == 30
