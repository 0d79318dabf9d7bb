"""The body of ``POST /api/image/batches``, as JSON or as JSONL, read into items.

JSON: ``{"items": [<create body>, ...], "metadata": {...}}``. JSONL
(``application/x-ndjson``, ``application/jsonl`` or ``application/x-jsonlines``, or
the ``file`` part of a ``multipart/form-data`` body): one create body per line; blank
lines are skipped. The request as a whole must hold 1 to
``MAX_ITEMS`` items and, as JSONL, no line over ``MAX_LINE_BYTES``; past that the
whole request is refused. Within those bounds each item is read alone, as the body of
``POST /api/image/jobs`` would be: one that is not valid becomes that item's problem
(an RFC 9457 document, as the create would have answered) and the others go on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, NoReturn

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from imagegate.api.batch_schemas import BatchCreate
from imagegate.api.errors import status_for
from imagegate.api.idempotency import fingerprint, idempotent
from imagegate.api.schemas import JobCreate
from imagegate.errors import BatchLineTooLong, ImagegateError, InvalidRequest
from imagegate.services import batches as batches_service
from imagegate.services.batches import Item
from imagegate.services.idempotency import IdempotentRequest

JSON_TYPES = frozenset({"", "application/json"})
JSONL_TYPES = frozenset({"application/x-ndjson", "application/jsonl", "application/x-jsonlines"})
# Far above the longest valid create body (a full prompt, negative prompt, webhook URL
# and metadata, every character escaped), far below the body's own cap.
MAX_LINE_BYTES = 64 * 1024


def _json_body_schema() -> dict[str, Any]:
    schema = BatchCreate.model_json_schema()
    # Validated as "anything" (each item alone, later), documented as what it must be.
    schema["properties"]["items"]["items"] = {"$ref": "#/components/schemas/JobCreate"}
    return schema


OPENAPI_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": _json_body_schema()},
            **{
                media_type: {
                    "schema": {
                        "type": "string",
                        "description": "One create body (a JSON object) per line",
                    }
                }
                for media_type in sorted(JSONL_TYPES)
            },
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "A JSONL file: one create body per line",
                        }
                    },
                    "required": ["file"],
                }
            },
        },
    }
}
UNSUPPORTED_MEDIA_TYPE: dict[int | str, dict[str, Any]] = {
    415: {
        "description": "The body is neither JSON, JSONL nor a multipart form",
        "content": {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        },
    }
}


@dataclass(frozen=True)
class Parsed:
    items: list[Item]
    metadata: dict[str, str]
    # What the request asks, for its Idempotency-Key fingerprint: the JSON body's
    # fields as given, or the JSONL body's lines as sent.
    asked: dict[str, Any]


async def read(request: Request) -> Parsed:
    """The request's items, each a job to submit or the problem it has."""
    content_type = request.headers.get("content-type")
    if _media_type(content_type) == "multipart/form-data":
        return _from_jsonl(await _form_file(request))
    return parse(await request.body(), content_type)


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def parse(body: bytes, content_type: str | None) -> Parsed:
    """A JSON or JSONL body's items, each a job to submit or the problem it has."""
    media_type = _media_type(content_type)
    if media_type in JSON_TYPES:
        envelope = _json_envelope(body)
        items = [_item(index, raw) for index, raw in enumerate(envelope.items)]
        asked = envelope.model_dump(mode="json", exclude_unset=True)
        return Parsed(items, dict(envelope.metadata), asked)
    if media_type in JSONL_TYPES:
        return _from_jsonl(body)
    raise HTTPException(
        415, "Send the batch as application/json ({items, metadata}), as JSONL "
        "(application/x-ndjson, one create body per line), or as a JSONL `file` in a "
        "multipart/form-data body."
    )  # fmt: skip


def _from_jsonl(body: bytes) -> Parsed:
    lines = _jsonl_lines(body)
    items = [_item(i, _line_item(number, line)) for i, (number, line) in enumerate(lines)]
    asked = {"jsonl": [line.decode(errors="backslashreplace") for _, line in lines]}
    return Parsed(items, {}, asked)


