"""The delivery decision: schedule with jitter, 2xx, 3xx, 410, Retry-After; the body
size limit. Pure functions, driven with an exact clock."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from imagegate.domain.retry import parse_retry_after
from imagegate.domain.webhooks import (
    DEFAULT_SCHEDULE_S,
    MAX_BODY_BYTES,
    Decision,
    DeliveryStatus,
    decide,
    encode_body,
    jittered,
    parse_schedule,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def after(attempt: int, status: int | None, retry_after: float | None = None) -> Decision:
    return decide(
        attempt=attempt,
        schedule=DEFAULT_SCHEDULE_S,
        status_code=status,
        retry_after_s=retry_after,
        retry_after_max_s=6 * 3600,
        jitter_key=f"dlv_1:{attempt}",
    )


def run_schedule(answers: list[int | None]) -> tuple[list[float], DeliveryStatus]:
    """Drive a delivery against scripted answers on a virtual clock: the times of its
    attempts (seconds from the event) and how it ended. Nothing sleeps."""
    clock, times = 0.0, []
    for attempt, status in enumerate(answers, start=1):
        times.append(clock)
        decision = after(attempt, status)
        if decision.final:
            return times, decision.status
        clock += decision.delay_s
    raise AssertionError("the script ran out before the delivery ended")


def test_the_default_schedule_is_standard_webhooks_with_ten_percent_jitter() -> None:
    times, status = run_schedule([500] * 10)
    assert status is DeliveryStatus.EXHAUSTED
    assert len(times) == 10
    planned = [sum(DEFAULT_SCHEDULE_S[: i + 1]) for i in range(10)]
    assert planned[1:4] == [5, 305, 2105]
    for at, plan in zip(times, planned, strict=True):
        assert plan * 0.9 - 1e-6 <= at <= plan * 1.1 + 1e-6
    assert times != planned  # jittered, not exact


def test_jitter_is_bounded_and_stable_for_a_key() -> None:
    values = [jittered(100, f"dlv_{i}:2") for i in range(500)]
    assert min(values) >= 90 and max(values) <= 110
    assert max(values) - min(values) > 15  # spread over the range
    assert jittered(100, "dlv_7:2") == jittered(100, "dlv_7:2")


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status: int) -> None:
    assert after(1, status) == Decision(DeliveryStatus.DELIVERED)


@pytest.mark.parametrize("status", [301, 302, 307, 308, 400, 401, 404, 413, 500, None])
def test_redirects_errors_and_no_answer_are_failed_attempts(status: int | None) -> None:
    decision = after(1, status)
    assert decision.status is DeliveryStatus.PENDING
    assert 4.5 <= decision.delay_s <= 5.5


def test_410_gone_disables_at_once() -> None:
    times, status = run_schedule([500, 503, 410])
    assert status is DeliveryStatus.DISABLED
    assert len(times) == 3


def test_fails_three_times_then_delivered_on_the_fourth() -> None:
    times, status = run_schedule([500, None, 302, 200])
    assert status is DeliveryStatus.DELIVERED
    assert len(times) == 4
    assert 305 * 0.9 <= times[3] - times[0] <= 2105 * 1.1


@pytest.mark.parametrize("status", [429, 503, 502, 504])
def test_retry_after_wins_when_longer(status: int) -> None:
    assert after(1, status, retry_after=120).delay_s == 120
    # A shorter hint never hurries the schedule.
    assert after(2, status, retry_after=1).delay_s >= 270


def test_retry_after_is_capped_and_ignored_elsewhere() -> None:
    assert after(1, 429, retry_after=10**9).delay_s == 6 * 3600
    assert after(1, 500, retry_after=120).delay_s < 10


def test_retry_after_cannot_outlast_the_schedule() -> None:
    assert after(10, 429, retry_after=60).status is DeliveryStatus.EXHAUSTED


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("120", NOW) == 120
    later = NOW + timedelta(minutes=2)
    assert parse_retry_after(later.strftime("%a, %d %b %Y %H:%M:%S GMT"), NOW) == 120
    assert parse_retry_after("Mon, 01 Jan 2001 00:00:00 GMT", NOW) == 0
    assert parse_retry_after("soon", NOW) is None
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("-5", NOW) is None


def test_a_short_schedule_for_tests() -> None:
    schedule = parse_schedule("0,0.2,0.2,0.2")
    assert schedule == (0, 0.2, 0.2, 0.2)
    last = decide(
        attempt=4, schedule=schedule, status_code=500, retry_after_s=None,
        retry_after_max_s=1, jitter_key="k",
    )  # fmt: skip
    assert last.status is DeliveryStatus.EXHAUSTED


@pytest.mark.parametrize("text", ["", "a,b", "-1", "5,nan", "inf"])
def test_bad_schedules_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        parse_schedule(text)


def body(**data: object) -> dict[str, object]:
    job = {"job_id": "job_1", "prompt": "a cat", "negative_prompt": None, "metadata": {}}
    return {"type": "job.completed", "timestamp": NOW.isoformat(), "data": {**job, **data}}


def test_small_bodies_are_sent_whole() -> None:
    encoded = encode_body(body(metadata={"k": "v"}))
    assert json.loads(encoded) == body(metadata={"k": "v"})


def test_large_bodies_lose_metadata_then_prompt_tails() -> None:
    huge = body(
        prompt="é" * 4000 + '"\\' * 500,
        negative_prompt="ü" * 2000,
        metadata={f"key{i}": "x" * 500 for i in range(16)},
    )
    encoded = encode_body(huge)
    assert len(encoded) <= MAX_BODY_BYTES
    sent = json.loads(encoded)
    assert sent["truncated"] is True
    assert sent["data"]["metadata"] == {}
    assert sent["data"]["job_id"] == "job_1"
    assert "é" * 100 in sent["data"]["prompt"] or sent["data"]["prompt"] == ""
