"""The credits ledger on real SQLite and PostgreSQL (db.ledger_repo): a reserve that
does not fit is refused and leaves nothing; every step written once however often it
is replayed; a job ends once, settled or voided; after any mix of outcomes the balance
is grants minus charges and nothing stays reserved; concurrent reserves never take the
balance below zero."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from imagegate.db import ledger_repo
from imagegate.db.models import CreditEntry
from imagegate.domain.ledger import Balance, EntryKind
from imagegate.runtime import Runtime
from imagegate.services.keys import create_key
from tests.support.runtime import MovableClock, migrated_runtime


@pytest.fixture(params=["sqlite", "postgresql"])
async def rt(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Runtime]:
    async with migrated_runtime(request.param, tmp_path, MovableClock()) as runtime:
        yield runtime


async def _workspace(rt: Runtime) -> str:
    return (await create_key(rt, f"ws-{random.randrange(10**9)}", "k")).workspace_id


async def _balance(rt: Runtime, ws: str) -> Balance:
    async with rt.db.connect() as conn:
        return await ledger_repo.balance(conn, ws)


async def _entries(rt: Runtime, ws: str) -> int:
    async with rt.db.connect() as conn:
        query = select(func.count()).select_from(CreditEntry).where(CreditEntry.workspace_id == ws)
        return int(await conn.scalar(query) or 0)


async def test_reserve_settle_void_once(rt: Runtime) -> None:
    ws, now = await _workspace(rt), rt.clock.now()
    async with rt.db.begin() as conn:
        assert await ledger_repo.grant(conn, ws, 10, "grant:a", now)
        assert not await ledger_repo.grant(conn, ws, 10, "grant:a", now)  # replayed
    async with rt.db.begin() as conn:
        assert await ledger_repo.reserve(conn, ws, "job_1", 6, now)
        assert not await ledger_repo.reserve(conn, ws, "job_1", 6, now)  # replayed
    assert await _balance(rt, ws) == Balance(granted=10, reserved=6)

    # 6 held, 4 available: a reserve of 5 is refused, and rolled back with its entry.
    with pytest.raises(ledger_repo.NotEnoughCredits) as short:
        async with rt.db.begin() as conn:
            await ledger_repo.reserve(conn, ws, "job_2", 5, now)
    assert short.value.needed == 5 and short.value.balance.available == 4
    assert await _entries(rt, ws) == 2  # the grant and job_1's reserve

    async with rt.db.begin() as conn:
        # Settled at 4 of the 6 held: 2 released. Then nothing ends it again.
        assert await ledger_repo.finish(conn, ws, "job_1", EntryKind.SETTLE, 4, now) == (4, 2)
        assert await ledger_repo.finish(conn, ws, "job_1", EntryKind.SETTLE, 4, now) is None
        assert await ledger_repo.finish(conn, ws, "job_1", EntryKind.VOID, 0, now) is None
        # A job made without the ledger has nothing to end.
        assert await ledger_repo.finish(conn, ws, "job_x", EntryKind.SETTLE, 9, now) is None
        assert await ledger_repo.reserve(conn, ws, "job_3", 6, now)
        assert await ledger_repo.finish(conn, ws, "job_3", EntryKind.VOID, 0, now) == (0, 6)
        # Never more than was held.
        assert await ledger_repo.reserve(conn, ws, "job_4", 3, now)
        assert await ledger_repo.finish(conn, ws, "job_4", EntryKind.SETTLE, 50, now) == (3, 0)
    assert await _balance(rt, ws) == Balance(granted=10, charged=7, reserved=0)


async def test_random_outcomes_balance(rt: Runtime) -> None:
    ws, now = await _workspace(rt), rt.clock.now()
    rng = random.Random(7)
    async with rt.db.begin() as conn:
        await ledger_repo.grant(conn, ws, 500, "grant:start", now)
    charged = 0
    for n in range(200):
        job = f"job_{n}"
        cost = rng.randint(1, 4)
        try:
            async with rt.db.begin() as conn:
                await ledger_repo.reserve(conn, ws, job, cost, now)
        except ledger_repo.NotEnoughCredits:
            continue
        outcome = rng.choice(["complete", "fail", "cancel", "moderated"])
        kind = EntryKind.SETTLE if outcome == "complete" else EntryKind.VOID
        for _ in range(rng.randint(1, 3)):  # a step replayed after a crash
            async with rt.db.begin() as conn:
                ended = await ledger_repo.finish(conn, ws, job, kind, cost, now)
                if ended is not None:
                    charged += ended[0]
    final = await _balance(rt, ws)
    assert final == Balance(granted=500, charged=charged, reserved=0)
    assert final.available >= 0
    async with rt.db.connect() as conn:
        rows = (await conn.execute(
            select(CreditEntry.job_id, CreditEntry.kind).where(CreditEntry.workspace_id == ws)
        )).all()  # fmt: skip
    finals: dict[str, int] = {}
    for job_id, kind in rows:
        if kind in ("settle", "void"):
            finals[job_id] = finals.get(job_id, 0) + 1
    assert set(finals.values()) == {1}  # one settle or void per job
    settled = sum(1 for _, kind in rows if kind == "settle")
    assert settled and len(finals) == sum(1 for _, kind in rows if kind == "reserve")


async def test_concurrent_reserves_never_overdraw(rt: Runtime) -> None:
    ws, now = await _workspace(rt), rt.clock.now()
    async with rt.db.begin() as conn:
        await ledger_repo.grant(conn, ws, 100, "grant:start", now)

    async def one(n: int) -> bool:
        try:
            async with rt.db.begin() as conn:
                return await ledger_repo.reserve(conn, ws, f"job_{n}", 30, now)
        except ledger_repo.NotEnoughCredits:
            return False

    results = await asyncio.gather(*(one(n) for n in range(8)))
    assert sum(results) == 3
    final = await _balance(rt, ws)
    assert final.reserved == 90 and final.available == 10
