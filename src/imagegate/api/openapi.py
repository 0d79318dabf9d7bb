"""The problem answers each route declares in the OpenAPI document, said once.

A client generated from ``/openapi.json`` (and schemathesis, which checks the server
against it) learns every status a route can answer and that its body is an RFC 9457
problem served as ``application/problem+json``, not FastAPI's default 422 shape."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from imagegate.api.schemas import Problem

Responses = dict[int | str, dict[str, Any]]

_WHY = {
    400: "Bad request: an invalid cursor or Idempotency-Key, or a body that is not JSON",
    401: "No valid API key (send Authorization: Bearer <key>)",
    402: "The workspace's credits do not cover the job's estimate (`insufficient_credits`)",
    403: "Forbidden: this key may not do that, or a file link was altered or expired",
    404: "No such resource in your workspace",
    409: "The resource's state does not allow this, or the Idempotency-Key is in use",
    413: "The request body is over the size limit",
    415: "Not an accepted type: the body's Content-Type, or the image's format",
    422: "A field or parameter is invalid; `field` and `errors` name it",
    429: "Over a rate limit; retry after Retry-After seconds",
}

# Every route that takes an API key: no key, bad parameters, over the request rate.
AUTHENTICATED = (401, 422, 429)
# Every route that reads a body (and POSTs, which take an Idempotency-Key).
WITH_BODY = (400, 409, 413)


# A 200 that `format=csv` serves as a spreadsheet instead of the JSON model.
CSV_TOO: Responses = {
    200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
}


def problems(*statuses: int) -> Responses:
    """``responses=`` for a route that may answer these problem statuses."""
    return {
        status: {
            "description": _WHY[status],
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            },
        }
        for status in sorted(set(statuses))
    }


def install(app: FastAPI) -> None:
    """Add the ``Problem`` schema that ``problems`` refers to (no route returns it as
    its model, so FastAPI would not list it)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Problem"] = Problem.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
