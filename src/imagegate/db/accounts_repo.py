"""Workspaces, API keys and the audit log."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from imagegate.db.models import ApiKey, AuditEvent, Workspace
from imagegate.domain.ids import new_id
from imagegate.domain.records import AuditRecord, KeyInfo, Principal


async def get_or_create_workspace(session: AsyncSession, name: str, now: datetime) -> str:
    """The workspace's id, creating it if new (safe against a concurrent creator)."""
    existing = await session.scalar(select(Workspace.id).where(Workspace.name == name))
    if existing:
        return existing
    workspace_id = new_id("ws")
    try:
        async with session.begin_nested():
            session.add(Workspace(id=workspace_id, name=name, created_at=now))
    except IntegrityError:
        found = await session.scalar(select(Workspace.id).where(Workspace.name == name))
        assert found is not None
        return found
    return workspace_id


async def add_key(
    session: AsyncSession,
    *,
    workspace_id: str,
    name: str,
    prefix: str,
    key_hash: str,
    role: str,
    now: datetime,
    key_id: str | None = None,
    expires_at: datetime | None = None,
    created_by: str | None = None,
) -> str:
    key_id = key_id or new_id("key")
    session.add(
        ApiKey(
            id=key_id,
            workspace_id=workspace_id,
            name=name,
            prefix=prefix,
            key_hash=key_hash,
            role=role,
            created_at=now,
            expires_at=expires_at,
            created_by=created_by,
        )
    )
    return key_id


async def principal_for_hash(
    session: AsyncSession, key_hash: str, now: datetime
) -> Principal | None:
    """The key's principal, if ``key_hash`` is its secret's hash (or the hash of the
    secret it had before a rotation, within the grace period), it is not revoked and
    has not expired. Marks the key used."""
    current = ApiKey.key_hash == key_hash
    previous = (ApiKey.previous_hash == key_hash) & (ApiKey.previous_expires_at > now)
    row = (
        await session.execute(
            select(ApiKey.id, ApiKey.workspace_id, Workspace.name, ApiKey.role, Workspace.plan)
            .join(Workspace, Workspace.id == ApiKey.workspace_id)
            .where(
                or_(current, previous),
                ApiKey.revoked_at.is_(None),
                or_(ApiKey.expires_at.is_(None), ApiKey.expires_at > now),
            )
        )
    ).first()
    if row is None:
        return None
    await session.execute(update(ApiKey).where(ApiKey.id == row[0]).values(last_used_at=now))
    return Principal(
        key_id=row[0], workspace_id=row[1], workspace_name=row[2], role=row[3], plan=row[4]
    )


async def has_any_key(session: AsyncSession) -> bool:
    return (await session.scalar(select(ApiKey.id).limit(1))) is not None


def _key_infos() -> Select[*tuple[Any, ...]]:
    return select(
        ApiKey.id, Workspace.name, ApiKey.name, ApiKey.prefix, ApiKey.role, ApiKey.created_at,
        ApiKey.revoked_at, ApiKey.expires_at, ApiKey.last_used_at, ApiKey.rotated_at,
        ApiKey.previous_expires_at, ApiKey.created_by,
    ).join(Workspace, Workspace.id == ApiKey.workspace_id)  # fmt: skip


def _info(row: Any) -> KeyInfo:
    return KeyInfo(*tuple(row))


async def list_keys(session: AsyncSession, workspace: str | None = None) -> list[KeyInfo]:
    """Every key (of one workspace by name), for the command line."""
    query = _key_infos().order_by(Workspace.name, ApiKey.created_at)
    if workspace is not None:
        query = query.where(Workspace.name == workspace)
    return [_info(row) for row in await session.execute(query)]


async def workspace_keys(
    session: AsyncSession, workspace_id: str, *, before_id: str | None, limit: int
) -> list[KeyInfo]:
    """The workspace's keys, newest first (ids are time-ordered; the bootstrap key's
    fixed id sorts after them all)."""
    query = _key_infos().where(ApiKey.workspace_id == workspace_id)
    if before_id is not None:
        query = query.where(ApiKey.id < before_id)
    rows = await session.execute(query.order_by(ApiKey.id.desc()).limit(limit))
    return [_info(row) for row in rows]


