"""Webhook use cases: endpoints and their secrets, the workspace's default secret, the
delivery log and redelivery. Every one is scoped to the caller's workspace: another
workspace's ids are simply not found."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from imagegate.db import jobs_repo
from imagegate.db import webhooks_repo as repo
from imagegate.domain.ids import new_id, well_formed
from imagegate.domain.records import Principal
from imagegate.domain.webhooks import DEFAULT_EVENT_TYPES, DeliveryRecord, EndpointRecord
from imagegate.errors import (
    DeliveryNotFound,
    InvalidRequest,
    InvalidState,
    JobNotFound,
    WebhookEndpointNotFound,
)
from imagegate.net.ssrf import CheckedUrl, UrlGuard, UrlPolicy
from imagegate.runtime import Runtime
from imagegate.services.pagination import decode_cursor, encode_cursor
from imagegate.settings import Settings
from imagegate.webhooks import secrets
from imagegate.webhooks.secrets import Secrets, box, open_secrets
from imagegate.webhooks.signing import new_secret

MAX_ENDPOINTS = 50
_UNSET: Any = object()


def guard(settings: Settings) -> UrlGuard:
    return UrlGuard(UrlPolicy.from_settings(settings))


async def check_url(rt: Runtime, url: str, field: str) -> CheckedUrl:
    """Refuse (422 ``unsafe_url``, naming ``field``) a URL imagegate may not call."""
    return await guard(rt.settings).check(url, field=field)


async def create_endpoint(
    rt: Runtime,
    principal: Principal,
    *,
    url: str,
    event_types: list[str] | None,
    description: str | None,
    enabled: bool,
) -> tuple[EndpointRecord, str]:
    """The new endpoint and its secret (the one response that carries it unasked)."""
    await check_url(rt, url, "url")
    now, endpoint_id, secret = rt.clock.now(), new_id("ep"), new_secret()
    async with rt.db.begin() as conn:
        if await repo.count_endpoints(conn, principal.workspace_id) >= MAX_ENDPOINTS:
            raise InvalidRequest(f"a workspace has at most {MAX_ENDPOINTS} webhook endpoints")
        endpoint = await repo.insert_endpoint(
            conn,
            {
                "id": endpoint_id, "workspace_id": principal.workspace_id, "url": url,
                "event_types": repo.encode_types(event_types or DEFAULT_EVENT_TYPES),
                "description": description, "enabled": enabled,
                "secret": box(rt).seal(secret, endpoint_id), "created_at": now,
                "updated_at": now,
            },
        )  # fmt: skip
    return endpoint, secret


async def list_endpoints(rt: Runtime, principal: Principal) -> list[EndpointRecord]:
    async with rt.db.connect() as conn:
        return await repo.list_endpoints(conn, principal.workspace_id)


async def get_endpoint(rt: Runtime, principal: Principal, endpoint_id: str) -> EndpointRecord:
    if not well_formed(endpoint_id, "ep"):
        raise WebhookEndpointNotFound()
    async with rt.db.connect() as conn:
        endpoint = await repo.get_endpoint(conn, endpoint_id, principal.workspace_id)
    if endpoint is None:
        raise WebhookEndpointNotFound()
    return endpoint


async def update_endpoint(
    rt: Runtime,
    principal: Principal,
    endpoint_id: str,
    *,
    url: str = _UNSET,
    event_types: list[str] | None = _UNSET,
    description: str | None = _UNSET,
    enabled: bool = _UNSET,
) -> EndpointRecord:
    """Change what is given. Enabling an endpoint clears why it was disabled."""
    await get_endpoint(rt, principal, endpoint_id)
    values: dict[str, Any] = {"updated_at": rt.clock.now()}
    if url is not _UNSET:
        await check_url(rt, url, "url")
        values["url"] = url
    if event_types is not _UNSET:
        values["event_types"] = repo.encode_types(event_types or DEFAULT_EVENT_TYPES)
    if description is not _UNSET:
        values["description"] = description
    if enabled is not _UNSET:
        values["enabled"] = enabled
        values["disabled_reason"] = None if enabled else "disabled by its owner"
    async with rt.db.begin() as conn:
        endpoint = await repo.update_endpoint(conn, principal.workspace_id, endpoint_id, values)
    if endpoint is None:
        raise WebhookEndpointNotFound()
    return endpoint


async def delete_endpoint(rt: Runtime, principal: Principal, endpoint_id: str) -> None:
    """The endpoint goes with its delivery log; deliveries still pending stop."""
    if not well_formed(endpoint_id, "ep"):
        raise WebhookEndpointNotFound()
    async with rt.db.begin() as conn:
        if not await repo.delete_endpoint(conn, principal.workspace_id, endpoint_id):
            raise WebhookEndpointNotFound()


async def rotate_secret(
    rt: Runtime, principal: Principal, endpoint_id: str
) -> tuple[str, datetime | None]:
    """A new secret; the current one keeps signing beside it for the grace period
    (``IMAGEGATE_WEBHOOK_SECRET_GRACE_S``). Returns the new secret and when the old
    one stops signing."""
    endpoint = await get_endpoint(rt, principal, endpoint_id)
    now, secret, sealer = rt.clock.now(), new_secret(), box(rt)
    grace = rt.settings.webhook_secret_grace_s
    expires = now + timedelta(seconds=grace) if grace else None
    async with rt.db.begin() as conn:
        await repo.update_endpoint(
            conn, principal.workspace_id, endpoint_id,
            {"secret": sealer.seal(secret, endpoint_id),
             "previous_secret": endpoint.sealed_secret if grace else None,
             "previous_secret_expires_at": expires, "updated_at": now},
        )  # fmt: skip
    return secret, expires


@dataclass(frozen=True)
class DeliveryPage:
    deliveries: list[DeliveryRecord]
    next_cursor: str | None


async def list_deliveries(
    rt: Runtime,
    principal: Principal,
    *,
    job_id: str | None = None,
    endpoint_id: str | None = None,
    cursor: str | None,
    limit: int,
) -> DeliveryPage:
    """A job's or an endpoint's deliveries, newest first, with their attempts."""
    if job_id is not None and not well_formed(job_id, "job"):
        raise JobNotFound()
    if endpoint_id is not None and not well_formed(endpoint_id, "ep"):
        raise WebhookEndpointNotFound()
    before = decode_cursor(cursor, "dlv") if cursor else None
    async with rt.db.connect() as conn:
        workspace = principal.workspace_id
        if (
            job_id is not None
            and await jobs_repo.get_job(conn, job_id, workspace, children=False) is None
        ):
            raise JobNotFound()
        if endpoint_id is not None and (
            await repo.get_endpoint(conn, endpoint_id, principal.workspace_id) is None
        ):
            raise WebhookEndpointNotFound()
        found = await repo.list_deliveries(
            conn, principal.workspace_id, job_id=job_id, endpoint_id=endpoint_id,
            before_id=before, limit=limit + 1,
        )  # fmt: skip
    more = len(found) > limit
    found = found[:limit]
    return DeliveryPage(found, encode_cursor(found[-1].id) if more and found else None)


async def redeliver(rt: Runtime, principal: Principal, delivery_id: str) -> DeliveryRecord:
    """Send the delivery's event again, as a new delivery with the same ``webhook-id``
    and a fresh schedule; the original keeps its log."""
    if not well_formed(delivery_id, "dlv"):
        raise DeliveryNotFound()
    async with rt.db.begin() as conn:
        original = await repo.get_delivery(conn, delivery_id, principal.workspace_id)
        if original is None:
            raise DeliveryNotFound()
        url = original.url
        if original.endpoint_id is not None:
            endpoint = await repo.get_endpoint(conn, original.endpoint_id)
            if endpoint is None:
                raise DeliveryNotFound()
            if not endpoint.enabled:
                raise InvalidState(
                    "the endpoint is disabled; enable it (PATCH enabled=true) and redeliver"
                )
            url = endpoint.url
        return await repo.insert_redelivery(conn, original, url, rt.clock.now())


async def endpoint_secrets(rt: Runtime, principal: Principal, endpoint_id: str) -> Secrets:
    return open_secrets(rt, await get_endpoint(rt, principal, endpoint_id))


async def default_secret(rt: Runtime, principal: Principal) -> str:
    """The workspace's default secret (signs jobs' own ``webhook_url``)."""
    return await secrets.default_secret(rt, principal.workspace_id)
