"""Moderation decisions, in SQLAlchemy Core, every read scoped to a workspace (the
retention sweep's delete lives in db.retention_repo)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from sqlalchemy import Table, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import ModerationDecision
from imagegate.domain.records import ModerationRecord

decisions: Table = ModerationDecision.__table__  # type: ignore[assignment]


def _record(row: Mapping[Any, Any]) -> ModerationRecord:
    return ModerationRecord(**{c.name: row[c.name] for c in decisions.columns})


async def insert_decision(conn: AsyncConnection, decision: ModerationRecord) -> None:
    await conn.execute(insert(decisions), asdict(decision))


async def list_decisions(
    conn: AsyncConnection,
    workspace_id: str,
    *,
    before_id: str | None,
    limit: int,
    stage: str | None = None,
    category: str | None = None,
) -> list[ModerationRecord]:
    """Newest first; ids are time-ordered, so ``before_id`` is a stable cursor."""
    query = select(decisions).where(decisions.c.workspace_id == workspace_id)
    if before_id is not None:
        query = query.where(decisions.c.id < before_id)
    if stage is not None:
        query = query.where(decisions.c.stage == stage)
    if category is not None:
        query = query.where(decisions.c.category == category)
    rows = await conn.execute(query.order_by(decisions.c.id.desc()).limit(limit))
    return [_record(row) for row in rows.mappings()]
