"""Which providers this server has, built from the configuration file, and which one
serves a requested model."""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from imagegate.observability.logging import get_logger
from imagegate.providers.base import Provider
from imagegate.providers.builtin import BuiltinProvider
from imagegate.providers.config import ConfigError, ConfigFile, ProviderTable, api_key, load
from imagegate.providers.http import ProviderConfig, ReadLimits
from imagegate.providers.options import AdapterOptions
from imagegate.settings import Settings

log = get_logger("imagegate.providers")


@dataclass(frozen=True)
class ModelChoice:
    provider: str
    model: str

    @property
    def name(self) -> str:
        """How clients spell it: ``provider:model``, or ``provider`` when they coincide."""
        return self.provider if self.model == self.provider else f"{self.provider}:{self.model}"


# Providers that run in this process: no remote service whose health a breaker tracks.
LOCAL_TYPES = frozenset({"builtin", "diffusers"})


@dataclass(frozen=True)
class ProviderEntry:
    """A configured provider: its adapter and what the routing needs to know."""

    name: str
    type: str
    provider: Provider
    table: ProviderTable = field(default_factory=ProviderTable)
    order: int = 0

    @property
    def models(self) -> tuple[str, ...]:
        return self.provider.capabilities().models

    @property
    def breaker_enabled(self) -> bool:
        if self.table.breaker is not None:
            return self.table.breaker
        return self.type not in LOCAL_TYPES

    def price(self, model: str, key: str) -> float | None:
        """USD per image for ``model`` and ``key`` (a mode or an action), if listed."""
        return self.table.prices.get(model, {}).get(key)


class ProviderRegistry:
    def __init__(
        self, providers: dict[str, Provider] | list[ProviderEntry], config: ConfigFile | None = None
    ) -> None:
        if isinstance(providers, dict):
            providers = [
                ProviderEntry(name, name, provider, order=i)
                for i, (name, provider) in enumerate(providers.items())
            ]
        self._entries = {entry.name: entry for entry in providers}
        self.config = config or ConfigFile()

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRegistry:
        config = load(settings.config)
        entries: list[ProviderEntry] = []
        builtin_table = config.providers.get("builtin", ProviderTable())
        # The built-in renderer is set up by IMAGEGATE_BUILTIN_*: a table of options
        # for it would be ignored, so it is refused like any unknown option.
        AdapterOptions.of("builtin", builtin_table.options)
        if builtin_table.enabled:
            builtin = BuiltinProvider(
                latency_ms=settings.builtin_latency_ms,
                placeholder=settings.builtin_placeholder,
                fault_marker=settings.builtin_fault_marker,
                fault_attempts=settings.builtin_fault_attempts,
                processes=settings.resolved_builtin_processes,
            )
            entries.append(ProviderEntry("builtin", "builtin", builtin, builtin_table, -1))
        for order, (name, table) in enumerate(config.providers.items()):
            kind = config.adapter_type(name)
            if kind == "builtin" and name != "builtin":
                raise ConfigError(f"providers.{name}: the built-in renderer is [providers.builtin]")
            if not table.enabled or kind == "builtin":
                continue
            adapter = _build(kind, name, table, settings.secret, ReadLimits.from_settings(settings))
            entries.append(ProviderEntry(name, kind, adapter, table, order))
        if not entries:
            raise ConfigError("no provider is enabled: enable one, or the built-in renderer")
        return cls(entries, config)

    def close(self) -> None:
        """Release what providers hold that closes without a loop (worker processes)."""
        for entry in self._entries.values():
            close = getattr(entry.provider, "close", None)
            if close is not None:
                close()

    async def aclose(self) -> None:
        """Close every adapter's connection pools (``aclose``, awaited) and worker
        processes. One adapter failing to close does not leave the others open."""
        for entry in self._entries.values():
            aclose = getattr(entry.provider, "aclose", None)
            if aclose is None:
                continue
            try:
                result = aclose()
                if inspect.isawaitable(result):
                    await result
            except Exception:
                log.exception("provider.close_failed", provider=entry.name)
        self.close()

    def get(self, name: str) -> Provider:
        return self._entries[name].provider

    def entry(self, name: str) -> ProviderEntry:
        return self._entries[name]

    def entries(self) -> list[ProviderEntry]:
        """Every provider, in priority order (highest first, then file order)."""
        return sorted(self._entries.values(), key=lambda e: (-e.table.priority, e.order))

    def models(self) -> list[str]:
        return sorted(
            ModelChoice(entry.name, model).name
            for entry in self._entries.values()
            for model in entry.models
        )

    def resolve(self, requested: str) -> ModelChoice | None:
        """``auto``, ``provider`` or ``provider:model`` → a concrete choice, or ``None``.
        ``auto`` names the first provider by priority; each attempt routes anew."""
        if requested == "auto":
            first = self.entries()[0]
            return ModelChoice(first.name, first.models[0])
        name, _, model = requested.partition(":")
        entry = self._entries.get(name)
        if entry is None:
            return None
        model = model or entry.models[0]
        if model not in entry.models:
            return None
        return ModelChoice(name, model)


def _build(
    kind: str,
    name: str,
    table: ProviderTable,
    secret: Callable[[str], str | None],
    reads: ReadLimits | None = None,
) -> Provider:
    """The adapter for one table: ``imagegate.providers.<type>.build(ProviderConfig)``,
    which checks ``options`` against the adapter's model (providers/options.py)."""
    config = ProviderConfig(
        name=name,
        type=kind,
        base_url=table.base_url,
        api_key=api_key(table, name, secret),
        models=table.models,
        timeout_s=table.timeout_s,
        poll_interval_s=table.poll_interval_s,
        options=dict(table.options),
        reads=reads or ReadLimits(),
    )
    try:
        module = importlib.import_module(f"imagegate.providers.{kind}")
    except ImportError as error:
        raise ConfigError(f"providers.{name}: adapter {kind!r} cannot load: {error}") from error
    build: Callable[[ProviderConfig], Provider] = module.build
    return build(config)
