"""Emulator of the Black Forest Labs FLUX API: ``POST /v1/{model}`` submits a task and
answers ``{id, polling_url}``; ``GET /v1/get_result?id=`` (what ``polling_url`` points
at) reports ``Pending`` with ``progress``, then ``Ready`` with ``result.sample``, a
delivery URL that expires after 10 minutes, or ``Request Moderated``, ``Content
Moderated``, ``Error`` or ``Task not found``. Besides text-to-image it runs
``flux-pro-1.0-fill`` (image + mask: the white part repainted), ``flux-pro-1.0-expand``
(top/bottom/left/right pixels added) and Kontext with up to four reference images
(``input_image``, ``input_image_2..4``), drawing from the inputs (sandbox/bfl_images.py).

Like the real API it wants an ``x-key`` header (the key is ``bfl-sandbox`` unless
``IMAGEGATE_SANDBOX_BFL_KEY`` names another) and answers 403 without a good one,
validates each model's inputs (width and height multiples of 32 in 256..1440; an
aspect ratio between 21:9 and 9:21 for ultra and Kontext) with FastAPI's 422 body, and
answers 402 and 429 with ``{"detail": ...}``.

Faults: a prompt marker or global fault refuses the submission (status, timeout,
malformed body), or lets it become a task that ends ``Request Moderated``
(``sandbox:moderate``; the global ``moderation`` fault gives ``Content Moderated``
after the task's duration), ``Error`` (``sandbox:fail``) or ``Ready`` with a sample
URL that has already expired (``sandbox:expired``). A task takes ``job_duration_ms``."""

from __future__ import annotations

import base64
import binascii
import io
import math
import os
import time
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from PIL import Image
from pydantic import BaseModel, Field, ValidationError, field_validator

from imagegate.domain.params import OutputFormat
from imagegate.sandbox.base import (
    Sandbox,
    add_control_routes,
    error_response,
    hang,
    malformed_response,
)
from imagegate.sandbox.bfl_images import Drawing, decoded, draw

API_KEY = "bfl-sandbox"
KEY_ENV = "IMAGEGATE_SANDBOX_BFL_KEY"
RESULT_TTL_S = 600.0  # BFL's delivery URLs last 10 minutes
_ULTRA_PIXELS = 2048 * 2048
_KONTEXT_PIXELS = 1024 * 1024


class _Inputs(BaseModel):
    """The fields every FLUX endpoint shares (unknown fields are ignored, as there)."""

    prompt: str | None = ""
    seed: int | None = None
    prompt_upsampling: bool = False
    safety_tolerance: int = Field(default=2, ge=0, le=6)
    output_format: Literal["jpeg", "png"] | None = "jpeg"
    webhook_url: str | None = Field(default=None, min_length=1, max_length=2083)
    webhook_secret: str | None = None


def _check_ratio(value: str | None) -> str | None:
    if value is None:
        return value
    width, _, height = value.partition(":")
    if not (width.isdigit() and height.isdigit() and int(width) and int(height)):
        raise ValueError("aspect_ratio must look like 'W:H'")
    if not 9 / 21 <= int(width) / int(height) <= 21 / 9:
        raise ValueError("aspect_ratio must be between 21:9 and 9:21")
    return value


def _check_image(value: str | None) -> str | None:
    # A URL cannot be fetched from here; base64 must decode to an image.
    if value is None or value.startswith(("http://", "https://")):
        return value
    try:
        with Image.open(io.BytesIO(base64.b64decode(value, validate=True))) as image:
            image.verify()
    except (binascii.Error, ValueError, OSError):
        raise ValueError("not a base64-encoded image or an image URL") from None
    return value


class FluxPro11Inputs(_Inputs):
    width: int = Field(default=1024, ge=256, le=1440, multiple_of=32)
    height: int = Field(default=768, ge=256, le=1440, multiple_of=32)
    image_prompt: str | None = None

    @field_validator("image_prompt")
    @classmethod
    def check_image(cls, value: str | None) -> str | None:
        return _check_image(value)


class FluxDevInputs(FluxPro11Inputs):
    steps: int | None = Field(default=28, ge=1, le=50)
    guidance: float | None = Field(default=3.0, ge=1.5, le=5)


class FluxUltraInputs(_Inputs):
    aspect_ratio: str = "16:9"
    raw: bool = False
    image_prompt: str | None = None
    image_prompt_strength: float = Field(default=0.1, ge=0, le=1)

    @field_validator("aspect_ratio")
    @classmethod
    def check_ratio(cls, value: str) -> str | None:
        return _check_ratio(value)

    @field_validator("image_prompt")
    @classmethod
    def check_image(cls, value: str | None) -> str | None:
        return _check_image(value)


