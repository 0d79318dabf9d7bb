"""The HTTP side of ``Idempotency-Key`` (the rules are in services.idempotency): the
header, the request's fingerprint, and the answer with ``Idempotent-Replayed``."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from imagegate.errors import IdempotencyKeyInvalid
from imagegate.services.idempotency import Answer, IdempotentRequest

IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retry safely: the same key and request within 24 h replays the first "
        "answer; another request with the key is 422, one still in flight 409.",
    ),
]


def fingerprint(operation: str, body: dict[str, Any] | None = None, **path: str) -> str:
    """What a request asks, as a hash: the operation, its path parameters and its
    body's fields as given (key order and defaults left unsaid do not count)."""
    canonical = json.dumps({"op": operation, "path": path, "body": body}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotent(
    key: str | None, operation: str, body: BaseModel | None = None, **path: str
) -> IdempotentRequest | None:
    """The request's key and fingerprint; None without a key."""
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise IdempotencyKeyInvalid()
    fields = body.model_dump(mode="json", exclude_unset=True) if body is not None else None
    return IdempotentRequest(key, fingerprint(operation, fields, **path))


def respond(answer: Answer, headers: dict[str, str] | None = None) -> JSONResponse:
    headers = dict(headers or {})
    if answer.replayed:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)
