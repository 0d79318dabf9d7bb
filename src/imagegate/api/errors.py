"""The one place errors become HTTP: RFC 9457 ``application/problem+json``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from imagegate import errors
from imagegate.api.rate_limit_headers import headers_for
from imagegate.observability.logging import get_logger

log = get_logger("imagegate.api")

STATUS: dict[type[errors.ImagegateError], int] = {
    errors.InvalidRequest: 422,
    errors.InvalidCursor: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.InvalidState: 409,
    errors.IdempotencyKeyInvalid: 400,
    errors.IdempotencyKeyReused: 422,
    errors.IdempotencyKeyInUse: 409,
    errors.RateLimited: 429,
    errors.InsufficientCredits: 402,
    errors.PayloadTooLarge: 413,
    errors.FileLinkInvalid: 403,
    errors.UnsupportedImage: 415,
    errors.ImageTooLarge: 413,
}

_HTTP_CODES = {
    404: ("not_found", "Not found"),
    405: ("method_not_allowed", "Method not allowed"),
    413: ("payload_too_large", "Payload too large"),
    415: ("unsupported_media_type", "Unsupported media type"),
}


def status_for(error: errors.ImagegateError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem(
    status: int,
    code: str,
    title: str,
    detail: str,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:imagegate:error:{code}",
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        **{k: v for k, v in extra.items() if v is not None},
    }
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def _clean(error: dict[str, Any]) -> dict[str, Any]:
    loc = [str(p) for p in error.get("loc", ())]
    # ("body", "prompt") names the field "prompt"; ("body",) alone is the body itself.
    field = ".".join(loc[1:] if loc[:1] == ["body"] and len(loc) > 1 else loc)
    message = error.get("msg")
    if loc == ["body"] and error.get("type") == "missing":
        message = "a JSON object is required (Content-Type: application/json)"
    return {"field": field or None, "message": message, "type": error.get("type")}


def _headers(error: errors.ImagegateError, status: int) -> dict[str, str] | None:
    if status == 401:
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(error, errors.RateLimited):
        return headers_for(error.allowance)
    return None


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.ImagegateError)
    async def _domain(_: Request, error: errors.ImagegateError) -> JSONResponse:
        status = status_for(error)
        return problem(
            status, error.code, error.title, error.detail, _headers(error, status), **error.extra
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, error: RequestValidationError) -> JSONResponse:
        details = [_clean(e) for e in error.errors()]
        first = details[0] if details else {"field": None, "message": "invalid request"}
        where = f"{first['field']}: " if first["field"] else ""
        return problem(
            422,
            "validation_error",
            "Invalid request",
            f"{where}{first['message']}",
            errors=details,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, error: StarletteHTTPException) -> JSONResponse:
        code, title = _HTTP_CODES.get(error.status_code, ("http_error", "HTTP error"))
        headers = dict(error.headers) if error.headers else None
        return problem(error.status_code, code, title, str(error.detail), headers)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.error("unhandled_error", error=repr(error), exc_info=error)
        return problem(500, "internal_error", "Internal error", "Something went wrong on our side.")
