"""Prometheus's scrape target (docs/observability.md)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from imagegate.api.deps import RuntimeDep
from imagegate.errors import NotFound, Unauthenticated
from imagegate.services.scrape import Exposition, authorized

router = APIRouter(tags=["system"])


# Out of the OpenAPI document: it is for Prometheus, not for API clients.
@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, rt: RuntimeDep) -> Response:
    """The process's series in Prometheus's text format."""
    if not rt.settings.metrics_enabled:
        raise NotFound("Metrics are turned off on this server (IMAGEGATE_METRICS_ENABLED).")
    if not authorized(rt.settings, request.headers.get("authorization")):
        raise Unauthenticated("Send the metrics token: `Authorization: Bearer <token>`.")
    exposition: Exposition = request.app.state.exposition
    body, content_type = await exposition.render()
    return Response(body, media_type=content_type)
