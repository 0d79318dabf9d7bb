"""The audit log: who did what to a workspace, from which address and client.

Entries are written in the transaction of the change they describe (a key created, a
job canceled), so there is no change without its entry and no entry twice. Admins
read them with ``GET /api/image/audit``; the retention sweep deletes entries older
than ``IMAGEGATE_RETENTION_AUDIT_DAYS``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from imagegate.db import accounts_repo
from imagegate.domain.ids import new_id
from imagegate.domain.records import AuditRecord, Principal
from imagegate.errors import Forbidden, InvalidRequest
from imagegate.runtime import Runtime
from imagegate.services.pagination import decode_cursor, encode_cursor

PREFIX = "aud"
ACTIONS = (
    "key.created", "key.rotated", "key.revoked", "workspace.created", "job.created",
    "job.canceled", "job.requeued", "job.deleted", "credits.granted",
    "plan.changed",
)  # fmt: skip
MAX_USER_AGENT = 300


@dataclass(frozen=True)
class Actor:
    """Who asks for a change: the API key (None from the command line, which works on
    the database), and the request's address and User-Agent."""

    key_id: str | None
    ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def of(cls, principal: Principal) -> Actor:
        """The principal's key, with the address and User-Agent of its request (cut to
        MAX_USER_AGENT where the request was read, api.deps.with_client)."""
        return cls(principal.key_id, principal.ip, principal.user_agent)


COMMAND_LINE = Actor(None, None, "imagegate command line")


async def record(
    db: AsyncSession | AsyncConnection,
    rt: Runtime,
    workspace_id: str,
    actor: Actor,
    action: str,
    target_id: str | None = None,
    **details: Any,
) -> None:
    """Add an entry, in the caller's transaction."""
    entry = AuditRecord(
        id=new_id(PREFIX), workspace_id=workspace_id, action=action,
        actor_key_id=actor.key_id, target_id=target_id, ip=actor.ip,
        user_agent=actor.user_agent, details=details, created_at=rt.clock.now(),
    )  # fmt: skip
    await accounts_repo.add_audit(db, entry)


@dataclass(frozen=True)
class Page:
    entries: list[AuditRecord]
    next_cursor: str | None


async def list_entries(
    rt: Runtime,
    principal: Principal,
    *,
    cursor: str | None,
    limit: int,
    action: str | None = None,
    key_id: str | None = None,
) -> Page:
    """The workspace's audit log, newest first; admins only."""
    if not principal.is_admin:
        raise Forbidden("the audit log is shown to admin keys only")
    if action is not None and action not in ACTIONS:
        raise InvalidRequest(f"action must be one of {', '.join(ACTIONS)}", field="action")
    before = decode_cursor(cursor, PREFIX) if cursor else None
    async with rt.sessions() as session:
        found = await accounts_repo.list_audit(
            session, principal.workspace_id, before_id=before, limit=limit + 1,
            action=action, actor_key_id=key_id,
        )  # fmt: skip
    page = found[:limit]
    more = len(found) > limit
    return Page(page, encode_cursor(page[-1].id) if more and page else None)
