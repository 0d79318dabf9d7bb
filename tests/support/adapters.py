"""Adapters under test, pointed at their emulator and closed after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol, TypeVar

from imagegate.providers.http import ProviderConfig


class _Closable(Protocol):
    async def aclose(self) -> None: ...


A = TypeVar("A", bound=_Closable)


@asynccontextmanager
async def adapter_factory(
    cls: Callable[[ProviderConfig], A], kind: str, base_url: str, api_key: str | None
) -> AsyncIterator[Callable[..., A]]:
    """``build(api_key=…, timeout_s=15, **options)`` makes an adapter of ``kind`` for
    the emulator at ``base_url``, polling fast; every one made is closed on exit."""
    made: list[A] = []
    default_key = api_key

    def build(api_key: str | None = default_key, timeout_s: float = 15.0, **options: Any) -> A:
        config = ProviderConfig(
            name=kind, type=kind, base_url=base_url, api_key=api_key, timeout_s=timeout_s,
            poll_interval_s=0.02, options=options,
        )  # fmt: skip
        made.append(cls(config))
        return made[-1]

    try:
        yield build
    finally:
        for adapter in made:
            await adapter.aclose()
