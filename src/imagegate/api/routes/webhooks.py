"""/api/image/webhooks: endpoints, secrets, delivery logs, redelivery; and a job's
delivery log at /api/image/jobs/{job_id}/deliveries."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse

from imagegate.api.deps import PrincipalDep, RuntimeDep
from imagegate.api.idempotency import IdempotencyKeyHeader, idempotent, respond
from imagegate.api.openapi import AUTHENTICATED, WITH_BODY, problems
from imagegate.api.webhook_schemas import (
    DeliveriesPublic,
    DeliveryPublic,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPublic,
    WebhookEndpointsPublic,
    WebhookEndpointUpdate,
    WebhookSecretPublic,
)
from imagegate.services import idempotency
from imagegate.services import webhooks as service
from imagegate.services.idempotency import Answer
from imagegate.services.webhooks import DeliveryPage

router = APIRouter(prefix="/api/image/webhooks", tags=["webhooks"])
jobs_router = APIRouter(prefix="/api/image/jobs", tags=["webhooks"])

READ = problems(*AUTHENTICATED)
READ_ONE = problems(*AUTHENTICATED, 404)
PAGE = problems(*AUTHENTICATED, 400, 404)  # 400: a cursor this server did not issue
WRITE = problems(*AUTHENTICATED, *WITH_BODY)
WRITE_ONE = problems(*AUTHENTICATED, *WITH_BODY, 404)
Limit = Annotated[int, Query(ge=1, le=100)]


def _page(page: DeliveryPage) -> DeliveriesPublic:
    return DeliveriesPublic(
        data=[DeliveryPublic.from_record(d) for d in page.deliveries],
        next_cursor=page.next_cursor,
        has_more=page.next_cursor is not None,
    )


@router.post(
    "",
    status_code=201,
    response_model=WebhookEndpointCreated,
    operation_id="create_webhook_endpoint",
    responses=WRITE,
)
async def create_endpoint(
    body: WebhookEndpointCreate,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Add a receiver for the workspace's job events; the answer carries its secret."""

    async def create() -> Answer:
        endpoint, secret = await service.create_endpoint(rt, principal, **body.model_dump())
        public = WebhookEndpointPublic.from_record(endpoint)
        created = WebhookEndpointCreated(**public.model_dump(), secret=secret)
        return Answer(201, created.model_dump(mode="json"), endpoint.id)

    request = idempotent(idempotency_key, "create_webhook_endpoint", body)
    # The secret is kept sealed in the stored answer, opened only for its replay.
    answer = await idempotency.run(rt, principal, request, create, sealed=("secret",))
    return respond(answer, {"Location": f"/api/image/webhooks/{answer.resource_id}"})


@router.get(
    "",
    response_model=WebhookEndpointsPublic,
    operation_id="list_webhook_endpoints",
    responses=READ,
)
async def list_endpoints(rt: RuntimeDep, principal: PrincipalDep) -> WebhookEndpointsPublic:
    """The workspace's endpoints, oldest first."""
    found = await service.list_endpoints(rt, principal)
    return WebhookEndpointsPublic(data=[WebhookEndpointPublic.from_record(e) for e in found])


@router.get(
    "/default/secret",
    response_model=WebhookSecretPublic,
    operation_id="get_default_webhook_secret",
    responses=READ,
)
async def get_default_secret(rt: RuntimeDep, principal: PrincipalDep) -> WebhookSecretPublic:
    """The secret that signs deliveries to jobs' own ``webhook_url``."""
    return WebhookSecretPublic(key=await service.default_secret(rt, principal))


@router.get(
    "/{endpoint_id}",
    response_model=WebhookEndpointPublic,
    operation_id="get_webhook_endpoint",
    responses=READ_ONE,
)
async def get_endpoint(
    endpoint_id: str, rt: RuntimeDep, principal: PrincipalDep
) -> WebhookEndpointPublic:
    """One endpoint (without its secret: see ``/secret``)."""
    return WebhookEndpointPublic.from_record(await service.get_endpoint(rt, principal, endpoint_id))