async def _form_file(request: Request) -> bytes:
    """The JSONL a multipart form carries in its one ``file`` part (the body cap
    bounds it; Starlette spools a large part to a temporary file, which closing the
    form removes)."""
    try:
        form = await request.form(max_files=1, max_fields=8, max_part_size=MAX_LINE_BYTES)
    except HTTPException as error:
        # Starlette answers a form it cannot parse, or one past the limits, with a 400.
        raise InvalidRequest(
            f"the multipart form is refused: {error.detail}", field="file"
        ) from None
    try:
        files = form.getlist("file")
        if len(files) != 1 or isinstance(files[0], str):
            raise InvalidRequest(
                "a multipart batch needs exactly one `file` part (a file), holding JSONL",
                field="file",
            )
        return await files[0].read()
    finally:
        await form.close()


def idempotent_request(key: str | None, parsed: Parsed) -> IdempotentRequest | None:
    """The batch's key (checked as every POST's is) with the batch's fingerprint."""
    checked = idempotent(key, "create_batch")
    if checked is None:
        return None
    return IdempotentRequest(checked.key, fingerprint("create_batch", parsed.asked))


def _json_envelope(body: bytes) -> BatchCreate:
    raw = _loads(body, "the body")
    if not isinstance(raw, dict):
        raise InvalidRequest("the body must be a JSON object: {items: [...], metadata: {...}}")
    if isinstance(raw.get("items"), list):
        # Counted before anything is read: a huge batch is refused at once.
        batches_service.check_size(len(raw["items"]))
    try:
        return BatchCreate.model_validate(raw)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_input=False)]
        ) from error


def _jsonl_lines(body: bytes) -> list[tuple[int, bytes]]:
    """The non-blank lines, with their line numbers, checked against the limits."""
    lines = [
        (number, line.strip())
        for number, line in enumerate(body.removeprefix(b"\xef\xbb\xbf").split(b"\n"), 1)
        if line.strip()
    ]
    batches_service.check_size(len(lines))
    for number, line in lines:
        if len(line) > MAX_LINE_BYTES:
            raise BatchLineTooLong(
                f"line {number} is {len(line)} bytes; a line may hold at most {MAX_LINE_BYTES}"
            )
    return lines


def _line_item(number: int, line: bytes) -> Any:
    """The line's JSON value, or an ``_Unreadable`` saying why it has none."""
    try:
        return _loads(line, f"line {number}")
    except InvalidRequest as error:
        return _Unreadable(error.detail)


class _Unreadable(str):
    """A JSONL line that is not JSON: its problem, kept in place of the item."""

    __slots__ = ()


def _loads(text: bytes, what: str) -> Any:
    try:
        return json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise InvalidRequest(f"{what} is not valid JSON: {error}") from None


def _no_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON, and no database column can hold them.
    raise ValueError(f"{name} is not a JSON value")


def _item(index: int, raw: Any) -> Item:
    if isinstance(raw, _Unreadable):
        return Item(index, problem=_problem("validation_error", "Invalid request", str(raw)))
    if not isinstance(raw, dict):
        return Item(
            index,
            problem=_problem(
                "validation_error", "Invalid request",
                "an item must be a JSON object: the body of POST /api/image/jobs",
            ),
        )  # fmt: skip
    try:
        body = JobCreate.model_validate(raw)
    except ValidationError as error:
        return Item(index, problem=validation_problem(error))
    asked = body.model_dump(mode="json", exclude_unset=True)
    return Item(index, spec=body.to_spec(), fingerprint=fingerprint("create_job", asked))


def validation_problem(error: ValidationError) -> dict[str, Any]:
    """The problem ``POST /api/image/jobs`` answers for this body, with ``field``."""
    details = [
        {"field": ".".join(map(str, e["loc"])) or None, "message": e["msg"], "type": e["type"]}
        for e in error.errors(include_input=False)
    ]
    first = details[0]
    where = f"{first['field']}: " if first["field"] else ""
    return _problem(
        "validation_error", "Invalid request", f"{where}{first['message']}",
        field=first["field"], errors=details,
    )  # fmt: skip


def problem_of(error: ImagegateError) -> dict[str, Any]:
    """The problem document ``error`` would have answered as a request of its own."""
    return _problem(error.code, error.title, error.detail, status_for(error), **error.extra)


def _problem(code: str, title: str, detail: str, status: int = 422, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"urn:imagegate:error:{code}", "title": title, "status": status,
        "detail": detail, "code": code, **{k: v for k, v in extra.items() if v is not None},
    }  # fmt: skip