async def get_key(session: AsyncSession, workspace_id: str | None, key_id: str) -> KeyInfo | None:
    """One key, in ``workspace_id`` (None: any workspace, for the command line)."""
    query = _key_infos().where(ApiKey.id == key_id)
    if workspace_id is not None:
        query = query.where(ApiKey.workspace_id == workspace_id)
    row = (await session.execute(query)).first()
    return _info(row) if row is not None else None


async def key_workspace(session: AsyncSession, key_id: str) -> str | None:
    return await session.scalar(select(ApiKey.workspace_id).where(ApiKey.id == key_id))


async def revoke_key(
    session: AsyncSession, key_id: str, now: datetime, workspace_id: str | None = None
) -> bool:
    query = update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
    if workspace_id is not None:
        query = query.where(ApiKey.workspace_id == workspace_id)
    result = await session.execute(query.values(revoked_at=now))
    return bool(getattr(result, "rowcount", 0))


async def rotate_key(
    session: AsyncSession,
    workspace_id: str,
    key_id: str,
    *,
    key_hash: str,
    prefix: str,
    grace_until: datetime,
    now: datetime,
) -> bool:
    """Give the key a new secret; the current one stays valid until ``grace_until``
    (a secret from an earlier rotation is dropped). False if no active key."""
    query = (
        update(ApiKey)
        .where(
            ApiKey.id == key_id, ApiKey.workspace_id == workspace_id, ApiKey.revoked_at.is_(None)
        )
        .values(
            previous_hash=ApiKey.key_hash,
            previous_expires_at=grace_until,
            key_hash=key_hash,
            prefix=prefix,
            rotated_at=now,
        )
    )
    result = await session.execute(query)
    return bool(getattr(result, "rowcount", 0))


async def list_workspaces(
    session: AsyncSession, *, after_name: str | None, limit: int
) -> list[tuple[str, str, datetime, int]]:
    """(id, name, created_at, active keys) by name."""
    active = (
        select(func.count())
        .where(ApiKey.workspace_id == Workspace.id, ApiKey.revoked_at.is_(None))
        .scalar_subquery()
    )
    query = select(Workspace.id, Workspace.name, Workspace.created_at, active)
    if after_name is not None:
        query = query.where(Workspace.name > after_name)
    rows = await session.execute(query.order_by(Workspace.name).limit(limit))
    return [(r[0], r[1], r[2], int(r[3])) for r in rows]


async def workspace_ids(session: AsyncSession, names: list[str]) -> dict[str, str]:
    """Name -> id of those of ``names`` that exist."""
    if not names:
        return {}
    rows = await session.execute(
        select(Workspace.name, Workspace.id).where(Workspace.name.in_(names))
    )
    return {str(r[0]): str(r[1]) for r in rows}


async def set_plan(session: AsyncSession, name: str, plan: str | None) -> str | None:
    """Assign ``plan`` to the workspace; its id, or None if there is no such one."""
    workspace_id = await session.scalar(select(Workspace.id).where(Workspace.name == name))
    if workspace_id is not None:
        await session.execute(
            update(Workspace).where(Workspace.id == workspace_id).values(plan=plan)
        )
    return workspace_id


async def workspace_exists(session: AsyncSession, name: str) -> bool:
    return (await session.scalar(select(Workspace.id).where(Workspace.name == name))) is not None


async def add_audit(db: AsyncSession | AsyncConnection, event: AuditRecord) -> None:
    """Add an entry in the caller's transaction (a session's or a connection's)."""
    await db.execute(insert(AuditEvent), asdict(event))


async def list_audit(
    session: AsyncSession,
    workspace_id: str,
    *,
    before_id: str | None,
    limit: int,
    action: str | None = None,
    actor_key_id: str | None = None,
) -> list[AuditRecord]:
    """The workspace's audit log, newest first."""
    query = select(AuditEvent).where(AuditEvent.workspace_id == workspace_id)
    if before_id is not None:
        query = query.where(AuditEvent.id < before_id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    if actor_key_id is not None:
        query = query.where(AuditEvent.actor_key_id == actor_key_id)
    rows = (await session.execute(query.order_by(AuditEvent.id.desc()).limit(limit))).scalars()
    fields = ("id", "workspace_id", "action", "actor_key_id", "target_id", "ip",
              "user_agent", "details", "created_at")  # fmt: skip
    return [AuditRecord(**{name: getattr(r, name) for name in fields}) for r in rows]
