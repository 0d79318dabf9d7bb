"""Emulator of the OpenAI Images API: ``POST /v1/images/generations``, ``/edits`` and
``/variations`` (multipart), ``GET /v1/models``, and the expiring blob URLs that
``response_format=url`` hands out. Edits come back as the input image at the size
asked for, repainted where the mask is transparent (sandbox/openai_images.py), after
the API's checks on the files: up to 16 PNG/JPEG/WebP images for gpt-image-1, one
square PNG for dall-e-2, a PNG mask with alpha of the image's size.

Like the real API it wants ``Authorization: Bearer <key>`` (the key is ``sk-sandbox``
unless ``IMAGEGATE_SANDBOX_OPENAI_KEY`` names another), answers errors in OpenAI's
``{"error": {message, type, param, code}}`` envelope, checks each model's sizes,
qualities, ``n`` and parameters, refuses moderated prompts as dall-e
(``content_policy_violation``) and gpt-image-1 (``moderation_blocked``) do, and sends
``x-request-id`` and ``x-ratelimit-*`` headers (reported, never enforced). What a
request may hold is checked in :mod:`.openai_requests`."""

from __future__ import annotations

import base64
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from imagegate.sandbox.base import (
    Sandbox,
    add_control_routes,
    error_response,
    hang,
    malformed_response,
    render,
)
from imagegate.sandbox.openai_images import edited
from imagegate.sandbox.openai_requests import (
    MODELS,
    Inputs,
    Job,
    OpenAIError,
    edit_inputs,
    parse,
    read_form,
)

API_KEY = "sk-sandbox"
KEY_ENV = "IMAGEGATE_SANDBOX_OPENAI_KEY"
URL_TTL_S = 3600.0  # OpenAI's result URLs last 60 minutes
RATE_LIMIT_PER_MIN = 500
_SERVER_ERROR = "The server had an error while processing your request. Sorry about that!"
# Output tokens gpt-image-1 bills per image, by quality, for a square image.
_OUTPUT_TOKENS = {"low": 272, "medium": 1056, "high": 4160, "auto": 1056}


@dataclass
class _RateWindow:
    """The figures of OpenAI's ``x-ratelimit-*-requests`` headers, per minute."""

    started: float = 0.0
    used: int = 0

    def headers(self, limited: bool, retry_after: str | None) -> dict[str, str]:
        now = time.monotonic()
        if now - self.started >= 60:
            self.started, self.used = now, 0
        self.used += 1
        remaining = 0 if limited else max(0, RATE_LIMIT_PER_MIN - self.used)
        reset = f"{retry_after}s" if retry_after else f"{60 - (now - self.started):.0f}s"
        return {
            "x-ratelimit-limit-requests": str(RATE_LIMIT_PER_MIN),
            "x-ratelimit-remaining-requests": str(remaining),
            "x-ratelimit-reset-requests": reset,
        }


