"""Uploads, in SQLAlchemy Core, every statement scoped to a workspace (the retention
sweep's, which are not, live in db.retention_repo)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Table, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from imagegate.db.models import Upload
from imagegate.domain.records import UploadRecord

uploads: Table = Upload.__table__  # type: ignore[assignment]

_FIELDS = ("id", "workspace_id", "storage_key", "content_type", "width", "height",
           "size_bytes", "sha256", "created_at", "source_url")  # fmt: skip


def _record(row: Mapping[Any, Any]) -> UploadRecord:
    return UploadRecord(**{name: row[name] for name in _FIELDS})


async def insert_upload(conn: AsyncConnection, upload: UploadRecord) -> None:
    await conn.execute(insert(uploads), {name: getattr(upload, name) for name in _FIELDS})


async def get_upload(
    conn: AsyncConnection, workspace_id: str, upload_id: str
) -> UploadRecord | None:
    query = select(uploads).where(uploads.c.id == upload_id, uploads.c.workspace_id == workspace_id)
    row = (await conn.execute(query)).mappings().first()
    return _record(row) if row is not None else None


async def list_uploads(
    conn: AsyncConnection, workspace_id: str, *, before_id: str | None, limit: int
) -> list[UploadRecord]:
    """Newest first. Ids are time-ordered, so ``before_id`` is a stable cursor."""
    query = select(uploads).where(uploads.c.workspace_id == workspace_id)
    if before_id is not None:
        query = query.where(uploads.c.id < before_id)
    rows = await conn.execute(query.order_by(uploads.c.id.desc()).limit(limit))
    return [_record(r) for r in rows.mappings()]


async def delete_upload(conn: AsyncConnection, workspace_id: str, upload_id: str) -> bool:
    result = await conn.execute(
        delete(uploads).where(uploads.c.id == upload_id, uploads.c.workspace_id == workspace_id)
    )
    return bool(result.rowcount)
