"""A request releases only its own claim on an Idempotency-Key (services.idempotency)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import update

from imagegate.db.idempotency_repo import records
from imagegate.db.migrate import upgrade
from imagegate.runtime import Runtime
from imagegate.services import idempotency
from imagegate.services.idempotency import Answer, Claim, IdempotentRequest
from imagegate.services.keys import Authenticator, create_key
from imagegate.settings import Settings


async def test_a_slow_request_cannot_release_the_claim_that_replaced_its_own(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path)
    settings.ensure_data_dir()
    upgrade(settings.resolved_database_url)
    rt = Runtime.build(settings, with_providers=False)
    try:
        principal = await Authenticator(rt)((await create_key(rt, "w", "k")).secret)
        request = IdempotentRequest("slow", "fingerprint")
        slow = await idempotency.claim(rt, principal, request)
        assert isinstance(slow, Claim)
        # The slow request goes quiet long enough to count as abandoned ...
        async with rt.db.begin() as conn:
            then = rt.clock.now() - 2 * idempotency.ABANDONED_CLAIM
            await conn.execute(update(records).values(created_at=then))
        retry = await idempotency.claim(rt, principal, request)
        assert isinstance(retry, Claim) and retry.token != slow.token
        # ... then fails, and releases: the retry's claim must survive it.
        await idempotency.release(rt, slow)
        async with rt.db.begin() as conn:
            lost = await idempotency.complete(conn, rt, slow, Answer(200, {"id": "slow"}))
            assert not lost
            assert await idempotency.complete(conn, rt, retry, Answer(200, {"id": "retry"}))
        replay = await idempotency.stored_answer(rt, principal, request)
        assert replay is not None and replay.body == {"id": "retry"} and replay.replayed
    finally:
        await rt.close()