class FluxKontextInputs(_Inputs):
    prompt: str
    input_image: str | None = None
    # Kontext's multi-reference: up to three more images beside input_image.
    input_image_2: str | None = None
    input_image_3: str | None = None
    input_image_4: str | None = None
    aspect_ratio: str | None = None
    output_format: Literal["jpeg", "png"] | None = "png"

    @field_validator("aspect_ratio")
    @classmethod
    def check_ratio(cls, value: str | None) -> str | None:
        return _check_ratio(value)

    @field_validator("input_image", "input_image_2", "input_image_3", "input_image_4")
    @classmethod
    def check_image(cls, value: str | None) -> str | None:
        return _check_image(value)

    @property
    def references(self) -> tuple[str, ...]:
        given = (self.input_image, self.input_image_2, self.input_image_3, self.input_image_4)
        return tuple(i for i in given if i and not i.startswith("http"))


class _ToolInputs(_Inputs):
    """What fill and expand share: a required base64 image, steps and guidance."""

    image: str
    steps: int = Field(default=50, ge=15, le=50)
    guidance: float = Field(default=60, ge=1.5, le=100)

    @field_validator("image")
    @classmethod
    def check_image(cls, value: str) -> str:
        return str(_check_image(value))


class FluxFillInputs(_ToolInputs):
    # Black = keep, white = repaint; without one, the image's transparency is the mask.
    mask: str | None = None

    @field_validator("mask")
    @classmethod
    def check_mask(cls, value: str | None) -> str | None:
        return _check_image(value)


class FluxExpandInputs(_ToolInputs):
    top: int = Field(default=0, ge=0, le=2048)
    bottom: int = Field(default=0, ge=0, le=2048)
    left: int = Field(default=0, ge=0, le=2048)
    right: int = Field(default=0, ge=0, le=2048)


MODELS: dict[str, type[_Inputs]] = {
    "flux-pro-1.1": FluxPro11Inputs,
    "flux-dev": FluxDevInputs,
    "flux-pro-1.1-ultra": FluxUltraInputs,
    "flux-kontext-pro": FluxKontextInputs,
    "flux-kontext-max": FluxKontextInputs,
    "flux-pro-1.0-fill": FluxFillInputs,
    "flux-pro-1.0-expand": FluxExpandInputs,
}


def _output_size(inputs: _Inputs) -> tuple[int, int]:
    """What the model draws: the pixels asked for, or about 4 MP (ultra) or 1 MP
    (Kontext) at the aspect ratio asked for, or the input image's; fill keeps the
    image's size, expand adds its padding."""
    if isinstance(inputs, _ToolInputs):
        with decoded(inputs.image) as image:
            width, height = image.size
        if isinstance(inputs, FluxExpandInputs):
            return width + inputs.left + inputs.right, height + inputs.top + inputs.bottom
        return width, height
    if isinstance(inputs, FluxPro11Inputs):
        return inputs.width, inputs.height
    if isinstance(inputs, FluxUltraInputs):
        return _at_ratio(inputs.aspect_ratio, _ULTRA_PIXELS)
    assert isinstance(inputs, FluxKontextInputs)
    ratio = inputs.aspect_ratio
    if ratio is None and inputs.input_image and not inputs.input_image.startswith("http"):
        with decoded(inputs.input_image) as image:
            ratio = f"{image.width}:{image.height}"
    return _at_ratio(ratio or "1:1", _KONTEXT_PIXELS)


def _at_ratio(ratio: str, pixels: int) -> tuple[int, int]:
    width, _, height = ratio.partition(":")
    aspect = int(width) / int(height)
    return (
        max(32, round(math.sqrt(pixels * aspect) / 32) * 32),
        max(32, round(math.sqrt(pixels / aspect) / 32) * 32),
    )


