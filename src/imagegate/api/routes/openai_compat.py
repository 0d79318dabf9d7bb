"""/v1: the OpenAI-compatible images API (docs/openai-compat.md), so the official
``openai`` SDK works against imagegate by changing ``base_url`` and ``api_key``.

Errors here answer in OpenAI's shape, ``{"error": {"message", "type", "param",
"code"}}``, not as RFC 9457 problems: the route class below translates them for this
router alone."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from imagegate import errors
from imagegate.api import errors as api_errors
from imagegate.api.deps import PrincipalDep, RuntimeDep
from imagegate.api.openai_schemas import (
    ImageEditFields,
    ImageGenerate,
    ImageVariationFields,
    PromptedFields,
)
from imagegate.api.rate_limit_headers import headers_for, remember
from imagegate.api.schemas import JobPublic
from imagegate.domain.actions import BLEND_MAX
from imagegate.domain.openai_images import Family
from imagegate.domain.records import Principal
from imagegate.observability.logging import get_logger
from imagegate.runtime import Runtime
from imagegate.services import openai_compat as service
from imagegate.services.event_feed import EventFeed
from imagegate.services.jobs import Presenter
from imagegate.services.openai_compat import Finished, OpenAIFailure, Pending, Upload
from imagegate.settings import Settings

PREFIX = "/v1"
EDITS_PATH = PREFIX + "/images/edits"
VARIATIONS_PATH = PREFIX + "/images/variations"
# A blend's most images and a mask (OpenAI takes 16 images; imagegate blends at most
# BLEND_MAX): a form with more is refused before any file is read.
MAX_FORM_FILES = BLEND_MAX + 1
MAX_FORM_FIELDS = 32
MAX_FORM_FIELD_BYTES = 128 * 1024  # a prompt of 32 000 characters, in UTF-8
KEEPALIVE_S = 15
log = get_logger("imagegate.openai_compat")
_Form = TypeVar("_Form", ImageEditFields, ImageVariationFields)


def error_body(failure: OpenAIFailure) -> JSONResponse:
    body = {"error": {"message": failure.message, "type": failure.type,
                      "param": failure.param, "code": failure.code}}  # fmt: skip
    return JSONResponse(body, status_code=failure.status, headers=failure.headers)


# The official SDKs honour ``x-should-retry``; they wait out a Retry-After of up to a
# minute and otherwise back off for a second or two, which no daily quota outlasts.
NO_RETRY = {"x-should-retry": "false"}
SDK_MAX_RETRY_AFTER_S = 60

# imagegate's own field names, as OpenAI calls them.
_PARAMS = {"ratio": "size", "mode": "quality", "variations": "n", "init_image": "image"}


def failure_from(error: Exception) -> OpenAIFailure | None:
    """OpenAI's answer to one of imagegate's errors; None for a bug (logged, then a
    500 ``server_error``)."""
    if isinstance(error, OpenAIFailure):
        return error
    if isinstance(error, RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p != "body"]
        param = loc[0] if loc else None
        message = f"{param}: {first.get('msg')}" if param else str(first.get("msg", "invalid"))
        return OpenAIFailure(400, message, param=param, code="invalid_value")
    if isinstance(error, errors.Unauthenticated):
        return OpenAIFailure(401, f"Incorrect API key provided. {error.detail}",
                             code="invalid_api_key")  # fmt: skip
    if isinstance(error, errors.ContentPolicyViolation):
        return OpenAIFailure(
            400, f"Your request was rejected by the safety system. {error.detail}",
            type_="image_generation_user_error", param="prompt", code="moderation_blocked",
        )  # fmt: skip
    if isinstance(error, errors.InsufficientCredits):
        # OpenAI's billing refusal; the SDK would retry a 429 unless told not to.
        return OpenAIFailure(429, error.detail, type_="insufficient_quota",
                             code="insufficient_quota", headers=NO_RETRY)  # fmt: skip
    if isinstance(error, errors.RateLimited):
        headers = headers_for(error.allowance)
        if (error.allowance.retry_after_s or 0) > SDK_MAX_RETRY_AFTER_S:
            headers = {**headers, **NO_RETRY}  # a daily quota: retrying soon cannot help
        code = "quota_exceeded" if isinstance(error, errors.QuotaExceeded) else None
        return OpenAIFailure(429, error.detail, type_="requests",
                             code=code or "rate_limit_exceeded", headers=headers)  # fmt: skip
    if isinstance(error, errors.ImagegateError):
        status = api_errors.status_for(error)
        field = error.extra.get("field")
        param = _PARAMS.get(str(field), str(field)) if field else None
        # OpenAI answers bad input with 400 where imagegate says 422 or 415.
        status = 400 if status in (415, 422) else status
        if status >= 500:
            return None
        return OpenAIFailure(status, error.detail, param=param, code=error.code)
    if isinstance(error, HTTPException):
        return OpenAIFailure(error.status_code, str(error.detail))
    return None


class OpenAIRoute(APIRoute):
    """Answers every error of its routes, authentication and validation included, in
    OpenAI's shape."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as error:
                failure = failure_from(error)
                if failure is None:
                    log.error("openai_compat.unhandled", error=repr(error), exc_info=error)
                    failure = OpenAIFailure(500, "The server had an error while processing "
                                            "your request.", type_="server_error")  # fmt: skip
                return error_body(failure)

        return handle


