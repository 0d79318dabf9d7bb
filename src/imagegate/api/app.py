"""The FastAPI app factory. ``serve`` runs it with a worker in the same process;
``api`` without one (it only enqueues)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from imagegate import __version__
from imagegate.api import errors, openapi
from imagegate.api.limits import BodySizeLimit
from imagegate.api.observe import Observe
from imagegate.api.rate_limit_headers import RateLimitHeaders
from imagegate.api.routes import (
    batches,
    credits,
    events,
    jobs,
    keys,
    metrics,
    mj_proxy,
    moderation,
    openai_compat,
    providers,
    quotas,
    styles,
    system,
    uploads,
    usage,
    webhooks,
    workspaces,
)
from imagegate.api.schemas import JobPublic
from imagegate.domain.records import JobPresenter, JobRecord, OwnUrlBody
from imagegate.domain.webhooks import without_prompts
from imagegate.observability.logging import get_logger
from imagegate.runtime import Runtime
from imagegate.services import jobs as jobs_service
from imagegate.services import mj_proxy as mj_tasks
from imagegate.services import process_lifecycle
from imagegate.services.event_feed import EventFeed
from imagegate.services.keys import Authenticator
from imagegate.services.scrape import Exposition
from imagegate.services.workers import Membership

MAX_BODY_BYTES = 256 * 1024
HOUSEKEEPING_INTERVAL_S = 3600
log = get_logger("imagegate.app")


async def _housekeeping(rt: Runtime) -> None:
    """Hourly chores: forget expired idempotency records; remove the partial files of
    writes a killed process left in local storage."""
    while True:
        try:
            purged = await jobs_service.purge_expired_idempotency(rt)
            if purged:
                log.info("idempotency.purged", records=purged)
            if rt.local_storage is not None:
                swept = await rt.local_storage.sweep_partial_writes()
                if swept:
                    log.info("storage.partial_writes_removed", files=swept)
        except Exception as error:  # a failed chore must not take the server down
            log.warning("housekeeping.failed", error=repr(error))
        await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)


def job_presenter(rt: Runtime) -> JobPresenter:
    """Webhook bodies carry the job as the API shows it (without its prompts, for a
    workspace with ``private_prompts``)."""

    def present(job: JobRecord) -> dict[str, Any]:
        body = JobPublic.from_record(job, rt.storage).model_dump(mode="json")
        return without_prompts(body) if job.params.get("private_prompts") else body

    return present


def own_url_body(rt: Runtime) -> OwnUrlBody:
    """A /mj task's notifyHook gets the protocol's task, not the event envelope."""

    def body(job: JobRecord) -> dict[str, Any] | None:
        task = mj_tasks.notify_body(job, rt.storage)
        return without_prompts(task) if task and job.params.get("private_prompts") else task

    return body


def create_app(rt: Runtime, membership: Membership | None = None) -> FastAPI:
    """The HTTP app; with a ``membership`` (a worker id) this process also runs jobs."""

    feed = EventFeed(rt)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # DBOS runs async workflows on the loop that launched it: this one, which also
        # owns the database pool (an asyncio pool cannot be shared between loops).
        running = await process_lifecycle.start(
            rt, membership, present_job=job_presenter(rt), own_url_body=own_url_body(rt)
        )
        await feed.start()
        # Objects made at start-up live forever; moving them out of the collector's
        # view keeps gen-2 collections (and their latency spikes) small.
        gc.collect()
        gc.freeze()
        log.info(
            "server.started",
            url=rt.settings.resolved_public_url,
            worker_id=membership.worker_id if membership else None,
            requeued_jobs=running.requeued_jobs,
        )
        housekeeping = asyncio.create_task(_housekeeping(rt))
        try:
            yield
        finally:
            housekeeping.cancel()
            await feed.stop()
            await process_lifecycle.stop(running)
            await rt.close()

    # The docs page's scripts are served by imagegate itself, not a CDN: a
    # self-hosted server may have no way out, and should not need one.
    app = FastAPIOffline(
        title="imagegate",
        version=__version__,
        summary="Self-hosted, provider-agnostic image generation jobs",
        lifespan=lifespan,
    )
    app.state.runtime = rt
    app.state.event_feed = feed
    app.state.authenticator = Authenticator(rt)
    app.state.exposition = Exposition(rt)
    errors.install(app)
    openapi.install(app)
    app.include_router(jobs.router)
    app.include_router(uploads.router)
    app.include_router(styles.router)
    app.include_router(batches.router)
    app.include_router(moderation.router)
    app.include_router(keys.router)
    app.include_router(credits.router)
    app.include_router(quotas.router)
    app.include_router(usage.router)
    app.include_router(usage.jobs_router)
    app.include_router(keys.audit_router)
    app.include_router(workspaces.router)
    app.include_router(providers.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    app.include_router(webhooks.jobs_router)
    app.include_router(system.router)
    app.include_router(metrics.router)
    app.include_router(mj_proxy.router)
    app.include_router(openai_compat.router)
    app.add_middleware(
        BodySizeLimit,
        max_bytes=MAX_BODY_BYTES,
        per_path={
            uploads.PATH: uploads.max_body_bytes(rt.settings),
            batches.PATH: batches.MAX_BODY_BYTES,
            **mj_proxy.body_caps(rt.settings),
            **openai_compat.body_limits(rt.settings),
        },
        answers={f"{mj_proxy.PREFIX}/": mj_proxy.too_large, "/v1/": openai_compat.too_large},
    )
    app.add_middleware(RateLimitHeaders)
    # Outermost: the trace and the HTTP series cover everything inside, errors too.
    app.add_middleware(Observe)
    return app