class _Emulator:
    def __init__(self, sandbox: Sandbox, api_key: str) -> None:
        self.sandbox = sandbox
        self.api_key = api_key

    def authorize(self, request: Request) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise OpenAIError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if token.strip() != self.api_key:
            masked = f"{token[:3]}{'*' * max(0, len(token) - 7)}{token[-4:]}"
            raise OpenAIError(
                401,
                f"Incorrect API key provided: {masked}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    async def generations(self, request: Request) -> Response:
        self.authorize(request)
        try:
            fields = await request.json()
        except ValueError:
            fields = None
        if not isinstance(fields, dict):
            raise OpenAIError(400, "We could not parse the JSON body of your request.")
        return await self.serve(request, parse(fields, "generations"))

    async def edits(self, request: Request) -> Response:
        self.authorize(request)
        fields, files = await read_form(request)
        job = parse(fields, "edits")
        return await self.serve(request, job, edit_inputs(job, files, "edits"), "edits")

    async def variations(self, request: Request) -> Response:
        self.authorize(request)
        fields, files = await read_form(request)
        job = parse(fields, "variations")
        inputs = edit_inputs(job, files, "variations")
        return await self.serve(request, job, inputs, "variations")

    async def serve(
        self,
        request: Request,
        job: Job,
        inputs: Inputs | None = None,
        endpoint: str = "generations",
    ) -> Response:
        """Faults first, then the images: drawn from the prompt, or (edits and
        variations) from the inputs, repainted where they are transparent."""
        request_id: str = request.state.request_id
        decision = self.sandbox.decide(job.prompt)
        if decision.timeout:
            return await hang(request, self.sandbox, 499)
        await self.sandbox.delay(decision)
        if decision.status is not None:
            return error_response(decision, _fault_body(decision.status))
        if decision.malformed:
            return malformed_response()
        if decision.moderated:
            raise _moderation_error(job.model, request_id)
        if decision.fail_job:
            raise OpenAIError(500, _SERVER_ERROR, kind="server_error")
        self.sandbox.count("submissions")
        width, height = job.dimensions
        rng = self.sandbox.rng
        images = []
        for _ in range(job.n):
            seed = rng.randrange(2**32)
            images.append(
                await render(job.prompt, width, height, seed, job.output_format)
                if inputs is None
                else await edited(
                    inputs, endpoint, job.prompt, (width, height), seed, job.output_format
                )
            )
        # An injected expiry makes the URLs stale from the start.
        expires = time.time() + (-1.0 if decision.expired else URL_TTL_S)
        self.sandbox.jobs[request_id] = {"model": job.model, "images": images, "expires": expires}
        self.sandbox.stats["images"] += job.n
        data = [
            _item(job, image, f"{request.base_url}blob/private/org-sandbox/{request_id}/"
                  f"img-{index}.png?se={_iso(expires)}&sp=r&sig={uuid.uuid4().hex}")
            for index, image in enumerate(images)
        ]  # fmt: skip
        body: dict[str, Any] = {"created": int(time.time()), "data": data}
        if MODELS[job.model].gpt:
            # The response names what was made: "auto" resolved to a real size and
            # quality (OpenAI's ImagesResponse schema allows no "auto" in either).
            body.update(background="opaque", output_format=job.output_format.value,
                        quality=_resolved_quality(job.quality), size="x".join(
                            str(side) for side in job.dimensions), usage=_usage(job))  # fmt: skip
        return JSONResponse(body)

    async def blob(self, request_id: str, name: str) -> Response:
        """A result URL, answered as Azure blob storage does behind OpenAI's URLs."""
        job = self.sandbox.jobs.get(request_id)
        index = name.removeprefix("img-").removesuffix(".png")
        if job is None or not index.isdigit() or int(index) >= len(job["images"]):
            return _blob_error(404, "BlobNotFound", "The specified blob does not exist.")
        if time.time() > job["expires"]:
            return _blob_error(403, "AuthenticationFailed", "Signed expiry time has passed.")
        return Response(job["images"][int(index)], media_type="image/png")


def _item(job: Job, image: bytes, url: str) -> dict[str, Any]:
    item: dict[str, Any] = (
        {"b64_json": base64.b64encode(image).decode()}
        if job.response_format == "b64_json"
        else {"url": url}
    )
    if job.model == "dall-e-3":
        item["revised_prompt"] = job.prompt
    return item


def _resolved_quality(quality: str) -> str:
    # "auto" bills as medium (see _OUTPUT_TOKENS), so it reports medium.
    return "medium" if quality == "auto" else quality


def _usage(job: Job) -> dict[str, Any]:
    width, height = job.dimensions
    output = round(_OUTPUT_TOKENS[job.quality] * width * height / 1024**2) * job.n
    text = max(1, len(job.prompt) // 4)
    return {"total_tokens": text + output, "input_tokens": text, "output_tokens": output,
            "input_tokens_details": {"text_tokens": text, "image_tokens": 0}}  # fmt: skip


def _moderation_error(model: str, request_id: str) -> OpenAIError:
    if MODELS[model].gpt:
        return OpenAIError(
            400, "Your request was rejected by the safety system. If you believe this is an "
            f"error, contact us at help.openai.com and include the request ID {request_id}. "
            "safety_violations=[violence].", kind="image_generation_user_error",
            code="moderation_blocked",
            extra={"moderation_details": {"moderation_stage": "input",
                                          "categories": ["violence"]}},
        )  # fmt: skip
    return OpenAIError(
        400, "Your request was rejected as a result of our safety system. Your prompt may "
        "contain text that is not allowed by our safety system.", code="content_policy_violation",
    )  # fmt: skip


def _fault_body(status: int) -> dict[str, Any]:
    if status == 429:
        error = {"message": "Rate limit reached for images per minute in organization "
                 "org-sandbox. Please try again later.", "type": "requests", "param": None,
                 "code": "rate_limit_exceeded"}  # fmt: skip
    elif status == 503:
        error = {"message": "The server is overloaded or not ready yet.", "type": "server_error",
                 "param": None, "code": None}  # fmt: skip
    elif status >= 500:
        error = {"message": _SERVER_ERROR, "type": "server_error", "param": None, "code": None}
    else:
        error = {"message": f"Injected HTTP {status}.", "type": "invalid_request_error",
                 "param": None, "code": None}  # fmt: skip
    return {"error": error}


def _blob_error(status: int, code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><Error>'
        f"<Code>{code}</Code><Message>{message}\nRequestId:{uuid.uuid4()}\n"
        f"Time:{_iso(time.time())}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def create_app(api_key: str | None = None) -> FastAPI:
    """A fresh OpenAI Images emulator (its own faults, stats and results)."""
    emulator = _Emulator(Sandbox("openai"), api_key or os.environ.get(KEY_ENV) or API_KEY)
    window = _RateWindow()
    app = FastAPI(title="imagegate sandbox: OpenAI Images", docs_url=None, redoc_url=None)
    add_control_routes(app, emulator.sandbox)
    app.post("/v1/images/generations")(emulator.generations)
    app.post("/v1/images/edits")(emulator.edits)
    app.post("/v1/images/variations")(emulator.variations)
    app.get("/blob/private/org-sandbox/{request_id}/{name}")(emulator.blob)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        data = [{"id": m, "object": "model", "created": 1698785189, "owned_by": "system"}
                for m in MODELS]  # fmt: skip
        return {"object": "list", "data": data}

    @app.exception_handler(OpenAIError)
    async def openai_error(request: Request, error: OpenAIError) -> Response:
        return JSONResponse(error.body, status_code=error.status)

    @app.exception_handler(StarletteHTTPException)
    async def not_found(request: Request, error: StarletteHTTPException) -> Response:
        message = f"Invalid URL ({request.method} {request.url.path})"
        return JSONResponse(OpenAIError(error.status_code, message).body, error.status_code)

    @app.middleware("http")
    async def openai_headers(request: Request, call_next: Any) -> Response:
        request.state.request_id = f"req_{uuid.uuid4().hex}"
        started = time.monotonic()
        response: Response = await call_next(request)
        if request.url.path.startswith("/v1/"):
            response.headers["x-request-id"] = request.state.request_id
            response.headers["openai-version"] = "2020-10-01"
            response.headers["openai-processing-ms"] = str(int((time.monotonic() - started) * 1e3))
            limited = response.status_code == 429
            response.headers.update(window.headers(limited, response.headers.get("retry-after")))
        return response

    return app
