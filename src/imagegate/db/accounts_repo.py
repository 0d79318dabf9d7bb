"""Workspaces and API keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from imagegate.db.models import ApiKey, Workspace
from imagegate.domain.ids import new_id
from imagegate.domain.records import KeyInfo, Principal


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
        )
    )
    return key_id


async def principal_for_hash(session: AsyncSession, key_hash: str) -> Principal | None:
    row = (
        await session.execute(
            select(ApiKey.id, ApiKey.workspace_id, Workspace.name, ApiKey.role)
            .join(Workspace, Workspace.id == ApiKey.workspace_id)
            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )
    ).first()
    if row is None:
        return None
    return Principal(key_id=row[0], workspace_id=row[1], workspace_name=row[2], role=row[3])


async def has_any_key(session: AsyncSession) -> bool:
    return (await session.scalar(select(ApiKey.id).limit(1))) is not None


async def list_keys(session: AsyncSession, workspace: str | None = None) -> list[KeyInfo]:
    query = (
        select(ApiKey.id, Workspace.name, ApiKey.name, ApiKey.prefix, ApiKey.role,
               ApiKey.created_at, ApiKey.revoked_at)
        .join(Workspace, Workspace.id == ApiKey.workspace_id)
        .order_by(Workspace.name, ApiKey.created_at)
    )  # fmt: skip
    if workspace is not None:
        query = query.where(Workspace.name == workspace)
    return [KeyInfo(*row) for row in await session.execute(query)]


async def revoke_key(session: AsyncSession, key_id: str, now: datetime) -> bool:
    result = await session.execute(
        update(ApiKey)
        .where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return bool(getattr(result, "rowcount", 0))
