"""An emulator of the AUTOMATIC1111 / Forge WebUI API (``webui --api``).

Speaks: ``POST /sdapi/v1/txt2img``, ``/img2img`` and ``/extra-single-image`` (synchronous:
the answer carries the images, base64 PNG), ``GET /sdapi/v1/progress`` (global, like the
WebUI's: it shows whichever generation is running), ``POST /sdapi/v1/interrupt``, and
``GET /sdapi/v1/sd-models``, ``/samplers``, ``/upscalers``. Generations run one at a
time behind one lock, as the WebUI's queue lock makes them.

Auth is off, as it is by default. ``POST /_sandbox/api-auth`` with ``{"api_auth":
"user:pass"}`` turns on HTTP basic auth as ``--api-auth user:pass`` does (so does the
environment variable ``IMAGEGATE_SANDBOX_A1111_API_AUTH`` at start); ``/_sandbox/reset``
turns it off again.

Faults: the WebUI has no moderation and returns images inline, so ``moderate`` and
``expired`` change nothing here; ``fail`` is the WebUI's usual failure, CUDA out of
memory (HTTP 500)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import json
import os
import secrets
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from PIL import Image

from imagegate.imaging import encode_png
from imagegate.sandbox import a1111_images as images
from imagegate.sandbox.a1111_images import Inpaint, Job
from imagegate.sandbox.a1111_webui import (
    CHECKPOINTS,
    INTERROGATORS,
    MAX_PIXELS,
    OOM,
    SAMPLERS,
    UPSCALERS,
    ExtrasSingleImageRequest,
    Img2ImgRequest,
    InterrogateRequest,
    Txt2ImgRequest,
    WebUI,
    checkpoint,
    find_checkpoint,
    generation_info,
)
from imagegate.sandbox.base import (
    Decision,
    Sandbox,
    add_control_routes,
    hang,
    malformed_response,
    render,
)

# Draws one image of a seed at a size, off the event loop.
Draw = Callable[[int, int, int], bytes]


def create_app() -> FastAPI:
    """A fresh WebUI emulator with its own state."""
    sandbox = Sandbox("a1111")
    webui = WebUI(credentials=_parse_auth(os.environ.get("IMAGEGATE_SANDBOX_A1111_API_AUTH")))
    app = FastAPI(title="AUTOMATIC1111 sandbox", openapi_url=None)
    add_control_routes(app, sandbox)
    app.state.webui = webui

    @app.exception_handler(_AuthFailed)
    async def auth_failed(request: Request, error: _AuthFailed) -> Response:
        return _error(401, str(error), headers={"WWW-Authenticate": "Basic"})

    @app.middleware("http")
    async def reset_auth(request: Request, call_next: Any) -> Response:
        if request.url.path == "/_sandbox/reset":
            webui.credentials = {}
        response: Response = await call_next(request)
        return response

    @app.post("/_sandbox/api-auth")
    async def set_api_auth(body: dict[str, str]) -> dict[str, list[str]]:
        webui.credentials = _parse_auth(body.get("api_auth"))
        return {"users": sorted(webui.credentials)}

    @app.delete("/_sandbox/api-auth")
    async def clear_api_auth() -> dict[str, list[str]]:
        webui.credentials = {}
        return {"users": []}

    async def admitted(request: Request, prompt: str | None) -> Decision | Response:
        """Count the submission and apply its faults; a Response ends the request."""
        sandbox.count("submissions")
        decision = sandbox.decide(prompt)
        if decision.timeout:
            return await hang(request, sandbox)
        await sandbox.delay(decision)
        if decision.status:
            headers = {"Retry-After": str(decision.retry_after_s)} if decision.retry_after_s else {}
            if decision.status == 429:  # from a proxy in front: the WebUI has no limits
                return _error(429, "Too Many Requests", headers=headers)
            return _error(decision.status, "", "RuntimeError", "injected by the sandbox", headers)
        if decision.malformed:
            return malformed_response()
        return decision

    @app.post("/sdapi/v1/txt2img", dependencies=[Depends(_authorized)])
    async def txt2img(body: Txt2ImgRequest, request: Request) -> Response:
        decision = await admitted(request, body.prompt)
        if isinstance(decision, Response):
            return decision
        return await _generate(sandbox, webui, body, decision, "scripts_txt2img")

    @app.post("/sdapi/v1/img2img", dependencies=[Depends(_authorized)])
    async def img2img(body: Img2ImgRequest, request: Request) -> Response:
        decision = await admitted(request, body.prompt)
        if isinstance(decision, Response):
            return decision
        if body.init_images is None:
            return _error(404, "Init image not found")
        try:
            mask = images.decode(body.mask) if body.mask else None
            init = [images.decode(image) for image in body.init_images]
        except ValueError:
            return _error(500, "Invalid encoded image")
        if not init:
            return _error(500, "", "IndexError", "list index out of range")
        draw = functools.partial(_img2img, body, init[0], mask)
        return await _generate(sandbox, webui, body, decision, "scripts_img2img", draw)

    @app.post("/sdapi/v1/extra-single-image", dependencies=[Depends(_authorized)])
    async def extra_single_image(body: ExtrasSingleImageRequest, request: Request) -> Response:
        decision = await admitted(request, None)
        if isinstance(decision, Response):
            return decision
        return await _upscale(sandbox, webui, body, decision)

    @app.post("/sdapi/v1/interrogate", dependencies=[Depends(_authorized)])
    async def interrogate(body: InterrogateRequest, request: Request) -> Response:
        decision = await admitted(request, None)
        if isinstance(decision, Response):
            return decision
        return await _interrogate(sandbox, webui, body, decision)

    @app.get("/sdapi/v1/progress", dependencies=[Depends(_authorized)])
    async def progress() -> dict[str, Any]:
        sandbox.count("polls")
        await sandbox.delay(sandbox.decide(None, submission=False))
        return webui.progress()

    @app.post("/sdapi/v1/interrupt", dependencies=[Depends(_authorized)])
    async def interrupt() -> dict[str, Any]:
        if webui.state["job_count"]:
            webui.state["interrupted"] = True
        return {}

    @app.get("/sdapi/v1/sd-models", dependencies=[Depends(_authorized)])
    async def sd_models() -> list[dict[str, Any]]:
        return [checkpoint(name, short) for name, short in CHECKPOINTS]

    @app.get("/sdapi/v1/samplers", dependencies=[Depends(_authorized)])
    async def samplers() -> list[dict[str, Any]]:
        return [{"name": name, "aliases": [], "options": {}} for name in SAMPLERS]

    @app.get("/sdapi/v1/upscalers", dependencies=[Depends(_authorized)])
    async def upscalers() -> list[dict[str, Any]]:
        return [
            {"name": name, "model_name": None, "model_path": None, "model_url": None, "scale": 4}
            for name in UPSCALERS
        ]

    return app


def _parse_auth(value: str | None) -> dict[str, str]:
    """``user:pass[,user:pass…]``, the syntax of ``--api-auth``."""
    pairs = (item.split(":", 1) for item in (value or "").split(",") if ":" in item)
    return {user: password for user, password in pairs}


async def _authorized(request: Request) -> None:
    credentials: dict[str, str] = request.app.state.webui.credentials
    if not credentials:
        return
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise _AuthFailed("Not authenticated")
    try:
        user, _, password = base64.b64decode(encoded).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError) as error:
        raise _AuthFailed("Invalid authentication credentials") from error
    expected = credentials.get(user)
    if expected is None or not secrets.compare_digest(password, expected):
        raise _AuthFailed("Incorrect username or password")


class _AuthFailed(Exception):
    pass


def _error(
    status: int,
    detail: str,
    error: str = "HTTPException",
    errors: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The WebUI's error body (its API middleware renders every exception so)."""
    body = {
        "error": error,
        "detail": detail,
        "body": "",
        "errors": errors if errors is not None else f"{status}: {detail}",
    }
    return JSONResponse(body, status_code=status, headers=headers)


