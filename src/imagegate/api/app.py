"""The FastAPI app factory. ``serve`` runs it with the worker in the same process."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from imagegate import __version__
from imagegate.api import errors
from imagegate.api.limits import BodySizeLimit
from imagegate.api.routes import jobs, system
from imagegate.engine import dbos_engine
from imagegate.observability.logging import get_logger
from imagegate.runtime import Runtime
from imagegate.services import jobs as jobs_service
from imagegate.services.keys import Authenticator

MAX_BODY_BYTES = 256 * 1024
log = get_logger("imagegate.app")


def create_app(rt: Runtime) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # DBOS runs async workflows on the loop that launched it: this one, which also
        # owns the database pool (an asyncio pool cannot be shared between loops).
        await dbos_engine.launch(rt)
        requeued = await jobs_service.reconcile(rt)
        # Objects made at start-up live forever; moving them out of the collector's
        # view keeps gen-2 collections (and their latency spikes) small.
        gc.collect()
        gc.freeze()
        log.info("server.started", url=rt.settings.resolved_public_url, unfinished_jobs=requeued)
        try:
            yield
        finally:
            await asyncio.to_thread(dbos_engine.shutdown)
            await rt.close()

    app = FastAPI(
        title="imagegate",
        version=__version__,
        summary="Self-hosted, provider-agnostic image generation jobs",
        lifespan=lifespan,
    )
    app.state.runtime = rt
    app.state.authenticator = Authenticator(rt)
    errors.install(app)
    app.include_router(jobs.router)
    app.include_router(system.router)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    return app
