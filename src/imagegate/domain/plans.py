"""Plans: what a workspace's jobs may do, and how many images and credits it (and
each of its end users) may spend per day and per month. Pure: the configuration
file defines plans (providers.config), services.quotas applies them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

SCOPES = ("workspace", "user")
PERIODS = ("day", "month")
UNITS = ("images", "credits")


@dataclass(frozen=True)
class Limit:
    """At most ``amount`` ``unit`` per ``period``, for the ``scope`` (the workspace as
    a whole, or each end user, the job's ``user``)."""

    scope: str
    period: str
    unit: str
    amount: int

    @property
    def name(self) -> str:
        prefix = "user_" if self.scope == "user" else ""
        return f"{prefix}{self.unit}_per_{self.period}"


@dataclass(frozen=True)
class Plan:
    name: str
    # None: any mode / action.
    modes: frozenset[str] | None = None
    actions: frozenset[str] | None = None
    max_variations: int | None = None
    watermark: bool = False
    limits: tuple[Limit, ...] = field(default_factory=tuple)

    def refusal(self, mode: str, action: str, variations: int) -> tuple[str, str] | None:
        """(field, why) when a job of this kind is outside the plan, else None."""
        if self.actions is not None and action not in self.actions:
            allowed = ", ".join(sorted(self.actions))
            return "action", f"the {self.name} plan allows {allowed} only, not {action}"
        if self.modes is not None and mode not in self.modes:
            allowed = ", ".join(sorted(self.modes))
            return "mode", f"the {self.name} plan makes {allowed} images only"
        if self.max_variations is not None and variations > self.max_variations:
            return "variations", (
                f"the {self.name} plan makes at most {self.max_variations} image(s) a job"
            )
        return None


def period_key(now: datetime, period: str) -> str:
    """The calendar period (UTC) ``now`` falls in: ``2026-12-04`` or ``2026-12``."""
    now = now.astimezone(UTC)
    return f"{now:%Y-%m-%d}" if period == "day" else f"{now:%Y-%m}"


def resets_at(now: datetime, period: str) -> datetime:
    """When the period ``now`` falls in ends (UTC midnight, or the next month's first)."""
    now = now.astimezone(UTC)
    if period == "day":
        return datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)
