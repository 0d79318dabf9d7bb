"""Choosing a provider for each attempt, and learning from how it went.

A job asks for ``auto`` or a named ``provider[:model]``. Before every attempt the
router lists the providers able to do the job, drops those whose circuit is open (or
that already failed this job, while others remain: the fallback chain), orders the
rest by the job's policy, and takes the first that has a free concurrency slot and
room under its rate limit. After the call, the outcome goes into ``provider_calls``,
which the breakers and the scorecard read."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db import providers_repo
from imagegate.domain.circuit_breaker import Breaker, BreakerRules, BreakerState, should_open
from imagegate.domain.params import Mode
from imagegate.domain.records import JobRecord
from imagegate.domain.routing import Candidate, Plan, explain, plan
from imagegate.domain.scorecard import meets_floor
from imagegate.observability import metrics
from imagegate.observability.logging import get_logger
from imagegate.providers.base import action_for_job
from imagegate.providers.registry import ProviderEntry
from imagegate.rate_limits.base import CountersUnavailable
from imagegate.runtime import Runtime

log = get_logger("imagegate.routing")

# How long an unanswered probe keeps a circuit half-open before another may try.
STALE_PROBE_S = 120.0
# Waiting for a free slot or for rate-limit room: check again this soon.
BUSY_RETRY_S = 1.0
# ``fastest`` compares medians of the successful calls of the last hour, at most this
# many per provider, and only for providers with enough of them to trust.
FASTEST_WINDOW = timedelta(hours=1)
FASTEST_SAMPLE = 1000
FASTEST_MIN_CALLS = 5


@dataclass(frozen=True)
class Route:
    provider: str
    model: str
    probe: bool = False
    slot_holder: str | None = None
    # Why this provider (``params.routing_reason``); None: a resumed call keeps its own.
    reason: str | None = None


@dataclass(frozen=True)
class Wait:
    """No provider can take the job now; try again in ``retry_after_s``."""

    retry_after_s: float
    reason: str


def rules(rt: Runtime) -> BreakerRules:
    b = rt.providers.config.breaker
    return BreakerRules(b.window_s, b.min_calls, b.failure_rate, b.open_s)


def candidates_for(
    rt: Runtime, params: dict[str, Any], job_action: str = "imagine"
) -> list[tuple[ProviderEntry, str]]:
    """Every (provider, model) that can do a job of ``job_action`` with ``params``,
    before health and policy. A provider below the job's ``min_compliance`` (its
    workspace's floor, frozen into the job at submission) is never one of them."""
    requested = str(params.get("requested_model") or params.get("model") or "auto")
    mode = Mode(params["mode"])
    images = int(params["variations"])
    pixels = int(params["width"]) * int(params["height"])
    action = action_for_job(job_action, params)
    floor = params.get("min_compliance")
    found = []
    for entry in rt.providers.entries():
        if not meets_floor(entry.table.compliance, floor):
            continue
        caps = entry.provider.capabilities()
        if action not in caps.actions:
            continue
        if mode not in caps.modes or images > caps.max_images:
            continue
        if pixels > caps.max_pixels:
            continue
        for model in caps.models:
            if requested == "auto" or requested in {entry.name, f"{entry.name}:{model}"}:
                if requested == entry.name and model != caps.models[0]:
                    continue  # "provider" alone means its default model
                found.append((entry, model))
    return found


@dataclass(frozen=True)
class Health:
    """What routing reads from the database before an attempt."""

    breakers: dict[str, Breaker]
    failed: list[str]  # providers that already failed this job


async def read_health(conn: AsyncConnection, rt: Runtime, job: JobRecord) -> Health:
    """The breakers, and the providers that failed the job, read on the caller's
    connection (the runner reads the job on the same one: one transaction, not two)."""
    breakers = await providers_repo.all_breakers(conn)
    # No attempt yet, no call yet: a first attempt skips the query.
    if job.attempts == 0 or _resuming(rt, job):
        return Health(breakers, [])
    return Health(breakers, await providers_repo.failed_providers(conn, job.id))


def _resuming(rt: Runtime, job: JobRecord) -> bool:
    return bool(job.provider_job_id and job.provider and _exists(rt, job.provider))


async def choose(
    rt: Runtime, job: JobRecord, holder: str, health: Health | None = None
) -> Route | Wait:
    """The provider for the job's next attempt (``holder`` names the attempt);
    ``health`` as :func:`read_health` gave it, or None to read it here."""
    now = rt.clock.now()
    # A provider job in flight from an earlier attempt is resumed where it runs,
    # through the same gates as a new call: an open circuit or a full slot table holds
    # the poll back like any other, and it never falls back elsewhere.
    resuming = _resuming(rt, job)
    policy = str(job.params.get("routing") or rt.providers.config.routing.policy)
    if health is None:
        async with rt.db.connect() as conn:
            health = await read_health(conn, rt, job)
    breakers, failed = health.breakers, health.failed
    if resuming:
        resumed = [(str(job.provider), str(job.model))]
        return await _first_available(rt, resumed, breakers, holder, now)
    able = candidates_for(rt, job.params, job.action)
    options = _fallback(able, failed, rt.providers.config.routing.max_providers)
    planned = await _plan(rt, job, able, policy)
    allowed = {(e.name, m) for e, m in options}
    ordered = [(c.provider, c.model) for c in planned.order if (c.provider, c.model) in allowed]
    if not ordered:
        return Wait(0.0, "no configured provider can do this job")
    # Why providers ahead of the one chosen were passed over, for the routing reason.
    passed = {c.provider: "failed" for c in planned.order if (c.provider, c.model) not in allowed}
    route = await _first_available(rt, ordered, breakers, holder, now, passed)
    if isinstance(route, Route):
        return replace(route, reason=explain(planned, route.provider, passed))
    return route