class _Emulator:
    def __init__(self, sandbox: Sandbox, api_key: str) -> None:
        self.sandbox = sandbox
        self.api_key = api_key

    def authorize(self, request: Request) -> None:
        key = request.headers.get("x-key")
        if not key:
            raise HTTPException(403, "Not authenticated")
        if key != self.api_key:
            raise HTTPException(403, "Not authenticated - Invalid Authentication")

    async def submit(self, model: str, request: Request) -> Response:
        self.authorize(request)
        if model not in MODELS:
            raise HTTPException(404, "Not Found")
        inputs = await _inputs(request, MODELS[model])
        decision = self.sandbox.decide(inputs.prompt)
        if decision.timeout:
            return await hang(request, self.sandbox, 499)
        await self.sandbox.delay(decision)
        if decision.status is not None:
            return error_response(decision, {"detail": _FAULT_DETAIL.get(decision.status, (
                f"Injected HTTP {decision.status}"))})  # fmt: skip
        if decision.malformed:
            return malformed_response()
        self.sandbox.count("submissions")
        task_id = str(uuid.uuid4())
        width, height = _output_size(inputs)
        duration = self.sandbox.faults.job_duration_ms / 1000
        if decision.moderated:
            # The global fault stands for a verdict on the output, a marker for one on the input.
            ending = "Content Moderated" if self.sandbox.faults.moderation else "Request Moderated"
        else:
            ending = "Error" if decision.fail_job else "Ready"
        seed = inputs.seed if inputs.seed is not None else self.sandbox.rng.randrange(2**32)
        fmt = OutputFormat(inputs.output_format or "jpeg")
        self.sandbox.count(model)
        self.sandbox.jobs[task_id] = {
            "model": model, "prompt": inputs.prompt or "", "width": width, "height": height,
            "seed": seed, "format": fmt, "ending": ending,
            "started": time.time(), "duration": duration, "image": None,
            "drawing": _drawing(inputs, (width, height), seed, fmt),
            "expires": 0.0 if decision.expired else time.time() + duration + RESULT_TTL_S,
        }  # fmt: skip
        polling_url = f"{request.base_url}v1/get_result?id={task_id}"
        return JSONResponse({"id": task_id, "polling_url": polling_url})

    async def get_result(self, request: Request, id: str) -> Response:
        self.authorize(request)
        self.sandbox.count("polls")
        await self.sandbox.delay(self.sandbox.decide(None, submission=False))
        task = self.sandbox.jobs.get(id)
        answer: dict[str, Any] = {
            "id": id, "status": "Task not found", "result": None, "progress": None,
            "details": None, "preview": None,
        }  # fmt: skip
        if task is None:
            return JSONResponse(answer)
        elapsed = time.time() - task["started"]
        if task["ending"] != "Request Moderated" and elapsed < task["duration"]:
            answer.update(status="Pending", progress=round(elapsed / task["duration"], 2))
            return JSONResponse(answer)
        answer["status"] = task["ending"]
        if task["ending"] == "Ready":
            answer["result"] = _result(request, id, task)
        elif task["ending"] == "Error":
            answer["details"] = {"error": "The generation failed (injected by the sandbox)."}
        else:
            answer["details"] = {"Moderation Reasons": ["sandbox"]}
        return JSONResponse(answer)

    async def delivery(self, task_id: str, name: str) -> Response:
        """A sample URL, answered as the Azure blob storage behind BFL's delivery does."""
        task = self.sandbox.jobs.get(task_id)
        if task is None or task["ending"] != "Ready" or not name.startswith("sample."):
            return _blob_error(404, "BlobNotFound", "The specified blob does not exist.")
        if time.time() > task["expires"]:
            return _blob_error(403, "AuthenticationFailed", "Signed expiry time has passed.")
        if task["image"] is None:
            task["image"] = await draw(task["drawing"])
        return Response(task["image"], media_type=task["format"].content_type)


def _drawing(inputs: _Inputs, size: tuple[int, int], seed: int, fmt: OutputFormat) -> Drawing:
    prompt = inputs.prompt or ""
    if isinstance(inputs, FluxFillInputs):
        return Drawing("fill", prompt, size, seed, fmt, (inputs.image,), mask=inputs.mask)
    if isinstance(inputs, FluxExpandInputs):
        pads = (inputs.left, inputs.top, inputs.right, inputs.bottom)
        return Drawing("expand", prompt, size, seed, fmt, (inputs.image,), pads=pads)
    if isinstance(inputs, FluxKontextInputs) and inputs.references:
        return Drawing("kontext", prompt, size, seed, fmt, inputs.references)
    return Drawing("text", prompt, size, seed, fmt)


async def _inputs(request: Request, schema: type[_Inputs]) -> _Inputs:
    """The body as ``schema``; errors in FastAPI's 422 shape, as BFL answers them."""
    try:
        body = await request.json()
    except ValueError:
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body", 0), "msg": "JSON decode error", "input": {}}]
        ) from None
    try:
        return schema.model_validate(body)
    except ValidationError as error:
        errors = error.errors(include_url=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from None


_FAULT_DETAIL = {
    402: "Insufficient credits. Add credits to your account to continue.",
    429: "Task limit exceeded. Please wait for previous tasks to finish.",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _result(request: Request, task_id: str, task: dict[str, Any]) -> dict[str, Any]:
    extension = "jpeg" if task["format"] is OutputFormat.JPEG else "png"
    expires = datetime.fromtimestamp(task["expires"], UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    sample = (
        f"{request.base_url}delivery/results/{task_id}/sample.{extension}"
        f"?se={expires}&sp=r&sig={uuid.uuid4().hex}"
    )
    end = task["started"] + task["duration"]
    return {
        "sample": sample, "prompt": task["prompt"], "seed": task["seed"],
        "start_time": task["started"], "end_time": end, "duration": task["duration"],
    }  # fmt: skip


def _blob_error(status: int, code: str, message: str) -> Response:
    body = (
        '<?xml version="1.0" encoding="utf-8"?><Error>'
        f"<Code>{code}</Code><Message>{message}\nRequestId:{uuid.uuid4()}</Message></Error>"
    )
    return Response(body, status_code=status, media_type="application/xml")


def create_app(api_key: str | None = None) -> FastAPI:
    """A fresh BFL emulator (its own faults, stats and tasks)."""
    emulator = _Emulator(Sandbox("bfl"), api_key or os.environ.get(KEY_ENV) or API_KEY)
    app = FastAPI(title="imagegate sandbox: Black Forest Labs", docs_url=None, redoc_url=None)
    add_control_routes(app, emulator.sandbox)
    app.get("/v1/get_result")(emulator.get_result)
    app.post("/v1/{model}")(emulator.submit)
    app.get("/delivery/results/{task_id}/{name}")(emulator.delivery)
    return app
