"""``Idempotency-Key``: one implementation for every POST.

The first request with a key claims it (a record holding the request's fingerprint and
a random claim token), does its work, and stores its answer on the claim; a retry with
the same key and the same request gets that answer replayed; with another request,
``idempotency_key_reused`` (422); while the first is still in flight,
``idempotency_key_in_use`` (409). Keys are scoped per workspace and kept
``IMAGEGATE_IDEMPOTENCY_TTL_S``. A request that fails releases its claim, and only
its own (the token), so the key is free for a retry; a claim whose request died
mid-way is taken over after ``ABANDONED_CLAIM``.

Answers that carry a secret (a new webhook endpoint, a rotated secret) are stored with
that secret sealed by the server's key, and opened again for the replay."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db import idempotency_repo
from imagegate.db.idempotency_repo import StoredResponse
from imagegate.domain.records import Principal
from imagegate.errors import IdempotencyKeyInUse, IdempotencyKeyReused
from imagegate.observability.logging import get_logger
from imagegate.runtime import Runtime
from imagegate.webhooks.secrets import box

# An in-flight claim older than this belongs to a request that died mid-way.
ABANDONED_CLAIM = timedelta(seconds=60)
log = get_logger("imagegate.idempotency")


@dataclass(frozen=True)
class IdempotentRequest:
    """The key a request came with, and the fingerprint of what it asks (operation,
    path and body): the same key with another fingerprint is a reuse."""

    key: str
    fingerprint: str


@dataclass(frozen=True)
class Answer:
    """What a request answered (or, replayed, what its first try answered)."""

    status_code: int
    body: dict[str, Any]
    resource_id: str | None = None
    replayed: bool = False


@dataclass(frozen=True)
class Claim:
    """This request's hold on its key."""

    workspace_id: str
    key: str
    token: str


async def stored_answer(
    rt: Runtime, principal: Principal, request: IdempotentRequest, sealed: Sequence[str] = ()
) -> Answer | None:
    """What an earlier request with this key answers, read without claiming the key
    (raises if the key is in flight or was used for another request)."""
    async with rt.db.connect() as conn:
        held = await idempotency_repo.find(conn, principal.workspace_id, request.key)
    if held is None or _stale(held, rt.clock.now()):
        return None
    return _replay(rt, principal, request, held, sealed)


async def claim(
    rt: Runtime, principal: Principal, request: IdempotentRequest, sealed: Sequence[str] = ()
) -> Claim | Answer:
    """Claim the key for this request: a Claim to do the work under, or the earlier
    request's answer to replay."""
    now = rt.clock.now()
    expires = now + timedelta(seconds=rt.settings.idempotency_ttl_s)
    token = secrets.token_hex(16)
    ws, key = principal.workspace_id, request.key
    async with rt.db.begin() as conn:
        held = await idempotency_repo.claim(conn, ws, key, request.fingerprint, token, now, expires)
        if held is None:
            return Claim(ws, key, token)
        if _stale(held, now):
            if await idempotency_repo.take_over(
                conn, ws, key, held, request.fingerprint, token, now, expires
            ):
                return Claim(ws, key, token)
            raise IdempotencyKeyInUse()
    return _replay(rt, principal, request, held, sealed)


async def complete(
    conn: AsyncConnection, rt: Runtime, held: Claim, answer: Answer, sealed: Sequence[str] = ()
) -> bool:
    """Store the answer on the claim, in the caller's transaction. False if the claim
    was taken over meanwhile (this request ran past ``ABANDONED_CLAIM``)."""
    body = _seal(rt, held, answer.body, sealed)
    return await idempotency_repo.complete(
        conn, held.workspace_id, held.key, held.token, answer.status_code, body,
        answer.resource_id,
    )  # fmt: skip


async def release(rt: Runtime, held: Claim) -> None:
    """Free this request's claim (its work failed), and no one else's."""
    async with rt.db.begin() as conn:
        await idempotency_repo.release(conn, held.workspace_id, held.key, held.token)


async def run(
    rt: Runtime,
    principal: Principal,
    request: IdempotentRequest | None,
    work: Callable[[], Awaitable[Answer]],
    sealed: Sequence[str] = (),
) -> Answer:
    """Do ``work`` once per key: replay the stored answer of an earlier request with
    the same key, else claim the key, work, and store the answer. ``sealed`` names the
    body's fields to keep sealed at rest. Without a key, just work."""
    if request is None:
        return await work()
    replay = await stored_answer(rt, principal, request, sealed)
    if replay is not None:
        return replay
    held = await claim(rt, principal, request, sealed)
    if isinstance(held, Answer):
        return held
    try:
        answer = await work()
    except BaseException:
        await release(rt, held)
        raise
    # The work has committed: the answer goes in a transaction of its own. A process
    # that dies in between leaves the claim to be taken over once abandoned.
    async with rt.db.begin() as conn:
        if not await complete(conn, rt, held, answer, sealed):
            log.warning("idempotency.claim_taken_over", key=held.key)
    return answer


def _stale(held: StoredResponse, now: datetime) -> bool:
    return held.expires_at < now or (
        held.state == idempotency_repo.IN_FLIGHT and now - held.created_at > ABANDONED_CLAIM
    )


def _replay(
    rt: Runtime,
    principal: Principal,
    request: IdempotentRequest,
    held: StoredResponse,
    sealed: Sequence[str],
) -> Answer:
    """The replay of a held key, or why there is none yet."""
    if held.request_hash != request.fingerprint:
        raise IdempotencyKeyReused()
    if held.state == idempotency_repo.IN_FLIGHT or held.response is None:
        raise IdempotencyKeyInUse()
    body = dict(held.response)
    owner = _owner(principal.workspace_id, request.key)
    for field in sealed:
        if isinstance(body.get(field), str):
            body[field] = box(rt).open(body[field], owner)
    answer = Answer(held.status_code or 200, body, body.get("id") or body.get("job_id"))
    return replace(answer, replayed=True)


def _seal(rt: Runtime, held: Claim, body: dict[str, Any], sealed: Sequence[str]) -> dict[str, Any]:
    stored = dict(body)
    owner = _owner(held.workspace_id, held.key)
    for field in sealed:
        if isinstance(stored.get(field), str):
            stored[field] = box(rt).seal(stored[field], owner)
    return stored


def _owner(workspace_id: str, key: str) -> str:
    # Bound into the seal: a sealed value opens only as the answer it was stored for.
    return f"idempotency:{workspace_id}:{key}"


async def purge_expired(rt: Runtime) -> int:
    """Forget idempotency records past their retention."""
    async with rt.db.begin() as conn:
        return await idempotency_repo.purge_expired(conn, rt.clock.now())
