"""Which providers this server has, and which one serves a requested model."""

from __future__ import annotations

from dataclasses import dataclass

from imagegate.providers.base import Provider
from imagegate.providers.builtin import BuiltinProvider
from imagegate.settings import Settings


@dataclass(frozen=True)
class ModelChoice:
    provider: str
    model: str

    @property
    def name(self) -> str:
        """How clients spell it: ``provider:model``, or ``provider`` when they coincide."""
        return self.provider if self.model == self.provider else f"{self.provider}:{self.model}"


class ProviderRegistry:
    def __init__(self, providers: dict[str, Provider]) -> None:
        self._providers = providers

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRegistry:
        builtin = BuiltinProvider(
            latency_ms=settings.builtin_latency_ms,
            fault_marker=settings.builtin_fault_marker,
            fault_attempts=settings.builtin_fault_attempts,
            processes=settings.resolved_builtin_processes,
        )
        return cls({builtin.name: builtin})

    def close(self) -> None:
        """Release what providers hold (worker processes, connection pools)."""
        for provider in self._providers.values():
            close = getattr(provider, "close", None)
            if close is not None:
                close()

    def get(self, name: str) -> Provider:
        return self._providers[name]

    def models(self) -> list[str]:
        return sorted(
            ModelChoice(name, model).name
            for name, provider in self._providers.items()
            for model in provider.capabilities().models
        )

    def resolve(self, requested: str) -> ModelChoice | None:
        """``auto``, ``provider`` or ``provider:model`` → a concrete choice, or ``None``."""
        if requested == "auto":
            return ModelChoice("builtin", "builtin")
        name, _, model = requested.partition(":")
        provider = self._providers.get(name)
        if provider is None:
            return None
        models = provider.capabilities().models
        model = model or models[0]
        if model not in models:
            return None
        return ModelChoice(name, model)