def _refusal(body: Txt2ImgRequest) -> JSONResponse | None:
    """What the WebUI refuses before it starts (None: nothing)."""
    if (body.sampler_name or body.sampler_index) not in SAMPLERS:
        return _error(404, "Sampler not found")
    checkpoint = (body.override_settings or {}).get("sd_model_checkpoint")
    if checkpoint is not None and find_checkpoint(str(checkpoint)) is None:
        return _error(500, "", "RuntimeError", f"model {checkpoint!r} not found")
    if max(8, body.width) * max(8, body.height) * body.batch_size > MAX_PIXELS:
        return _error(500, "", "OutOfMemoryError", OOM)
    return None


async def _generate(
    sandbox: Sandbox, webui: WebUI, body: Txt2ImgRequest, decision: Decision, job: str,
    draw: Draw | None = None,
) -> Response:  # fmt: skip
    """One txt2img or img2img call: ``draw`` makes an image of a seed at the floored
    size (a txt2img picture when None)."""
    refusal = _refusal(body)
    if refusal is not None:
        return refusal
    # Latent space is 1/8 of the image: sides come out floored to multiples of 8.
    width, height = max(8, body.width // 8 * 8), max(8, body.height // 8 * 8)
    seed = body.seed if body.seed != -1 else secrets.randbelow(2**32)
    count = body.batch_size * body.n_iter
    async with webui.lock:
        webui.begin(job, body.n_iter, body.steps)
        try:
            await _sample(sandbox, webui, body.n_iter, body.steps)
            if decision.fail_job:
                return _error(500, "", "OutOfMemoryError", OOM)
            images = []
            for i in range(count):
                if draw is None:
                    images.append(await render(body.prompt, width, height, seed + i))
                else:
                    images.append(await asyncio.to_thread(draw, seed + i, width, height))
        finally:
            timestamp = webui.state["job_timestamp"]
            webui.end()
    sandbox.jobs[f"{job}-{len(sandbox.jobs)}"] = {"job": job, "seed": seed, "images": count}
    info = generation_info(body, seed, count, width, height, timestamp)
    parameters = body.model_dump()
    if isinstance(body, Img2ImgRequest) and not body.include_init_images:
        parameters.update(init_images=None, mask=None)
    encoded = [base64.b64encode(image).decode() for image in images] if body.send_images else []
    return JSONResponse({"images": encoded, "parameters": parameters, "info": json.dumps(info)})


def _img2img(
    body: Img2ImgRequest, init: Image.Image, mask: Image.Image | None, seed: int, width: int,
    height: int,
) -> bytes:  # fmt: skip
    inpaint = None
    if mask is not None:
        blur = max(body.mask_blur_x, body.mask_blur_y) if body.mask_blur is None else body.mask_blur
        inpaint = Inpaint(
            mask=mask, blur=blur, fill=body.inpainting_fill, full_res=body.inpaint_full_res,
            padding=body.inpaint_full_res_padding, invert=bool(body.inpainting_mask_invert),
        )  # fmt: skip
    strength = 0.75 if body.denoising_strength is None else body.denoising_strength
    return images.img2img(
        Job(init, body.prompt, seed, width, height, body.resize_mode, strength, inpaint)
    )


async def _sample(sandbox: Sandbox, webui: WebUI, batches: int, steps: int) -> None:
    """Walk the sampling steps over the configured job duration, as progress shows."""
    pause = sandbox.faults.job_duration_ms / 1000 / max(1, batches * steps)
    for batch in range(batches):
        webui.state["job_no"] = batch
        for step in range(steps):
            if webui.state["interrupted"]:
                return
            webui.state["sampling_step"] = step
            await asyncio.sleep(pause)


async def _upscale(
    sandbox: Sandbox, webui: WebUI, body: ExtrasSingleImageRequest, decision: Decision
) -> Response:
    """postprocessing.run_extras with the upscale script: by a factor (resize mode 0)
    or to a size (1: the factor that covers it, then centred and cropped if asked)."""
    try:
        source = images.decode(body.image)
    except ValueError:
        return _error(500, "Invalid encoded image")
    for name in (body.upscaler_1, body.upscaler_2):
        if name not in UPSCALERS:
            return _error(500, "", "AssertionError", f"could not find upscaler named {name}")
    if body.resize_mode == 1:
        target = (body.upscaling_resize_w, body.upscaling_resize_h)
        scale = max(target[0] / source.width, target[1] / source.height)
        done = "upscale to: {}x{}".format(*target)
    else:
        target, scale, done = None, body.upscaling_resize, f"upscale by: {body.upscaling_resize:g}"
    if source.width * source.height * scale * scale > MAX_PIXELS or decision.fail_job:
        return _error(500, "", "OutOfMemoryError", OOM)
    crop = target if body.upscaling_crop else None
    async with webui.lock:
        webui.begin("extras", 1, 0)
        try:
            await asyncio.sleep(sandbox.faults.job_duration_ms / 1000)
            image = await asyncio.to_thread(images.upscaled, source, body.upscaler_1, scale, crop)
            data = await asyncio.to_thread(encode_png, image)
        finally:
            webui.end()
    sandbox.jobs[f"extras-{len(sandbox.jobs)}"] = {"job": "extras", "images": 1}
    html = f"<p>Postprocess {done}, Postprocess upscaler: {body.upscaler_1}</p>"
    return JSONResponse({"html_info": html, "image": base64.b64encode(data).decode()})


async def _interrogate(
    sandbox: Sandbox, webui: WebUI, body: InterrogateRequest, decision: Decision
) -> Response:
    """interrogateapi: decode, then the model by name (clip or deepdanbooru)."""
    try:
        source = images.decode(body.image)
    except ValueError:
        return _error(500, "Invalid encoded image")
    async with webui.lock:
        if body.model not in INTERROGATORS:
            return _error(404, "Model not found")
        webui.begin("interrogate", 1, 0)
        try:
            await asyncio.sleep(sandbox.faults.job_duration_ms / 1000)
            if decision.fail_job:
                return _error(500, "", "OutOfMemoryError", OOM)
            text = await asyncio.to_thread(images.caption, source, body.model)
        finally:
            webui.end()
    sandbox.jobs[f"interrogate-{len(sandbox.jobs)}"] = {"job": "interrogate", "images": 0}
    return JSONResponse({"caption": text})
