"""One attempt of one webhook delivery, as a plain async function over a Runtime: read
the delivery and its receiver, build and sign the body, send it, decide what follows,
record it. ``engine.webhook_engine`` runs it as a durable step and sleeps between.

Safe to run twice (a crash between its effect and the engine recording it replays
it): an attempt already recorded is not sent again, and every write is guarded."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from imagegate.db import jobs_repo
from imagegate.db import webhooks_repo as repo
from imagegate.domain.records import JobPresenter, JobRecord, OwnUrlBody
from imagegate.domain.webhooks import (
    AttemptRecord,
    DeliveryRecord,
    DeliveryStatus,
    EndpointRecord,
    decide,
    encode_body,
)
from imagegate.net.ssrf import UrlGuard, UrlPolicy
from imagegate.observability import metrics, tracing
from imagegate.observability.logging import get_logger
from imagegate.runtime import Runtime
from imagegate.webhooks.secrets import box, default_secret, open_secrets
from imagegate.webhooks.sender import USER_AGENT, AttemptResult, guarded_client, send
from imagegate.webhooks.signing import SecretUnreadable, signature_header

log = get_logger("imagegate.webhooks")


@dataclass(frozen=True)
class _Loaded:
    delivery: DeliveryRecord
    endpoint: EndpointRecord | None
    job: JobRecord | None
    sealed_default: str | None  # the workspace's default secret, for a job's own URL


@dataclass(frozen=True)
class Step:
    """What an attempt came to: the delivery is over (``done``), or try again after
    ``delay_s``."""

    done: bool
    status: str
    delay_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Deliverer:
    def __init__(
        self,
        rt: Runtime,
        present: JobPresenter,
        client: httpx.AsyncClient | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        own_url_body: OwnUrlBody | None = None,
    ) -> None:
        settings = rt.settings
        self.rt, self._present, self._monotonic = rt, present, monotonic
        self._own_url_body = own_url_body
        self.schedule = settings.webhook_schedule
        self._client = client or guarded_client(
            UrlGuard(UrlPolicy.from_settings(settings)), settings.webhook_timeout_s
        )
        self._slots = asyncio.Semaphore(settings.webhook_concurrency)

    async def aclose(self) -> None:
        await self._client.aclose()

    @tracing.job_step("webhook.attempt")
    async def attempt(self, delivery_id: str, number: int) -> Step:
        """Attempt number ``number`` (1-based) of the delivery."""
        now = self.rt.clock.now()
        loaded = await self._load(delivery_id)
        if loaded is None or (loaded.job is None and not loaded.delivery.status.is_final()):
            # The delivery, or its job, was deleted (DELETE /api/image/jobs/{id}, or
            # the workspace's retention): there is nothing left to send.
            return Step(done=True, status="gone")
        delivery, endpoint = loaded.delivery, loaded.endpoint
        if loaded.job is not None:
            tracing.enter_job(loaded.job, delivery_id=delivery_id)
        if delivery.status.is_final():
            return Step(done=True, status=delivery.status.value)
        if delivery.attempts >= number:
            # Recorded before a crash: wait out the rest of the delay, do not resend.
            left = (delivery.next_attempt_at or now) - now
            return Step(done=False, status=delivery.status.value, delay_s=_seconds(left))
        if delivery.endpoint_id is not None and (endpoint is None or not endpoint.enabled):
            return await self._stop(delivery, endpoint, now)
        url = endpoint.url if endpoint is not None else delivery.url
        result = await self._send(loaded, url, now)
        return await self._record(delivery, number, url, result, now)

    async def _load(self, delivery_id: str) -> _Loaded | None:
        """Everything an attempt reads, on one connection."""
        async with self.rt.db.connect() as conn:
            delivery = await repo.get_delivery(conn, delivery_id, with_attempts=False)
            if delivery is None:
                return None
            endpoint = (
                await repo.get_endpoint(conn, delivery.endpoint_id)
                if delivery.endpoint_id
                else None
            )
            if delivery.status.is_final():
                return _Loaded(delivery, endpoint, None, None)
            job = await jobs_repo.get_job(conn, delivery.job_id, delivery.workspace_id)
            sealed = (
                await repo.get_default_secret(conn, delivery.workspace_id)
                if endpoint is None
                else None
            )
        return _Loaded(delivery, endpoint, job, sealed)

    async def _stop(
        self, delivery: DeliveryRecord, endpoint: EndpointRecord | None, now: datetime
    ) -> Step:
        """The endpoint was deleted (failed) or disabled: no attempt, and no more."""
        status = DeliveryStatus.FAILED if endpoint is None else DeliveryStatus.DISABLED
        async with self.rt.db.begin() as conn:
            await repo.finish(conn, delivery.id, status, now)
        return Step(done=True, status=status.value)

    async def _send(self, loaded: _Loaded, url: str, now: datetime) -> AttemptResult:
        delivery = loaded.delivery
        try:
            keys = await self._keys(loaded, now)
        except SecretUnreadable as error:
            return AttemptResult(None, 0, None, str(error))
        assert loaded.job is not None  # attempt() stops when the job is gone
        # The job as it is now: a late retry carries fresh links.
        own = None
        if loaded.endpoint is None and self._own_url_body is not None:
            own = self._own_url_body(loaded.job)
        body = encode_body(
            own if own is not None else
            {"type": delivery.event_type, "timestamp": _iso(delivery.event_at),
             "data": self._present(loaded.job)}
        )  # fmt: skip
        headers = {
            "content-type": "application/json",
            "user-agent": USER_AGENT,
            "webhook-id": delivery.webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature_header(keys, delivery.webhook_id, now, body),
        }
        async with self._slots:
            with tracing.client_call("webhook.delivery") as traceparent:
                if traceparent is not None:
                    headers["traceparent"] = traceparent
                return await send(
                    self._client, url, headers, body,
                    timeout_s=self.rt.settings.webhook_timeout_s,
                    now=self.rt.clock.now, monotonic=self._monotonic,
                )  # fmt: skip

    async def _keys(self, loaded: _Loaded, now: datetime) -> list[str]:
        if loaded.endpoint is not None:
            return open_secrets(self.rt, loaded.endpoint).signing_keys(now)
        workspace_id = loaded.delivery.workspace_id
        if loaded.sealed_default is not None:
            return [box(self.rt).open(loaded.sealed_default, workspace_id)]
        return [await default_secret(self.rt, workspace_id)]

    async def _record(
        self,
        delivery: DeliveryRecord,
        number: int,
        url: str,
        result: AttemptResult,
        now: datetime,
    ) -> Step:
        decision = decide(
            attempt=number,
            schedule=self.schedule,
            status_code=result.status_code,
            retry_after_s=result.retry_after_s,
            retry_after_max_s=self.rt.settings.webhook_retry_after_max_s,
            jitter_key=f"{delivery.id}:{number}",
        )
        attempt = AttemptRecord(
            attempt=number, at=now, url=url, status_code=result.status_code,
            latency_ms=result.latency_ms, response_snippet=result.response_snippet,
            error=result.error,
        )  # fmt: skip
        next_at = now + timedelta(seconds=decision.delay_s) if not decision.final else None
        async with self.rt.db.begin() as conn:
            recorded = await repo.record_attempt(
                conn, delivery.id, delivery.workspace_id, attempt, decision.status, next_at
            )
            if recorded and decision.status is DeliveryStatus.DISABLED and delivery.endpoint_id:
                reason = f"410 Gone from {attempt.url} at {_iso(now)}"
                await repo.disable_endpoint(conn, delivery.endpoint_id, reason, now)
        if recorded:
            metrics.webhook_attempt(decision.status.value, delivery.event_at, now)
        log.info(
            "webhook.attempt", delivery_id=delivery.id, job_id=delivery.job_id,
            workspace=delivery.workspace_id, event_type=delivery.event_type, attempt=number,
            status_code=result.status_code, latency_ms=result.latency_ms, error=result.error,
            outcome=decision.status.value, next_in_s=decision.delay_s or None,
        )  # fmt: skip
        return Step(done=decision.final, status=decision.status.value, delay_s=decision.delay_s)


def _seconds(delta: timedelta) -> float:
    return max(0.0, round(delta.total_seconds(), 3))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