# Out of imagegate's OpenAPI document: these routes speak OpenAI's protocol (its
# bodies, its error shape), which OpenAI's own document describes.
router = APIRouter(prefix=PREFIX, tags=["openai"], route_class=OpenAIRoute, include_in_schema=False)


def too_large(cap: int) -> Response:
    """A body over its cap, in OpenAI's error shape."""
    return error_body(OpenAIFailure(
        413, f"The request body is over {cap} bytes.", code="payload_too_large"
    ))  # fmt: skip


def body_limits(settings: Settings) -> dict[str, int]:
    """The body caps of the routes that take files: a mask and a blend's images."""
    cap = settings.upload_max_bytes * MAX_FORM_FILES + 256 * 1024
    return {EDITS_PATH: cap, VARIATIONS_PATH: settings.upload_max_bytes + 256 * 1024}


def _present(rt: Runtime) -> Presenter:
    return lambda job: JobPublic.from_record(job, rt.storage).model_dump(mode="json")


async def answer(rt: Runtime, done: Finished) -> JSONResponse:
    """OpenAI's ``ImagesResponse`` for a finished job."""
    pending = done.pending
    data: list[dict[str, Any]] = []
    for image in done.images:
        item: dict[str, Any] = (
            {"b64_json": await service.image_bytes(rt, image)}
            if pending.b64 else {"url": rt.storage.url(image.storage_key)}
        )  # fmt: skip
        if pending.shape.family is Family.DALL_E_3:
            item["revised_prompt"] = done.job.prompt
        data.append(item)
    body: dict[str, Any] = {
        "created": _created(done),
        "data": data,
        "size": pending.shape.size,
        "quality": pending.shape.quality,
    }
    if pending.shape.family is Family.GPT_IMAGE:
        body.update(output_format=pending.output_format, background="opaque")
    return JSONResponse(body, headers={"X-Imagegate-Job-Id": done.job.id})


def _created(done: Finished) -> int:
    ended = done.job.completed_at
    return int(ended.timestamp() if ended else time.time())


async def respond(
    request: Request, rt: Runtime, principal: Principal, pending: Pending, events: str | None
) -> Response:
    """The answer once the job ends: JSON, or with ``events`` (``image_generation`` or
    ``image_edit``) a stream of OpenAI's server-sent events."""
    remember(request, pending.rate_limit)
    feed = request.app.state.event_feed
    if events is None:
        return await answer(rt, await service.finish(rt, feed, principal, pending))
    return StreamingResponse(
        _events(rt, feed, principal, pending, events),
        media_type="text/event-stream",
        headers={"X-Imagegate-Job-Id": pending.job_id, "Cache-Control": "no-store"},
    )


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _events(
    rt: Runtime, feed: EventFeed, principal: Principal, pending: Pending, prefix: str
) -> AsyncIterator[bytes]:
    """Comments while the job runs (so proxies keep the connection), then one
    ``completed`` event per image, or an ``error`` event. No ``partial_image`` events:
    imagegate's providers hand over finished images only, and OpenAI lets the final
    image come before the partials asked for."""
    waiting = asyncio.ensure_future(service.finish(rt, feed, principal, pending))
    try:
        while not waiting.done():
            await asyncio.wait({waiting}, timeout=KEEPALIVE_S)
            if not waiting.done():
                yield b": waiting for the job\n\n"
        done = waiting.result()
    except Exception as error:
        failure = failure_from(error) or OpenAIFailure(
            500, "The server had an error while processing your request.", type_="server_error"
        )
        body = {"message": failure.message, "type": failure.type, "param": failure.param,
                "code": failure.code}  # fmt: skip
        yield _sse("error", {"type": "error", "error": body})
        return
    finally:
        waiting.cancel()
    for image in done.images:
        yield _sse(
            f"{prefix}.completed",
            {
                "type": f"{prefix}.completed",
                "b64_json": await service.image_bytes(rt, image),
                "created_at": _created(done),
                "size": pending.shape.size,
                "quality": pending.shape.quality,
                "background": "opaque",
                "output_format": pending.output_format,
            },
        )


