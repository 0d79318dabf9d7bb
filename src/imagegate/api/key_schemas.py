"""Request and response bodies of /api/image/keys, /api/image/audit and
/api/image/workspaces (docs/keys.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from imagegate.api.text import Name
from imagegate.domain.records import AuditRecord, KeyInfo
from imagegate.services.workspaces import WorkspaceInfo


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(default="key", min_length=1, max_length=100)
    role: Literal["viewer", "member", "admin"] = "member"
    expires_at: AwareDatetime | None = Field(
        default=None, description="When the key stops working (at most 10 years ahead)"
    )
    workspace: Name | None = Field(
        default=None,
        max_length=64,
        description="Another workspace, by name (the operator key only; created if new)",
    )


class KeyRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: int = Field(
        default=86_400,
        ge=0,
        le=604_800,
        description="How long the current secret keeps working beside the new one",
    )


class KeyPublic(BaseModel):
    """An API key as listed: its first characters, never its secret."""

    key_id: str
    workspace: str
    name: str
    prefix: str = Field(description="The secret's first characters, to tell keys apart")
    role: Literal["viewer", "member", "admin", "operator"]
    created_at: datetime
    created_by: str | None = Field(description="The key that made it (null: command line)")
    expires_at: datetime | None
    last_used_at: datetime | None = Field(
        description="Last authenticated, accurate to the server's key cache (30 s)"
    )
    rotated_at: datetime | None
    previous_secret_expires_at: datetime | None = Field(
        description="Until when the secret before the last rotation still works"
    )
    revoked_at: datetime | None

    @classmethod
    def from_info(cls, info: KeyInfo) -> KeyPublic:
        return cls(
            key_id=info.key_id, workspace=info.workspace, name=info.name, prefix=info.prefix,
            role=info.role, created_at=info.created_at, created_by=info.created_by,
            expires_at=info.expires_at, last_used_at=info.last_used_at,
            rotated_at=info.rotated_at, previous_secret_expires_at=info.previous_expires_at,
            revoked_at=info.revoked_at,
        )  # fmt: skip


class KeyWithSecret(KeyPublic):
    secret: str = Field(description="The key itself: shown in this answer only")


class KeysPublic(BaseModel):
    data: list[KeyPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")
    has_more: bool


class AuditEntryPublic(BaseModel):
    id: str
    action: str = Field(description="key.created, key.rotated, key.revoked, job.canceled, …")
    actor_key_id: str | None = Field(description="The key that did it (null: command line)")
    target_id: str | None = Field(description="The key, job or workspace it was done to")
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]
    created_at: datetime

    @classmethod
    def from_record(cls, record: AuditRecord) -> AuditEntryPublic:
        return cls(
            id=record.id, action=record.action, actor_key_id=record.actor_key_id,
            target_id=record.target_id, ip=record.ip, user_agent=record.user_agent,
            details=record.details, created_at=record.created_at,
        )  # fmt: skip


class AuditPublic(BaseModel):
    data: list[AuditEntryPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")
    has_more: bool


class WorkspaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name = Field(min_length=1, max_length=64)


class WorkspacePublic(BaseModel):
    workspace_id: str
    name: str
    created_at: datetime
    active_keys: int

    @classmethod
    def from_info(cls, info: WorkspaceInfo) -> WorkspacePublic:
        return cls(
            workspace_id=info.workspace_id, name=info.name, created_at=info.created_at,
            active_keys=info.active_keys,
        )  # fmt: skip


class WorkspacesPublic(BaseModel):
    data: list[WorkspacePublic]
    next_cursor: str | None = Field(description="Pass as `after` for the next page")


class WorkspaceCreated(BaseModel):
    workspace_id: str
    name: str
    admin_key: KeyWithSecret
