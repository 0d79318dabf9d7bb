"""The configuration file's account tables: ``[moderation]`` (the prompt stage's
rules, docs/moderation.md), ``[plans.<name>]`` (docs/plans.md) and
``[workspaces.<name>]`` (a workspace's own settings, docs/configuration.md).
providers.config holds them in the file's one schema."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from imagegate.domain import moderation, plans
from imagegate.domain.jobs import JobAction
from imagegate.domain.params import Mode


class Strict(BaseModel):
    """The file's tables: unknown keys refused, values frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Terms = dict[str, tuple[str, ...]]
_TERMS: Any = Field(default_factory=dict)
_ALLOW = Field(default=(), max_length=moderation.MAX_TERMS)


def _check_terms(value: Terms) -> Terms:
    unknown = sorted(set(value) - set(moderation.CATEGORIES))
    if unknown:
        raise ValueError(
            f"unknown moderation categor(ies) {', '.join(unknown)}; "
            f"one of {', '.join(moderation.CATEGORIES)}"
        )
    if sum(len(terms) for terms in value.values()) > moderation.MAX_TERMS:
        raise ValueError(f"at most {moderation.MAX_TERMS} terms")
    for category, terms in value.items():
        for term in terms:
            found = moderation.term_words(term)
            if not found or len(found) > moderation.MAX_TERM_WORDS:
                raise ValueError(
                    f"{category}: {term!r} must be 1 to {moderation.MAX_TERM_WORDS} words"
                )
    return value


class WorkspaceModeration(Strict):
    """A workspace's changes to ``[moderation]``: unset fields inherit; its terms and
    allowed phrases are added to the global ones."""

    prompt: bool | None = None
    builtin: bool | None = None
    terms: Terms = _TERMS
    allow: tuple[str, ...] = _ALLOW

    @field_validator("terms")
    @classmethod
    def _terms(cls, value: Terms) -> Terms:
        return _check_terms(value)


class ModerationTable(Strict):
    """``[moderation]``: the prompt stage (docs/moderation.md)."""

    # Whether prompts are screened at all, and whether the built-in lists take part.
    prompt: bool = True
    builtin: bool = True
    terms: Terms = _TERMS
    allow: tuple[str, ...] = _ALLOW
    workspaces: dict[str, WorkspaceModeration] = Field(default_factory=dict)
    # Compiled rules by workspace name (None: a workspace without its own table).
    _compiled: dict[str | None, moderation.Rules | None] = PrivateAttr(default_factory=dict)

    @field_validator("terms")
    @classmethod
    def _terms(cls, value: Terms) -> Terms:
        return _check_terms(value)

    def rules_for(self, workspace_name: str) -> moderation.Rules | None:
        """The compiled rules that screen the workspace's prompts; None when its
        prompt stage is off. Bounded: one entry per configured workspace, plus one."""
        key = workspace_name if workspace_name in self.workspaces else None
        if key not in self._compiled:
            self._compiled[key] = self._compile(self.workspaces.get(key or ""))
        return self._compiled[key]

    def _compile(self, own: WorkspaceModeration | None) -> moderation.Rules | None:
        on = own.prompt if own is not None and own.prompt is not None else self.prompt
        if not on:
            return None
        builtin = own.builtin if own is not None and own.builtin is not None else self.builtin
        terms: dict[str, list[str]] = {c: list(t) for c, t in self.terms.items()}
        allow = list(self.allow)
        if own is not None:
            for category, listed in own.terms.items():
                terms.setdefault(category, []).extend(listed)
            allow.extend(own.allow)
        rules = moderation.Rules.build(terms, allow, builtin=builtin)
        return None if rules.empty else rules


_LIMIT = Field(default=None, ge=0, le=10**9)


class PlanTable(Strict):
    """``[plans.<name>]``: what a workspace on the plan may do (docs/plans.md)."""

    modes: tuple[Mode, ...] | None = None
    actions: tuple[JobAction, ...] | None = None
    max_variations: int | None = Field(default=None, ge=1, le=4)
    watermark: bool = False
    images_per_day: int | None = _LIMIT
    images_per_month: int | None = _LIMIT
    credits_per_day: int | None = _LIMIT
    credits_per_month: int | None = _LIMIT
    user_images_per_day: int | None = _LIMIT
    user_images_per_month: int | None = _LIMIT
    user_credits_per_day: int | None = _LIMIT
    user_credits_per_month: int | None = _LIMIT

    def plan(self, name: str) -> plans.Plan:
        limits = []
        for scope in plans.SCOPES:
            for unit in plans.UNITS:
                for period in plans.PERIODS:
                    prefix = "user_" if scope == "user" else ""
                    amount = getattr(self, f"{prefix}{unit}_per_{period}")
                    if amount is not None:
                        limits.append(plans.Limit(scope, period, unit, amount))
        return plans.Plan(
            name=name,
            modes=frozenset(m.value for m in self.modes) if self.modes is not None else None,
            actions=frozenset(a.value for a in self.actions) if self.actions is not None else None,
            max_variations=self.max_variations,
            watermark=self.watermark,
            limits=tuple(limits),
        )


class WorkspaceTable(Strict):
    """``[workspaces.<name>]``: a workspace's own account settings."""

    # Finished jobs (with their files) are deleted this many days after they ended;
    # None: IMAGEGATE_RETENTION_JOBS_DAYS; 0: kept.
    retention_days: int | None = Field(default=None, ge=0, le=36_500)
    # Keep the workspace's prompts out of webhook bodies and the moderation log (no
    # workspace's prompts are ever written to the server's logs).
    private_prompts: bool = False
    # Jobs spend the workspace's credits (docs/credits.md): None follows
    # IMAGEGATE_CREDITS_REQUIRED.
    credits: bool | None = None
    # The workspace's plan until the operator assigns one over the API.
    plan: str | None = None
