"""Retention on real SQLite and PostgreSQL: what has aged out goes, in bounded
batches; what is recent, a running job's events and a delivery still being retried
stay; the sweep runs once per interval for the whole fleet, from the reaper."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from imagegate.db import jobs_repo, moderation_repo, providers_repo
from imagegate.db.models import (
    AuditEvent,
    Job,
    JobEvent,
    ModerationDecision,
    ProviderCall,
    WebhookAttempt,
    WebhookDelivery,
)
from imagegate.domain.ids import new_id
from imagegate.domain.records import ModerationRecord
from imagegate.runtime import Runtime
from imagegate.services import audit, retention
from imagegate.services.keys import create_key
from tests.support.jobs import insert_unqueued_job
from tests.support.runtime import MovableClock, migrated_runtime

DAY = timedelta(days=1)


@dataclass
class World:
    rt: Runtime
    clock: MovableClock
    workspace_id: str
    key_id: str


@pytest.fixture(params=["sqlite", "postgresql"])
async def w(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[World]:
    clock = MovableClock()
    async with migrated_runtime(request.param, tmp_path, clock) as rt:
        key = await create_key(rt, "keeper", "k")
        yield World(rt, clock, key.workspace_id, key.key_id)


async def job(w: World, status: str, ended: datetime | None) -> str:
    job_id = await insert_unqueued_job(w.rt, w.workspace_id, w.key_id, "builtin", "a cat")
    async with w.rt.db.begin() as conn:
        await conn.execute(
            update(Job.__table__)
            .where(Job.__table__.c.id == job_id)
            .values(status=status, completed_at=ended, updated_at=ended or w.clock.now())
        )
    return job_id


async def event(w: World, job_id: str, at: datetime) -> int:
    async with w.rt.db.begin() as conn:
        return await jobs_repo.add_event(conn, job_id, w.workspace_id, "job.progress", {}, at)


async def call(w: World, at: datetime) -> None:
    async with w.rt.db.begin() as conn:
        await providers_repo.add_call(
            conn,
            {
                "provider": "builtin", "model": "builtin", "job_id": "job_x",
                "workspace_id": w.workspace_id, "attempt": 1, "started_at": at,
                "duration_ms": 5, "outcome": "ok", "images": 1, "cost_usd": 0.0,
            },
        )  # fmt: skip


async def delivery(w: World, created: datetime, finished: datetime | None, attempts: int) -> str:
    delivery_id = f"dlv_{uuid.uuid4().hex[:20]}"
    row: dict[str, Any] = {
        "id": delivery_id, "workspace_id": w.workspace_id, "job_id": "job_x", "event_id": 1,
        "event_type": "job.completed", "event_at": created, "endpoint_id": None,
        "url": "https://example.com/hook", "webhook_id": f"msg_{delivery_id}",
        "fanout_key": None, "redelivery_of": None,
        "status": "pending" if finished is None else "delivered", "attempts": attempts,
        "next_attempt_at": None, "dispatched": True, "created_at": created,
        "updated_at": finished or created, "finished_at": finished,
    }  # fmt: skip
    async with w.rt.db.begin() as conn:
        await conn.execute(insert(WebhookDelivery.__table__), row)
        for n in range(1, attempts + 1):
            await conn.execute(
                insert(WebhookAttempt.__table__),
                {"delivery_id": delivery_id, "workspace_id": w.workspace_id, "attempt": n,
                 "at": created, "url": row["url"], "status_code": 500},
            )  # fmt: skip
    return delivery_id


async def ids(w: World, table: Any, column: str = "id") -> set[Any]:
    async with w.rt.db.connect() as conn:
        return set((await conn.execute(select(table.c[column]))).scalars())


async def test_old_rows_go_and_new_rows_a_running_job_and_a_retry_stay(w: World) -> None:
    now = w.clock.now()
    done_long_ago = await job(w, "completed", now - 40 * DAY)
    running = await job(w, "running", None)
    done_lately = await job(w, "failed", now - 1 * DAY)
    gone_events = [await event(w, done_long_ago, now - 41 * DAY) for _ in range(3)]
    kept_events = [
        await event(w, running, now - 40 * DAY),  # its job has not finished
        await event(w, done_lately, now - 40 * DAY),  # its job finished only yesterday
        await event(w, done_lately, now - 1 * DAY),
    ]
    for at in (now - 31 * DAY, now - 30 * DAY - timedelta(seconds=1)):
        await call(w, at)
    await call(w, now - 29 * DAY)
    old = await delivery(w, now - 40 * DAY, now - 31 * DAY, attempts=2)
    recent = await delivery(w, now - 2 * DAY, now - 1 * DAY, attempts=1)
    retrying = await delivery(w, now - 40 * DAY, None, attempts=3)

    swept = await retention.sweep(w.rt)

    assert swept == retention.Swept(
        provider_calls=2, job_events=3, webhook_deliveries=1, complete=True
    )
    assert await ids(w, JobEvent.__table__) == set(kept_events)
    async with w.rt.db.connect() as conn:
        started = set((await conn.execute(select(ProviderCall.__table__.c.started_at))).scalars())
    assert started == {now - 29 * DAY}
    assert await ids(w, WebhookDelivery.__table__) == {recent, retrying}
    assert await ids(w, WebhookAttempt.__table__, "delivery_id") == {recent, retrying}
    assert old not in await ids(w, WebhookAttempt.__table__, "delivery_id")
    assert gone_events  # (three of them, all gone)

    # Nothing left to delete: a second sweep deletes nothing.
    assert await retention.sweep(w.rt) == retention.Swept()


async def test_a_sweep_deletes_in_bounded_batches_and_reports_what_is_left(w: World) -> None:
    now = w.clock.now()
    for _ in range(5):
        await call(w, now - 40 * DAY)
    first = await retention.sweep(w.rt, batch=2, max_batches=2)
    assert (first.provider_calls, first.complete) == (4, False)
    assert len(await ids(w, ProviderCall.__table__)) == 1
    second = await retention.sweep(w.rt, batch=2, max_batches=2)
    assert (second.provider_calls, second.complete) == (1, True)
    assert await ids(w, ProviderCall.__table__) == set()


async def test_zero_days_keeps_everything(tmp_path: Path) -> None:
    clock = MovableClock()
    async with migrated_runtime(
        "sqlite", tmp_path, clock,
        retention_provider_calls_days=0, retention_job_events_days=0,
        retention_webhook_deliveries_days=0,
    ) as rt:  # fmt: skip
        key = await create_key(rt, "keeper", "k")
        w = World(rt, clock, key.workspace_id, key.key_id)
        await call(w, clock.now() - 400 * DAY)
        old_job = await job(w, "completed", clock.now() - 400 * DAY)
        await event(w, old_job, clock.now() - 400 * DAY)
        await delivery(w, clock.now() - 400 * DAY, clock.now() - 400 * DAY, attempts=1)
        assert await retention.sweep(rt) == retention.Swept()
        assert len(await ids(w, ProviderCall.__table__)) == 1
        assert len(await ids(w, JobEvent.__table__)) == 1
        assert len(await ids(w, WebhookDelivery.__table__)) == 1


async def test_a_sweep_runs_once_per_interval_for_the_whole_fleet(w: World) -> None:
    await call(w, w.clock.now() - 40 * DAY)
    # The reaper's holder asks on each tick; the first ask sweeps...
    assert await retention.run_if_due(w.rt, "proc-a") == retention.Swept(provider_calls=1)
    # ...and no process sweeps again within the interval, not even the next reaper.
    await call(w, w.clock.now() - 40 * DAY)
    assert await retention.run_if_due(w.rt, "proc-a") is None
    assert await retention.run_if_due(w.rt, "proc-b") is None
    assert len(await ids(w, ProviderCall.__table__)) == 1
    w.clock.advance(seconds=w.rt.settings.retention_interval_s + 1)
    assert await retention.run_if_due(w.rt, "proc-b") == retention.Swept(provider_calls=1)
    assert await ids(w, ProviderCall.__table__) == set()


async def test_moderation_decisions_go_after_their_own_period(w: World) -> None:
    now = w.clock.now()

    async def decision(at: datetime) -> str:
        record = ModerationRecord(
            id=new_id("mod"), workspace_id=w.workspace_id, stage="prompt", category="sexual",
            reason="nude", job_id=None, key_id=w.key_id, end_user=None, excerpt="nude",
            created_at=at,
        )  # fmt: skip
        async with w.rt.db.begin() as conn:
            await moderation_repo.insert_decision(conn, record)
        return record.id

    await decision(now - 91 * DAY)
    kept = {await decision(now - 89 * DAY), await decision(now - 40 * DAY)}
    assert await retention.sweep(w.rt) == retention.Swept(moderation_decisions=1)
    assert await ids(w, ModerationDecision.__table__) == kept


async def test_audit_entries_go_after_a_year(w: World) -> None:
    now = w.clock.now()
    actor = audit.Actor(w.key_id, "127.0.0.1", "test")
    for age in (366, 364):
        w.clock.at = now - age * DAY
        async with w.rt.sessions.begin() as session:
            await audit.record(session, w.rt, w.workspace_id, actor, "key.revoked", f"k{age}")
    w.clock.at = now
    swept = await retention.sweep(w.rt)
    assert swept.audit_events == 1
    left = await ids(w, AuditEvent.__table__, "target_id")
    assert "k364" in left and "k366" not in left  # (and the fixture key's key.created)
