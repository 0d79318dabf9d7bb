"""The provider configuration file (TOML, named by ``IMAGEGATE_CONFIG``).

It says which providers exist, how to reach them, what they cost and how jobs are
routed among them, and which prompts are refused (``[moderation]``, docs/moderation.md).
Secrets never appear in it: a provider names the environment variable that holds its
key (``api_key_env``). See docs/providers.md."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import (
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from imagegate.domain import plans as plan_rules
from imagegate.domain import scorecard
from imagegate.domain.jobs import JobAction
from imagegate.domain.params import Mode
from imagegate.domain.rates import Rate, parse_rate
from imagegate.domain.routing import Preference
from imagegate.errors import ImagegateError
from imagegate.providers.base import Action
from imagegate.providers.workspace_config import (
    ModerationTable,
    PlanTable,
    WorkspaceTable,
)
from imagegate.providers.workspace_config import Strict as _Strict

ADAPTER_TYPES = (
    "builtin", "openai", "stability", "replicate", "fal", "bfl", "comfyui", "a1111", "diffusers",
    "midjourney_proxy",
)  # fmt: skip


class ConfigError(ImagegateError):
    """The provider configuration file is missing, malformed or inconsistent."""

    code = "invalid_config"
    title = "Invalid provider configuration"


class Policy(StrEnum):
    """How ``auto`` picks among the providers able to do a job."""

    PRIORITY = "priority"  # highest ``priority`` first, then file order
    CHEAPEST = "cheapest"  # lowest price for the job's model, mode and action
    FASTEST = "fastest"  # lowest measured median latency (priority until measured)


# USD per image: {model: {mode or action: price}}, e.g. {"gpt-image-1": {"draft": 0.011}}.
PriceTable = dict[str, dict[str, float]]


MAX_NOTE_CHARS = 200


class Fact(_Strict):
    """One checklist item an operator rates: 1-5, with a short note saying why."""

    score: int = Field(ge=scorecard.MIN_POINTS, le=scorecard.MAX_POINTS, strict=True)
    note: str | None = Field(default=None, max_length=MAX_NOTE_CHARS)


class FactsTable(_Strict):
    """``[providers.<name>.facts]``: the checklist items only an operator knows (see
    domain/scorecard.py). Each is ``{score = 1..5, note = "..."}`` or a bare score."""

    compliance_comfort: Fact | None = None
    cost_predictability: Fact | None = None
    output_quality: Fact | None = None
    status_clarity: Fact | None = None
    data_retention: Fact | None = None
    support: Fact | None = None
    commercial_terms: Fact | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_scores(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {
                k: {"score": v} if isinstance(v, int) and not isinstance(v, bool) else v
                for k, v in data.items()
            }
        return data

    def given(self) -> dict[str, Fact]:
        """The facts configured, in the checklist's order."""
        return {name: fact for name in scorecard.FACTS if (fact := getattr(self, name)) is not None}


