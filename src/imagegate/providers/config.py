"""The provider configuration file (TOML, named by ``IMAGEGATE_CONFIG``).

It says which providers exist, how to reach them, what they cost and how jobs are
routed among them. Secrets never appear in it: a provider names the environment
variable that holds its key (``api_key_env``). See docs/providers.md."""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from imagegate.domain.jobs import JobAction
from imagegate.domain.params import Mode
from imagegate.domain.rates import Rate, parse_rate
from imagegate.errors import ImagegateError

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


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# USD per image: {model: {mode or action: price}}, e.g. {"gpt-image-1": {"draft": 0.011}}.
PriceTable = dict[str, dict[str, float]]


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


class WorkspaceRouting(_Strict):
    policy: Policy


class RoutingTable(_Strict):
    policy: Policy = Policy.PRIORITY
    # Try at most this many different providers for one job (the fallback chain).
    max_providers: int = Field(default=3, ge=1)
    workspaces: dict[str, WorkspaceRouting] = Field(default_factory=dict)


class ConfigFile(_Strict):
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

    def adapter_type(self, name: str) -> str:
        return self.providers[name].type or name

    def policy_for(self, workspace_name: str) -> Policy:
        override = self.routing.workspaces.get(workspace_name)
        return override.policy if override else self.routing.policy


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
