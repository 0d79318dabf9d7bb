"""The outbox and the attempt step on a real SQLite database, with an injected
transport and clock: which events become deliveries, and a replayed step that sends
nothing twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.exc import IntegrityError

from imagegate.db import jobs_repo, webhooks_repo
from imagegate.db.migrate import upgrade
from imagegate.domain.records import Principal
from imagegate.engine.webhook_delivery import Deliverer
from imagegate.runtime import Runtime
from imagegate.services import webhooks
from imagegate.services.keys import create_key
from imagegate.settings import Settings
from tests.support.jobs import insert_unqueued_job

RECEIVER = "http://127.0.0.1:9/in"  # allowlisted; never dialed (the transport is a mock)


class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


@dataclass
class World:
    rt: Runtime
    clock: Clock
    principal: Principal
    job_id: str


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    settings = Settings(
        data_dir=tmp_path, ssrf_allowlist="127.0.0.0/8", webhook_schedule_s="0,60,600"
    )
    settings.ensure_data_dir()
    upgrade(settings.resolved_database_url)
    clock = Clock()
    rt = Runtime.build(settings, clock)
    key = await create_key(rt, "w", "k")
    principal = Principal(key.key_id, key.workspace_id, "w", "member")
    job_id = await insert_unqueued_job(rt, key.workspace_id, key.key_id, "builtin", "a cat")
    yield World(rt, clock, principal, job_id)
    await rt.close()


async def event(w: World, type_: str) -> int:
    async with w.rt.db.begin() as conn:
        return await jobs_repo.add_event(
            conn, w.job_id, w.principal.workspace_id, type_, {}, w.clock.now()
        )


async def pending(w: World) -> list[tuple[str, str]]:
    async with w.rt.db.connect() as conn:
        return await webhooks_repo.undispatched(conn, 100)


async def endpoint(w: World, *types: str, enabled: bool = True) -> str:
    created, _ = await webhooks.create_endpoint(
        w.rt, w.principal, url=RECEIVER, event_types=list(types) or None, description=None,
        enabled=enabled,
    )  # fmt: skip
    return created.id


async def test_each_event_fans_out_to_the_receivers_that_want_it(world: World) -> None:
    completed_only = await endpoint(world, "job.completed")
    everything = await endpoint(world)
    with_progress = await endpoint(world, "job.progress")
    await endpoint(world, "job.completed", enabled=False)
    async with world.rt.db.begin() as conn:
        await conn.execute(
            jobs_repo.jobs.update()
            .where(jobs_repo.jobs.c.id == world.job_id)
            .values(webhook_url=RECEIVER + "/job")
        )

    async def receivers(type_: str) -> set[str | None]:
        before = {d for d, _ in await pending(world)}
        await event(world, type_)
        async with world.rt.db.connect() as conn:
            new = [d for d, _ in await webhooks_repo.undispatched(conn, 100) if d not in before]
            found = [await webhooks_repo.get_delivery(conn, d) for d in new]
        return {d.endpoint_id for d in found if d is not None}

    assert await receivers("job.queued") == {everything, None}
    assert await receivers("job.progress") == {with_progress}
    assert await receivers("job.completed") == {completed_only, everything, None}
    assert await receivers("job.retrying") == set()  # not a webhook event


async def test_an_event_fans_out_once(world: World) -> None:
    await endpoint(world)
    event_id = await event(world, "job.queued")
    with pytest.raises(IntegrityError):
        async with world.rt.db.begin() as conn:
            await webhooks_repo.add_deliveries(
                conn, event_id=event_id, job_id=world.job_id,
                workspace_id=world.principal.workspace_id, event_type="job.queued",
                event_at=world.clock.now(),
            )  # fmt: skip
    assert len(await pending(world)) == 1


async def test_a_replayed_attempt_is_not_sent_again(world: World) -> None:
    await endpoint(world, "job.completed")
    await event(world, "job.completed")
    [(delivery_id, _)] = await pending(world)
    answers = iter([httpx.Response(500), httpx.Response(200)])
    sent: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return next(answers)

    client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
    deliverer = Deliverer(world.rt, lambda job: {"job_id": job.id}, client=client)

    first = await deliverer.attempt(delivery_id, 1)
    assert (first.done, first.status) == (False, "pending")
    assert 54 <= first.delay_s <= 66
    world.clock.at += timedelta(seconds=20)
    replay = await deliverer.attempt(delivery_id, 1)  # the engine lost the step's result
    assert (replay.done, len(sent)) == (False, 1)
    assert replay.delay_s == pytest.approx(first.delay_s - 20, abs=0.01)

    world.clock.at += timedelta(seconds=replay.delay_s)
    second = await deliverer.attempt(delivery_id, 2)
    assert (second.done, second.status, len(sent)) == (True, "delivered", 2)
    assert (await deliverer.attempt(delivery_id, 2)).done  # a replay after the end
    assert len(sent) == 2
    async with world.rt.db.connect() as conn:
        delivery = await webhooks_repo.get_delivery(conn, delivery_id)
    assert delivery is not None
    assert [a.status_code for a in delivery.attempt_log] == [500, 200]
    assert sent[0].headers["webhook-id"] == sent[1].headers["webhook-id"] == delivery.webhook_id
    await deliverer.aclose()


async def test_a_deleted_or_disabled_endpoint_stops_its_deliveries(world: World) -> None:
    doomed, paused = await endpoint(world, "job.completed"), await endpoint(world, "job.completed")
    await event(world, "job.completed")
    by_endpoint = {}
    async with world.rt.db.connect() as conn:
        for delivery_id, _ in await webhooks_repo.undispatched(conn, 100):
            found = await webhooks_repo.get_delivery(conn, delivery_id)
            assert found is not None
            by_endpoint[found.endpoint_id] = delivery_id
    await webhooks.delete_endpoint(world.rt, world.principal, doomed)
    await webhooks.update_endpoint(world.rt, world.principal, paused, enabled=False)
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    deliverer = Deliverer(world.rt, lambda job: {}, client=client)
    assert (await deliverer.attempt(by_endpoint[doomed], 1)).status == "gone"
    assert (await deliverer.attempt(by_endpoint[paused], 1)).status == "disabled"
    await deliverer.aclose()
