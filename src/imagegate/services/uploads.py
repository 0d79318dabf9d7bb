"""Uploads (placeholder until the uploads work lands): look one up by id."""

from __future__ import annotations

from imagegate.domain.records import Principal, UploadRecord
from imagegate.errors import NotFound
from imagegate.runtime import Runtime


async def get(rt: Runtime, principal: Principal, upload_id: str) -> UploadRecord:
    raise NotFound("No upload with this id in your workspace.")


async def resolve_image_ref(
    rt: Runtime, principal: Principal, ref: str, field: str
) -> UploadRecord:
    raise NotFound(f"{field}: no upload with this id in your workspace.")
