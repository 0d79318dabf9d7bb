"""Response bodies of /api/image/moderation."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from imagegate.domain.records import ModerationRecord


class ModerationDecisionPublic(BaseModel):
    """A refusal: a prompt refused at create (``stage: prompt``, nothing was made), or
    a provider's refusal of a job (``stage: provider``, the job failed, not charged)."""

    id: str
    stage: Literal["prompt", "provider", "output"]
    category: str | None = Field(description="The content-policy category (prompt stage)")
    reason: str | None = Field(description="The listed term that matched, or the provider's word")
    job_id: str | None
    key_id: str | None = Field(description="The API key that sent the request")
    user: str | None = Field(description="The end user the request named")
    excerpt: str | None = Field(description="The prompt's first 500 characters")
    created_at: datetime

    @classmethod
    def from_record(cls, record: ModerationRecord) -> ModerationDecisionPublic:
        return cls(
            id=record.id, stage=record.stage,
            category=record.category, reason=record.reason, job_id=record.job_id,
            key_id=record.key_id, user=record.end_user, excerpt=record.excerpt,
            created_at=record.created_at,
        )  # fmt: skip


class ModerationDecisionsPublic(BaseModel):
    data: list[ModerationDecisionPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")
    has_more: bool