class ProviderTable(_Strict):
    """One ``[providers.<name>]`` table."""

    type: str | None = None
    enabled: bool = True
    base_url: str | None = None
    api_key_env: str | None = None
    models: tuple[str, ...] = ()
    priority: int = 0
    concurrency: int | None = Field(default=None, ge=1)
    rate_limit: str | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    poll_interval_s: float = Field(default=1.0, gt=0)
    # The circuit breaker; unset: on for network providers, off for the ones that run
    # here (builtin, diffusers), whose failures say nothing about availability.
    breaker: bool | None = None
    prices: PriceTable = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)
    facts: FactsTable = Field(default_factory=FactsTable)

    @property
    def compliance(self) -> int | None:
        fact = self.facts.compliance_comfort
        return fact.score if fact is not None else None

    @field_validator("prices")
    @classmethod
    def _price_keys(cls, value: PriceTable) -> PriceTable:
        # A misspelt key would be a price silently never charged.
        known = {m.value for m in Mode} | {a.value for a in JobAction}
        for model, table in value.items():
            unknown = sorted(set(table) - known)
            if unknown:
                raise ValueError(
                    f"prices of {model!r}: unknown key(s) {', '.join(unknown)}; prices are "
                    f"by mode or action: {', '.join(sorted(known))}"
                )
        return value

    @field_validator("rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None:
            parse_rate(value)  # raises ValueError with the accepted form
        return value

    @property
    def rate(self) -> Rate | None:
        return parse_rate(self.rate_limit) if self.rate_limit else None


class BreakerTable(_Strict):
    """When a provider's circuit opens, and for how long."""

    window_s: float = Field(default=60.0, gt=0)
    min_calls: int = Field(default=10, ge=1)
    failure_rate: float = Field(default=0.5, gt=0, le=1)
    open_s: float = Field(default=30.0, gt=0)


ComplianceFloor = int | None
_FLOOR = Field(default=None, ge=scorecard.MIN_POINTS, le=scorecard.MAX_POINTS, strict=True)


class WorkspaceRouting(_Strict):
    policy: Policy | None = None
    # Providers whose compliance_comfort is below this (or unrated) do none of the
    # workspace's jobs.
    min_compliance: ComplianceFloor = _FLOOR


# A preference: a policy over every capable provider, or providers to try first.
PreferValue = Policy | tuple[str, ...]
MAX_PREFERRED = 16
MAX_PREFER_STYLES = 256
_STYLE_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")  # a style preset's name


class PreferTable(_Strict):
    """``[routing.prefer]``: per style preset (or base style) and per action, which
    providers take ``auto`` jobs first, or which policy orders them."""

    styles: dict[str, PreferValue] = Field(default_factory=dict, max_length=MAX_PREFER_STYLES)
    actions: dict[str, PreferValue] = Field(default_factory=dict)

    @field_validator("styles", "actions", mode="before")
    @classmethod
    def _values(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        for key, wanted in value.items():
            if isinstance(wanted, str) and wanted not in {p.value for p in Policy}:
                raise ValueError(
                    f"{key}: {wanted!r} is not a policy ({', '.join(p.value for p in Policy)});"
                    f' list providers as ["{wanted}"]'
                )
            if isinstance(wanted, list):
                if not 1 <= len(wanted) <= MAX_PREFERRED:
                    raise ValueError(f"{key}: list 1 to {MAX_PREFERRED} providers")
                if len(set(map(str, wanted))) != len(wanted):
                    raise ValueError(f"{key}: a provider is listed twice")
        return value

    @field_validator("styles")
    @classmethod
    def _style_names(cls, value: dict[str, PreferValue]) -> dict[str, PreferValue]:
        bad = sorted(name for name in value if not _STYLE_NAME.match(name))
        if bad:
            raise ValueError(f"not a style preset name: {', '.join(bad)}")
        return value

    @field_validator("actions")
    @classmethod
    def _action_names(cls, value: dict[str, PreferValue]) -> dict[str, PreferValue]:
        known = {a.value for a in Action}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(
                f"unknown action(s) {', '.join(unknown)}; one of {', '.join(sorted(known))}"
            )
        return value

    def providers(self) -> set[str]:
        """Every provider a preference names."""
        named = [*self.styles.values(), *self.actions.values()]
        return {name for value in named if isinstance(value, tuple) for name in value}


class RoutingTable(_Strict):
    policy: Policy = Policy.PRIORITY
    # Try at most this many different providers for one job (the fallback chain).
    max_providers: int = Field(default=3, ge=1)
    # The floor for every workspace without its own.
    min_compliance: ComplianceFloor = _FLOOR
    prefer: PreferTable = Field(default_factory=PreferTable)
    workspaces: dict[str, WorkspaceRouting] = Field(default_factory=dict)


class ConfigFile(_Strict):
    plans: dict[str, PlanTable] = Field(default_factory=dict)
    # The plan of a workspace that has none of its own (None: no plan, no limits).
    default_plan: str | None = None
    workspaces: dict[str, WorkspaceTable] = Field(default_factory=dict)
    moderation: ModerationTable = Field(default_factory=ModerationTable)
    routing: RoutingTable = Field(default_factory=RoutingTable)
    breaker: BreakerTable = Field(default_factory=BreakerTable)
    providers: dict[str, ProviderTable] = Field(default_factory=dict)

    @field_validator("providers")
    @classmethod
    def _known_types(cls, providers: dict[str, ProviderTable]) -> dict[str, ProviderTable]:
        for name, table in providers.items():
            kind = table.type or name
            if kind not in ADAPTER_TYPES:
                raise ValueError(
                    f"providers.{name}: unknown type {kind!r}; one of {', '.join(ADAPTER_TYPES)}"
                )
            if ":" in name:
                raise ValueError(f"providers.{name}: a provider name may not contain ':'")
        return providers

    @model_validator(mode="after")
    def _plans_exist(self) -> ConfigFile:
        named = {t.plan for t in self.workspaces.values() if t.plan is not None}
        if self.default_plan is not None:
            named.add(self.default_plan)
        unknown = sorted(named - set(self.plans))
        if unknown:
            raise ValueError(f"unknown plan(s) {', '.join(unknown)}; define [plans.<name>]")
        return self

    def plan_named(self, name: str | None) -> plan_rules.Plan | None:
        table = self.plans.get(name) if name is not None else None
        return table.plan(name) if table is not None and name is not None else None

    def configured_plan(self, workspace_name: str) -> str | None:
        table = self.workspaces.get(workspace_name)
        if table is not None and table.plan is not None:
            return table.plan
        return self.default_plan

    @model_validator(mode="after")
    def _preferred_exist(self) -> ConfigFile:
        # builtin exists unless its table disables it; a disabled provider may be named
        # (it is skipped), a misspelt one would be a preference silently never applied.
        known = {*self.providers, "builtin"}
        unknown = sorted(self.routing.prefer.providers() - known)
        if unknown:
            raise ValueError(f"routing.prefer names unknown provider(s): {', '.join(unknown)}")
        return self

    def adapter_type(self, name: str) -> str:
        return self.providers[name].type or name

    def credits_for(self, workspace_name: str, default: bool) -> bool:
        table = self.workspaces.get(workspace_name)
        return default if table is None or table.credits is None else table.credits

    def private_prompts(self, workspace_name: str) -> bool:
        table = self.workspaces.get(workspace_name)
        return table is not None and table.private_prompts

    def policy_for(self, workspace_name: str) -> Policy:
        override = self.routing.workspaces.get(workspace_name)
        if override is not None and override.policy is not None:
            return override.policy
        return self.routing.policy

    def min_compliance_for(self, workspace_name: str) -> int | None:
        override = self.routing.workspaces.get(workspace_name)
        if override is not None and override.min_compliance is not None:
            return override.min_compliance
        return self.routing.min_compliance

    def preference_for(
        self, action: str, style: str | None, preset: str | None
    ) -> Preference | None:
        """The preference for a job doing ``action`` (a provider action) with base
        ``style`` and style ``preset``: the action's, else the preset's, else the base
        style's (an upscale is chosen for what it does, whatever the picture's style)."""
        prefer = self.routing.prefer
        for subject, found in (
            (action, prefer.actions.get(action)),
            (f"style {preset}", prefer.styles.get(preset) if preset else None),
            (f"style {style}", prefer.styles.get(style) if style else None),
        ):
            if isinstance(found, Policy):
                return Preference(subject, policy=found.value)
            if found is not None:
                return Preference(subject, providers=found)
        return None


def load(path: Path | None) -> ConfigFile:
    """The file at ``path``, validated; no file means the built-in renderer alone."""
    if path is None:
        return ConfigFile()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as error:
        raise ConfigError(f"IMAGEGATE_CONFIG: no such file: {path}") from error
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from error
    try:
        return ConfigFile.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors()
        )
        raise ConfigError(f"{path}: {problems}") from error


def api_key(table: ProviderTable, name: str, secret: Callable[[str], str | None]) -> str | None:
    """The provider's key from the environment variable its table names."""
    if table.api_key_env is None:
        return None
    value = secret(table.api_key_env)
    if not value:
        raise ConfigError(f"providers.{name}: environment variable {table.api_key_env} is not set")
    return value
