"""Bodies of /api/image/credits (docs/credits.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from imagegate.api.text import FreeText, Name
from imagegate.domain.ledger import MAX_GRANT, Balance
from imagegate.domain.records import LedgerEntry


class LedgerEntryPublic(BaseModel):
    id: int
    kind: Literal["grant", "reserve", "settle", "void"]
    amount: int = Field(description="grant: added; reserve: held; settle: charged; void: released")
    job_id: str | None
    actor_key_id: str | None = Field(description="Who granted (grants only)")
    note: str | None
    created_at: datetime

    @classmethod
    def from_entry(cls, e: LedgerEntry) -> LedgerEntryPublic:
        return cls(id=e.id, kind=e.kind, amount=e.amount, job_id=e.job_id,
                   actor_key_id=e.actor_key_id, note=e.note, created_at=e.created_at)  # fmt: skip


class BalancePublic(BaseModel):
    granted: int
    charged: int
    reserved: int = Field(description="Held by jobs not finished yet")
    available: int = Field(description="granted - charged - reserved: what new jobs may hold")

    @classmethod
    def from_balance(cls, b: Balance) -> BalancePublic:
        return cls(granted=b.granted, charged=b.charged, reserved=b.reserved,
                   available=b.available)  # fmt: skip


class CreditsPublic(BalancePublic):
    required: bool = Field(description="Whether this workspace's jobs spend credits")
    recent: list[LedgerEntryPublic]


class LedgerPublic(BaseModel):
    data: list[LedgerEntryPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")
    has_more: bool


class GrantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: int = Field(ge=1, le=MAX_GRANT)
    note: FreeText | None = Field(default=None, max_length=500)
    workspace: Name | None = Field(
        default=None, max_length=64, description="Another workspace (the operator key only)"
    )
