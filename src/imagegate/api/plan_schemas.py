"""Bodies of /api/image/quotas and /api/image/workspaces/{name}/plan (docs/plans.md)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from imagegate.api.text import Name
from imagegate.domain.plans import Plan
from imagegate.services.quotas import Standing


class PlanAssign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: Name | None = Field(
        max_length=64, description="A plan of the configuration file; null: the file's default"
    )


class QuotaPublic(BaseModel):
    quota: str = Field(description="e.g. images_per_day, user_credits_per_month")
    limit: int
    used: int
    remaining: int
    resets_at: datetime

    @classmethod
    def from_standing(cls, s: Standing) -> QuotaPublic:
        return cls(quota=s.limit.name, limit=s.limit.amount, used=s.used,
                   remaining=max(0, s.limit.amount - s.used), resets_at=s.resets_at)  # fmt: skip


class QuotasPublic(BaseModel):
    plan: str | None = Field(description="The workspace's plan (null: none, no limits)")
    modes: list[str] | None = Field(description="The modes the plan allows (null: any)")
    actions: list[str] | None = Field(description="The actions the plan allows (null: any)")
    max_variations: int | None
    watermark: bool
    quotas: list[QuotaPublic]

    @classmethod
    def from_plan(cls, plan: Plan | None, standing: list[Standing]) -> QuotasPublic:
        if plan is None:
            return cls(plan=None, modes=None, actions=None, max_variations=None,
                       watermark=False, quotas=[])  # fmt: skip
        return cls(
            plan=plan.name,
            modes=sorted(plan.modes) if plan.modes is not None else None,
            actions=sorted(plan.actions) if plan.actions is not None else None,
            max_variations=plan.max_variations, watermark=plan.watermark,
            quotas=[QuotaPublic.from_standing(s) for s in standing],
        )  # fmt: skip