async def _plan(
    rt: Runtime, job: JobRecord, able: list[tuple[ProviderEntry, str]], policy: str
) -> Plan:
    """Every able candidate in the order to try them, with why the first is first.
    A named provider has only itself; ``auto`` follows ``[routing.prefer]`` when the
    job's action or style has a preference there, and the job's policy otherwise."""
    requested = str(job.params.get("requested_model") or job.params.get("model") or "auto")
    preference = None
    if requested == "auto":
        preset = job.params.get("preset")
        preference = rt.providers.config.preference_for(
            action_for_job(job.action, job.params).value,
            str(job.params.get("style") or "") or None,
            str(preset["name"]) if isinstance(preset, dict) and preset.get("name") else None,
        )
    wanted = preference.policy if preference and preference.policy else policy
    medians = (
        await median_latencies(rt, sorted({e.name for e, _ in able})) if wanted == "fastest" else {}
    )
    mode, action = str(job.params["mode"]), str(job.params.get("action") or "")
    candidates = [
        Candidate(e.name, m, e.table.priority, e.order, _price(e, m, action, mode),
                  medians.get(e.name))
        for e, m in able
    ]  # fmt: skip
    planned = plan(candidates, policy, preference)
    if requested != "auto":
        return Plan(planned.order, f"requested {requested}")
    return planned


async def _first_available(
    rt: Runtime,
    ordered: list[tuple[str, str]],
    breakers: dict[str, Breaker],
    holder: str,
    now: datetime,
    passed: dict[str, str] | None = None,
) -> Route | Wait:
    """The first (provider, model) whose circuit lets a call through and that has a
    free slot and rate; else how long to wait for one. Each provider passed over goes
    into ``passed`` with why: its circuit is ``open``, or it is ``busy``."""
    passed = {} if passed is None else passed
    wait_s = None
    for provider, model in ordered:
        entry = rt.providers.entry(provider)
        breaker = breakers.get(provider, Breaker()) if entry.breaker_enabled else Breaker()
        probe = False
        if breaker.state is not BreakerState.CLOSED:
            probe = await _claim_probe(rt, provider, breaker, now)
            if not probe:
                left = breaker.seconds_to_probe(now, rules(rt)) or BUSY_RETRY_S
                wait_s = min(wait_s or left, left)
                passed.setdefault(provider, "open")
                continue
        refusal = await _take_capacity(rt, provider, holder, now)
        if refusal is not None:
            wait_s = min(wait_s or refusal, refusal)
            if probe:  # give the probe back for another attempt to use
                async with rt.db.begin() as conn:
                    await providers_repo.reopen(conn, provider, breaker.opened_at or now)
            passed.setdefault(provider, "busy")
            continue
        return Route(
            provider, model, probe=probe, slot_holder=holder if entry.table.concurrency else None
        )
    return Wait(max(wait_s or BUSY_RETRY_S, 0.05), "every able provider is open or busy")


async def median_latencies(rt: Runtime, providers: list[str]) -> dict[str, float]:
    """The median latency of each provider's successful calls over the last
    ``FASTEST_WINDOW`` (at most ``FASTEST_SAMPLE`` of them; None below
    ``FASTEST_MIN_CALLS``). Each provider's figure is kept ``rt.latency_cache.ttl_s``
    in this process, so attempts do not each ask the database."""
    found: dict[str, float] = {}
    missing = []
    for name in providers:
        fresh, median = rt.latency_cache.lookup(name)
        if not fresh:
            missing.append(name)
        elif median is not None:
            found[name] = median
    if not missing:
        return found
    since = rt.clock.now() - FASTEST_WINDOW
    async with rt.db.connect() as conn:
        counts = await providers_repo.call_counts(conn, since, missing)
        enough = {p: c.ok for p, c in counts.items() if c.ok >= FASTEST_MIN_CALLS}
        measured = await providers_repo.latency_percentiles(
            conn, since, enough, (50,), FASTEST_SAMPLE
        )
    for name in missing:
        median = measured.get(name, {}).get(50.0)
        rt.latency_cache.put(name, median)
        if median is not None:
            found[name] = median
    return found


def _price(entry: ProviderEntry, model: str, action: str, mode: str) -> float | None:
    """What the job will cost there: the action's own price, else its mode's (the
    runner's list price reads the same way)."""
    price = entry.price(model, action) if action else None
    return price if price is not None else entry.price(model, mode)


