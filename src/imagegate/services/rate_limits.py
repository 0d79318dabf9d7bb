"""Request rate limits: per API key on every authenticated request, and per workspace
on job creation. Counted in the runtime's counter store (Redis when configured, so
every API process shares the count).

When the store cannot be reached the request goes through: an outage of a cache
must not take the API down with it. The store logs each failed try."""

from __future__ import annotations

import math

from imagegate.domain.rates import Allowance, Rate
from imagegate.domain.records import Principal
from imagegate.errors import RateLimited
from imagegate.observability import metrics
from imagegate.rate_limits import Count, CountersUnavailable
from imagegate.runtime import Runtime


async def check_request(rt: Runtime, principal: Principal) -> Allowance | None:
    """Count one request for this API key; raise ``RateLimited`` if over its rate."""
    return await _take(
        rt, request_counter(principal.key_id), rt.settings.request_rate, "requests per API key"
    )


async def check_job(rt: Runtime, principal: Principal, jobs: int = 1) -> Allowance | None:
    """Count ``jobs`` job creations for the workspace; raise ``RateLimited`` if over its
    rate (all or none: a --repeat that does not fit is refused whole)."""
    return await _take(
        rt, job_counter(principal.workspace_id), rt.settings.job_rate, "jobs per workspace",
        jobs,
    )  # fmt: skip


def request_counter(key_id: str) -> str:
    return f"rate:requests:{key_id}"


def job_counter(workspace_id: str) -> str:
    return f"rate:jobs:{workspace_id}"


async def _take(
    rt: Runtime, key: str, rate: Rate | None, what: str, amount: int = 1
) -> Allowance | None:
    """``None`` when the rate is off or could not be counted."""
    if rate is None:
        return None
    try:
        count = await rt.counters.add(key, amount, rate.window_s, limit=rate.limit)
    except CountersUnavailable:
        return None
    allowance = allowance_for(count, rate)
    if allowance.refused:
        metrics.rate_limited(what.split()[0])  # "requests" or "jobs", never the key
        raise RateLimited(
            f"Rate limit of {rate} {what} reached; retry in {allowance.retry_after_s} s.",
            allowance,
        )
    return allowance


def allowance_for(count: Count, rate: Rate) -> Allowance:
    remaining = max(0, rate.limit - count.total)
    wait = count.seconds_until_room(1, rate.limit)
    assert wait is not None  # one hit always fits under a limit of at least one
    retry_after = None if count.accepted else _whole_seconds(wait)
    if remaining == 0:
        reset = _whole_seconds(wait)
    else:
        reset = _whole_seconds(count.window_left_s)
    return Allowance(rate.limit, rate.window_s, remaining, reset, retry_after)


def _whole_seconds(seconds: float) -> int:
    # Rounded up, so that a caller who waits them out finds room; at least one, as
    # Retry-After asks.
    return max(1, math.ceil(seconds))
