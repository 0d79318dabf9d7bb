"""A workspace's own style presets (the ``styles`` table), as domain ``Preset``s."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import Style, Workspace
from imagegate.db.upsert import dialect_insert
from imagegate.domain.presets import Preset

styles: Table = Style.__table__  # type: ignore[assignment]
workspaces: Table = Workspace.__table__  # type: ignore[assignment]

_FIELDS = ("name", "description", "template", "negative_prompt", "base_style", "ratio",
           "mode", "model", "provider_options", "created_at", "updated_at")  # fmt: skip


def _preset(row: Mapping[Any, Any]) -> Preset:
    return Preset(**{k: row[k] for k in _FIELDS})


async def lock_workspace(conn: AsyncConnection, workspace_id: str) -> None:
    """Hold the workspace's row for this transaction (PostgreSQL; SQLite has a single
    writer anyway), so that two creates cannot both pass the per-workspace limit."""
    query = select(workspaces.c.id).where(workspaces.c.id == workspace_id).with_for_update()
    await conn.execute(query)


async def count_styles(conn: AsyncConnection, workspace_id: str) -> int:
    query = select(func.count()).select_from(styles).where(styles.c.workspace_id == workspace_id)
    return int(await conn.scalar(query) or 0)


async def insert_style(conn: AsyncConnection, workspace_id: str, values: dict[str, Any]) -> bool:
    """Add the preset; False if the workspace has one of that name already."""
    query = dialect_insert(conn, styles).values(workspace_id=workspace_id, **values)
    # RETURNING, not rowcount: psycopg reports -1 for a row skipped by DO NOTHING.
    result = await conn.execute(query.on_conflict_do_nothing().returning(styles.c.name))
    return result.first() is not None


async def get_style(conn: AsyncConnection, workspace_id: str, name: str) -> Preset | None:
    query = select(styles).where(styles.c.workspace_id == workspace_id, styles.c.name == name)
    row = (await conn.execute(query)).mappings().first()
    return _preset(row) if row is not None else None


async def list_styles(conn: AsyncConnection, workspace_id: str) -> list[Preset]:
    query = select(styles).where(styles.c.workspace_id == workspace_id).order_by(styles.c.name)
    return [_preset(row) for row in (await conn.execute(query)).mappings()]


async def update_style(
    conn: AsyncConnection, workspace_id: str, name: str, values: dict[str, Any]
) -> Preset | None:
    await conn.execute(
        update(styles)
        .where(styles.c.workspace_id == workspace_id, styles.c.name == name)
        .values(**values)
    )
    return await get_style(conn, workspace_id, name)


async def delete_style(conn: AsyncConnection, workspace_id: str, name: str) -> bool:
    query = delete(styles).where(styles.c.workspace_id == workspace_id, styles.c.name == name)
    return bool((await conn.execute(query)).rowcount)
