"""Credits: a workspace's balance, its ledger, and grants (docs/credits.md).

A workspace spends credits when its configuration says so (``[workspaces.<name>]
credits``, or ``IMAGEGATE_CREDITS_REQUIRED`` for all): each job then reserves its
estimate in the transaction that creates it (402 ``insufficient_credits`` when the
balance cannot cover it, and nothing is created), and settles or voids it in the
transaction that ends it (engine.runner, services.jobs.cancel). The rules are
domain.ledger's, the SQL db.ledger_repo's."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db import accounts_repo, ledger_repo
from imagegate.domain.ledger import MAX_GRANT, Balance, EntryKind, grant_key
from imagegate.domain.records import JobRecord, LedgerEntry, Principal
from imagegate.errors import Forbidden, InsufficientCredits, InvalidRequest, NotFound
from imagegate.runtime import Runtime
from imagegate.services import audit
from imagegate.services.audit import Actor

RECENT = 20
CSV_COLUMNS = ("id", "created_at", "kind", "amount", "job_id", "actor_key_id", "note")


def required(rt: Runtime, principal: Principal) -> bool:
    """Whether the workspace's jobs spend credits."""
    return rt.providers.config.credits_for(principal.workspace_name, rt.settings.credits_required)


async def reserve(
    conn: AsyncConnection,
    rt: Runtime,
    principal: Principal,
    job_id: str,
    amount: int,
    run: int = 1,
) -> None:
    """Hold the job's estimate (for its ``run``: a requeue holds again), in the
    creating transaction; a workspace that does not spend credits holds nothing.
    InsufficientCredits rolls the transaction back."""
    if not required(rt, principal):
        return
    try:
        await ledger_repo.reserve(conn, principal.workspace_id, job_id, amount, rt.clock.now(), run)
    except ledger_repo.NotEnoughCredits as short:
        raise InsufficientCredits(
            f"this job needs {short.needed} credits; the workspace has "
            f"{short.balance.available} available ({short.balance.reserved} held by "
            "unfinished jobs). Nothing was created.",
            needed=short.needed,
            available=short.balance.available,
        ) from None


@dataclass(frozen=True)
class Account:
    balance: Balance
    recent: list[LedgerEntry]
    required: bool


async def void(conn: AsyncConnection, rt: Runtime, job: JobRecord) -> None:
    """Release the hold of the job's current run (canceled), in the caller's
    transaction; nothing if it held nothing or has ended already."""
    await ledger_repo.finish(
        conn, job.workspace_id, job.id, EntryKind.VOID, 0, rt.clock.now(), job.runs
    )


async def account(rt: Runtime, principal: Principal) -> Account:
    async with rt.db.connect() as conn:
        found = await ledger_repo.balance(conn, principal.workspace_id)
        recent = await ledger_repo.list_entries(
            conn, principal.workspace_id, before_id=None, limit=RECENT
        )
    return Account(found, recent, required(rt, principal))


@dataclass(frozen=True)
class Page:
    entries: list[LedgerEntry]
    next_cursor: str | None


async def ledger(rt: Runtime, principal: Principal, *, cursor: str | None, limit: int) -> Page:
    """The ledger, newest first; the cursor is the last entry's id."""
    before = None
    if cursor is not None:
        if not cursor.isdigit() or len(cursor) > 18:
            raise InvalidRequest("cursor must be the next_cursor of a page", field="cursor")
        before = int(cursor)
    async with rt.db.connect() as conn:
        found = await ledger_repo.list_entries(
            conn, principal.workspace_id, before_id=before, limit=limit + 1
        )
    page = found[:limit]
    more = len(found) > limit
    return Page(page, str(page[-1].id) if more and page else None)


def as_csv(entries: list[LedgerEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    for e in entries:
        writer.writerow([e.id, e.created_at.isoformat(), e.kind, e.amount, e.job_id or "",
                         e.actor_key_id or "", e.note or ""])  # fmt: skip
    return out.getvalue()


async def grant(
    rt: Runtime,
    principal: Principal,
    actor: Actor,
    *,
    amount: int,
    key: str,
    note: str | None = None,
    workspace: str | None = None,
) -> Balance:
    """Add credits to the workspace (an admin's own; the operator's any), once per
    ``key``; the balance after."""
    if not principal.is_admin:
        raise Forbidden("granting credits needs an admin key")
    if not 1 <= amount <= MAX_GRANT:
        raise InvalidRequest(f"amount must be from 1 to {MAX_GRANT}", field="amount")
    workspace_id = principal.workspace_id
    if workspace is not None and workspace != principal.workspace_name:
        if not principal.is_operator:
            raise Forbidden("only the operator key grants credits to another workspace")
        async with rt.sessions() as session:
            found = await accounts_repo.workspace_ids(session, [workspace])
        if workspace not in found:
            raise NotFound(f"no workspace named {workspace!r}")
        workspace_id = found[workspace]
    now = rt.clock.now()
    async with rt.db.begin() as conn:
        added = await ledger_repo.grant(
            conn, workspace_id, amount, grant_key(key), now,
            actor_key_id=actor.key_id, note=note,
        )  # fmt: skip
        if added:
            await audit.record(conn, rt, workspace_id, actor, "credits.granted", None,
                               amount=amount, note=note)  # fmt: skip
        return await ledger_repo.balance(conn, workspace_id)
