"""Bodies of /api/image/uploads (docs/uploads.md)."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from imagegate.domain.records import UploadRecord
from imagegate.net.ssrf import MAX_URL_CHARS
from imagegate.storage.base import Storage


class UploadCreate(BaseModel):
    """An image as base64 (``data``) or as an https URL for the server to fetch
    (``url``): exactly one of the two. Files can also be sent as
    ``multipart/form-data`` with the image in the field ``file``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"url": "https://example.com/cat.png"}]},
    )

    data: str | None = Field(
        default=None, description="The image file, base64 (standard alphabet, padded)"
    )
    url: str | None = Field(
        default=None,
        max_length=MAX_URL_CHARS,
        description="An https URL of the image, on a public address",
    )

    @model_validator(mode="after")
    def _one_source(self) -> UploadCreate:
        if (self.data is None) == (self.url is None):
            raise ValueError("give exactly one of `data` (base64) and `url`")
        return self

    def decoded(self) -> bytes:
        """``data`` as bytes; ``ValueError`` when it is not base64."""
        try:
            return base64.b64decode(self.data or "", validate=True)
        except binascii.Error as error:
            raise ValueError(f"data: not valid base64 ({error})") from None


class UploadPublic(BaseModel):
    upload_id: str
    content_type: str = Field(description="image/png or image/jpeg: what it was re-encoded to")
    width: int
    height: int
    size_bytes: int = Field(description="Of the stored, re-encoded file")
    sha256: str = Field(description="Of the stored, re-encoded file, hex")
    created_at: datetime
    source_url: str | None = Field(description="The URL it was fetched from, if it was")
    url: str = Field(description="Where to download it: a signed link that expires")

    @classmethod
    def from_record(cls, upload: UploadRecord, storage: Storage) -> UploadPublic:
        return cls(
            upload_id=upload.id,
            content_type=upload.content_type,
            width=upload.width,
            height=upload.height,
            size_bytes=upload.size_bytes,
            sha256=upload.sha256,
            created_at=upload.created_at,
            source_url=upload.source_url,
            url=storage.url(upload.storage_key),
        )


class UploadsPublic(BaseModel):
    data: list[UploadPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")
    has_more: bool


def request_body_schema() -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of the create route, which reads its body itself
    (JSON or a multipart form)."""
    return {
        "required": True,
        "content": {
            "application/json": {"schema": UploadCreate.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "The image file (PNG, JPEG or WebP)",
                        }
                    },
                    "required": ["file"],
                }
            },
        },
    }