@router.get("/models", operation_id="openai_list_models")
async def list_models(rt: RuntimeDep, _: PrincipalDep) -> dict[str, Any]:
    """The OpenAI model names this server accepts (IMAGEGATE_OPENAI_MODELS)."""
    return {
        "object": "list",
        "data": [
            {
                "id": name,
                "object": "model",
                "created": 0,
                "owned_by": "imagegate",
                "imagegate_model": target,
            }
            for name, target in sorted(rt.settings.openai_models_map.items())
        ],
    }


@router.post("/images/generations", operation_id="openai_create_image")
async def create_image(
    request: Request, body: ImageGenerate, rt: RuntimeDep, principal: PrincipalDep
) -> Response:
    """Generate images from a prompt; answered when the imagegate job ends."""
    pending = await service.generate(rt, principal, body.request(body.prompt), _present(rt))
    return await respond(request, rt, principal, pending, _stream(body, "image_generation"))


@router.post("/images/edits", operation_id="openai_edit_image")
async def edit_image(request: Request, rt: RuntimeDep, principal: PrincipalDep) -> Response:
    """Edit one image (with or without a mask) or blend several, led by a prompt."""
    fields, files = await _form(request, rt.settings.upload_max_bytes)
    body = _validated(ImageEditFields, fields)
    images = files.get("image", []) + files.get("image[]", [])
    masks = files.get("mask", [])
    mask = masks[0] if masks else None
    pending = await service.edit(
        rt, principal, body.request(body.prompt), images, mask, _present(rt)
    )
    return await respond(request, rt, principal, pending, _stream(body, "image_edit"))


@router.post("/images/variations", operation_id="openai_create_image_variation")
async def create_image_variation(
    request: Request, rt: RuntimeDep, principal: PrincipalDep
) -> Response:
    """A variation of one image."""
    fields, files = await _form(request, rt.settings.upload_max_bytes)
    body = _validated(ImageVariationFields, fields)
    images = files.get("image", [])
    if len(images) != 1:
        raise OpenAIFailure(400, "send one image", param="image", code="invalid_value")
    pending = await service.variation(rt, principal, body.request(""), images[0], _present(rt))
    return await respond(request, rt, principal, pending, None)


def _stream(body: PromptedFields, events: str) -> str | None:
    return events if body.stream else None


def _validated(model: type[_Form], fields: dict[str, str]) -> _Form:
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        raise RequestValidationError(_in_body(error)) from None


def _in_body(error: ValidationError) -> list[dict[str, Any]]:
    return [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]


async def _form(request: Request, max_bytes: int) -> tuple[dict[str, str], dict[str, list[Upload]]]:
    """A multipart form's text fields and its files (each read up to one byte past
    the upload cap: intake refuses a longer one)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "multipart/form-data":
        raise OpenAIFailure(400, "send multipart/form-data", code="invalid_value")
    try:
        form = await request.form(
            max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS,
            max_part_size=MAX_FORM_FIELD_BYTES,
        )  # fmt: skip
    except HTTPException as error:
        raise OpenAIFailure(400, f"the multipart form is refused: {error.detail}") from None
    try:
        fields: dict[str, str] = {}
        files: dict[str, list[Upload]] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                data = await value.read(max_bytes + 1)
                files.setdefault(name, []).append(Upload(data, value.content_type, name))
            else:
                fields[name] = value
        return fields, files
    finally:
        await form.close()