@router.patch(
    "/{endpoint_id}",
    response_model=WebhookEndpointPublic,
    operation_id="update_webhook_endpoint",
    responses=WRITE_ONE,
)
async def update_endpoint(
    endpoint_id: str, body: WebhookEndpointUpdate, rt: RuntimeDep, principal: PrincipalDep
) -> WebhookEndpointPublic:
    """Change the URL, event types, description, or enable/disable it."""
    changes = body.model_dump(exclude_unset=True)
    changes = {k: v for k, v in changes.items() if v is not None or k == "description"}
    endpoint = await service.update_endpoint(rt, principal, endpoint_id, **changes)
    return WebhookEndpointPublic.from_record(endpoint)


@router.delete(
    "/{endpoint_id}",
    status_code=204,
    operation_id="delete_webhook_endpoint",
    responses=READ_ONE,
)
async def delete_endpoint(endpoint_id: str, rt: RuntimeDep, principal: PrincipalDep) -> Response:
    """Remove the endpoint and its delivery log; pending deliveries to it stop."""
    await service.delete_endpoint(rt, principal, endpoint_id)
    return Response(status_code=204)


@router.get(
    "/{endpoint_id}/secret",
    response_model=WebhookSecretPublic,
    operation_id="get_webhook_endpoint_secret",
    responses=READ_ONE,
)
async def get_secret(
    endpoint_id: str, rt: RuntimeDep, principal: PrincipalDep
) -> WebhookSecretPublic:
    """The endpoint's current signing secret."""
    secrets = await service.endpoint_secrets(rt, principal, endpoint_id)
    live = secrets.previous_expires_at if secrets.previous else None
    return WebhookSecretPublic(key=secrets.current, previous_key_expires_at=live)


@router.post(
    "/{endpoint_id}/rotate-secret",
    response_model=WebhookSecretPublic,
    operation_id="rotate_webhook_endpoint_secret",
    responses=WRITE_ONE,
)
async def rotate_secret(
    endpoint_id: str,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """A new secret; the old one signs beside it until ``previous_key_expires_at``."""

    async def rotate() -> Answer:
        key, expires = await service.rotate_secret(rt, principal, endpoint_id)
        public = WebhookSecretPublic(key=key, previous_key_expires_at=expires)
        return Answer(200, public.model_dump(mode="json"), endpoint_id)

    request = idempotent(idempotency_key, "rotate_webhook_endpoint_secret", endpoint_id=endpoint_id)
    return respond(await idempotency.run(rt, principal, request, rotate, sealed=("key",)))


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=DeliveriesPublic,
    operation_id="list_webhook_endpoint_deliveries",
    responses=PAGE,
)
async def list_endpoint_deliveries(
    endpoint_id: str,
    rt: RuntimeDep,
    principal: PrincipalDep,
    cursor: str | None = None,
    limit: Limit = 20,
) -> DeliveriesPublic:
    """The endpoint's deliveries, newest first, each with its attempts."""
    page = await service.list_deliveries(
        rt, principal, endpoint_id=endpoint_id, cursor=cursor, limit=limit
    )
    return _page(page)


@router.post(
    "/deliveries/{delivery_id}/redeliver",
    status_code=202,
    response_model=DeliveryPublic,
    operation_id="redeliver_webhook",
    responses=WRITE_ONE,
)
async def redeliver(
    delivery_id: str,
    rt: RuntimeDep,
    principal: PrincipalDep,
    idempotency_key: IdempotencyKeyHeader = None,
) -> JSONResponse:
    """Send the delivery's event again: a new delivery, same ``webhook-id``."""

    async def send_again() -> Answer:
        delivery = await service.redeliver(rt, principal, delivery_id)
        public = DeliveryPublic.from_record(delivery)
        return Answer(202, public.model_dump(mode="json"), delivery.id)

    request = idempotent(idempotency_key, "redeliver_webhook", delivery_id=delivery_id)
    return respond(await idempotency.run(rt, principal, request, send_again))


@jobs_router.get(
    "/{job_id}/deliveries",
    response_model=DeliveriesPublic,
    operation_id="list_job_deliveries",
    responses=PAGE,
)
async def list_job_deliveries(
    job_id: str,
    rt: RuntimeDep,
    principal: PrincipalDep,
    cursor: str | None = None,
    limit: Limit = 20,
) -> DeliveriesPublic:
    """The job's webhook deliveries (every endpoint, and its own URL), newest first."""
    page = await service.list_deliveries(rt, principal, job_id=job_id, cursor=cursor, limit=limit)
    return _page(page)
