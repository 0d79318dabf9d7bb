"""The long-lived parts a process wires together once: settings, database, storage,
providers, clock. Built by the CLI, handed to the API and the engine."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from imagegate.clock import Clock, SystemClock
from imagegate.db.session import create_engine, create_session_factory
from imagegate.providers.registry import ProviderRegistry
from imagegate.rate_limits import CounterStore, build_counter_store
from imagegate.settings import Settings
from imagegate.storage.base import Storage
from imagegate.storage.factory import build_storage
from imagegate.storage.local import LocalStorage
from imagegate.storage.signing import UrlSigner
from imagegate.ttl_cache import TtlCache

# ``fastest`` routing keeps each provider's measured median this long in a process.
LATENCY_CACHE_TTL_S = 10.0


@dataclass
class Runtime:
    settings: Settings
    db: AsyncEngine
    sessions: async_sessionmaker[Any]
    storage: Storage
    # The files route serves from it; a deployment on object storage has none.
    local_storage: LocalStorage | None
    providers: ProviderRegistry
    clock: Clock
    # Rate-limit counts (quotas later): in Redis when configured, else in this process.
    counters: CounterStore
    # Provider name -> median latency (None: too few calls), for ``fastest`` routing.
    latency_cache: TtlCache[str, float | None] = field(
        default_factory=lambda: TtlCache(256, LATENCY_CACHE_TTL_S)
    )
    # Output images being decoded at once (each holds a full bitmap in memory).
    decodes: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.decodes = asyncio.Semaphore(self.settings.resolved_image_decode_concurrency)

    @classmethod
    def build(
        cls, settings: Settings, clock: Clock | None = None, *, with_providers: bool = True
    ) -> Runtime:
        """``with_providers=False`` for commands that never generate (key management):
        they then need neither the provider configuration nor its secrets."""
        settings.ensure_data_dir()
        db = create_engine(settings.resolved_database_url, settings.database_pool_size)
        signer = UrlSigner(settings.resolved_secret_key, settings.signed_url_ttl_s)
        clock = clock or SystemClock()
        storage, local = build_storage(settings, signer)
        return cls(
            settings=settings,
            db=db,
            sessions=create_session_factory(db),
            storage=storage,
            local_storage=local,
            providers=(
                ProviderRegistry.from_settings(settings) if with_providers else ProviderRegistry([])
            ),
            clock=clock,
            counters=build_counter_store(settings.redis_url, clock),
        )

    async def release(self) -> None:
        """Give back what belongs to the running event loop (database and Redis
        connections, render processes), leaving the runtime usable on another loop:
        the CLI prepares on one loop and serves on the next. Adapters' HTTP pools are
        kept: they open connections lazily on whichever loop uses them."""
        try:
            self.providers.close()
        finally:
            try:
                await self.counters.close()
            finally:
                await self.db.dispose()

    async def close(self) -> None:
        """The end of this runtime: every adapter's HTTP pool is closed (awaited),
        then the rest is released, each step even if one before it failed."""
        try:
            await self.providers.aclose()
        finally:
            await self.release()