def _exists(rt: Runtime, name: str) -> bool:
    try:
        rt.providers.entry(name)
    except KeyError:
        return False
    return True


def _fallback(
    options: list[tuple[ProviderEntry, str]], failed: list[str], max_providers: int
) -> list[tuple[ProviderEntry, str]]:
    """Leave out providers that already failed this job while others remain, and stop
    widening once ``max_providers`` different ones have been tried."""
    names = {entry.name for entry, _ in options}
    untried = [(e, m) for e, m in options if e.name not in failed]
    if untried and len(set(failed) & names) < max_providers:
        return untried
    return options


async def _claim_probe(rt: Runtime, provider: str, breaker: Breaker, now: datetime) -> bool:
    r = rules(rt)
    async with rt.db.begin() as conn:
        if breaker.state is BreakerState.HALF_OPEN:
            await providers_repo.release_stale_probe(
                conn, provider, now, now - timedelta(seconds=STALE_PROBE_S)
            )
            return False
        if not breaker.probe_due(now, r):
            return False
        claimed = await providers_repo.claim_probe(conn, provider, now, r.open_s)
    if claimed:
        log.info("provider.breaker_half_open", provider=provider)
    return claimed


async def _take_capacity(rt: Runtime, provider: str, holder: str, now: datetime) -> float | None:
    """Take a concurrency slot and a unit of rate; None if both were free, else how
    long to wait. Slots expire with the attempt timeout, in case a holder dies."""
    table = rt.providers.entry(provider).table
    if table.concurrency:
        async with rt.db.begin() as conn:
            got = await providers_repo.take_slot(
                conn, provider, table.concurrency, holder, now, rt.settings.attempt_timeout_s
            )
        if not got:
            return BUSY_RETRY_S
    rate = table.rate
    if rate is not None:
        try:
            count = await rt.counters.add(f"provider:{provider}", 1, rate.window_s, rate.limit)
        except CountersUnavailable:
            count = None  # fail open, as the request limits do
        if count is not None and not count.accepted:
            await release(rt, provider, holder)
            return max(0.05, count.seconds_until_room(1, rate.limit) or BUSY_RETRY_S)
    return None


async def release(rt: Runtime, provider: str, holder: str) -> None:
    if rt.providers.entry(provider).table.concurrency:
        async with rt.db.begin() as conn:
            await providers_repo.release_slot(conn, provider, holder)


@dataclass(frozen=True)
class CallReport:
    job_id: str
    attempt: int
    started_at: datetime
    started_mono: float
    outcome: str  # providers_repo.OK | FAILED | MODERATED
    images: int = 0
    cost_usd: float = 0.0
    error_code: str | None = None
    error_message: str | None = None
    workspace_id: str | None = None  # whose job: the only one shown the error text
    duration_ms: int | None = None  # measured when the call ended; None: now


async def record(rt: Runtime, route: Route, report: CallReport) -> None:
    """Keep the call in the telemetry, move the breaker, free the slot."""
    async with rt.db.begin() as conn:
        await record_in(conn, rt, route, report)
    await after_record(rt, route, report)


async def record_in(conn: AsyncConnection, rt: Runtime, route: Route, report: CallReport) -> None:
    """:func:`record`'s writes, in the caller's transaction (a successful attempt's
    completion carries them, rather than costing a transaction of their own); call
    :func:`after_record` once it commits."""
    now = rt.clock.now()
    duration_ms = report.duration_ms
    if duration_ms is None:
        duration_ms = int((time.monotonic() - report.started_mono) * 1000)
    metrics.provider_call(route.provider, report.outcome, report.error_code, duration_ms / 1000)
    r = rules(rt)
    await providers_repo.add_call(
        conn,
        {
            "provider": route.provider, "model": route.model, "job_id": report.job_id,
            "workspace_id": report.workspace_id,
            "attempt": report.attempt, "started_at": report.started_at,
            "duration_ms": duration_ms, "outcome": report.outcome,
            "error_code": report.error_code,
            "error_message": (report.error_message or "")[:300] or None,
            "images": report.images, "cost_usd": report.cost_usd,
        },
    )  # fmt: skip
    failed = report.outcome == providers_repo.FAILED
    if route.probe:
        if failed:
            await providers_repo.reopen(conn, route.provider, now)
        else:
            await providers_repo.close_breaker(conn, route.provider, now)
    elif failed and rt.providers.entry(route.provider).breaker_enabled:
        calls, failures = await providers_repo.window_counts(
            conn, route.provider, now - timedelta(seconds=r.window_s)
        )
        if should_open(calls, failures, r) and await providers_repo.trip(conn, route.provider, now):
            log.warning(
                "provider.breaker_open", provider=route.provider, calls=calls,
                failures=failures, window_s=r.window_s,
            )  # fmt: skip


async def after_record(rt: Runtime, route: Route, report: CallReport) -> None:
    """What follows a recorded call: the probe's log line, the slot given back."""
    if route.probe:
        failed = report.outcome == providers_repo.FAILED
        log.info(
            "provider.breaker_closed" if not failed else "provider.breaker_reopened",
            provider=route.provider,
        )
    if route.slot_holder:
        await release(rt, route.provider, route.slot_holder)
