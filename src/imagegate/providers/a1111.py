"""AUTOMATIC1111 / Forge WebUI adapter (the WebUI started with ``--api``).

``imagine`` is ``POST /sdapi/v1/txt2img``, ``vary`` is ``/img2img`` (the source image
as ``init_images``, ``strength`` as ``denoising_strength``), ``upscale`` is
``/extra-single-image``. Each call is synchronous: the answer carries the images, so
the HTTP timeout (``timeout_s``) must outlast the slowest generation. While it runs,
the adapter polls ``GET /sdapi/v1/progress`` for the progress bar; that endpoint is
global (it shows whichever generation the WebUI is running, and the WebUI runs one at
a time), so with several jobs on one WebUI a job's bar may show another's progress
until its own turn comes.

There is no job id to record: if a worker dies mid-call, the next attempt submits
again (and the WebUI, which finishes what it started, does the work twice). The WebUI
has no moderation of its own, so nothing here raises ModeratedError."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import re
from collections.abc import Coroutine
from typing import Any

import httpx
from pydantic import Field

from imagegate.domain.params import STYLES, Mode
from imagegate.providers.base import (
    Action,
    Capabilities,
    Correlation,
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
    standard_credits,
)
from imagegate.providers.errors import PermanentProviderError, ProviderError
from imagegate.providers.http import (
    ProviderConfig,
    call,
    decode_image,
    error_for,
    json_body,
    make_client,
)
from imagegate.providers.options import HttpOptions
from imagegate.providers.progress import ForwardProgress

DEFAULT_MODEL = "default"  # the checkpoint the WebUI has loaded
DEFAULT_UPSCALER = "R-ESRGAN 4x+"
DEFAULT_STRENGTH = 0.6
_STEPS = {Mode.DRAFT: 20, Mode.STANDARD: 30}
# 500s that no retry can cure: the request names something the WebUI does not have,
# or sends an image it cannot read. (Out of memory, also a 500, is worth a retry.)
_PERMANENT_500 = re.compile(
    r"could not find upscaler|invalid encoded image|model '[^']*' not found", re.IGNORECASE
)


class Options(HttpOptions):
    """``[providers.<name>.options]`` of an A1111 provider (docs/providers/a1111.md)."""

    # Fields merged into every txt2img/img2img body, e.g. sampler_name, steps, cfg_scale.
    payload: dict[str, Any] = Field(default_factory=dict)
    upscaler: str = DEFAULT_UPSCALER  # ``upscaler_1`` for upscales
    max_images: int = Field(default=8, ge=1)  # the batch_size limit


class A1111Provider:
    """Generates on one AUTOMATIC1111 or Forge WebUI. ``api_key`` is ``user:pass`` for
    a WebUI started with ``--api-auth``; ``options``: :class:`Options`."""

    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self._config = config
        self._models = config.models or (DEFAULT_MODEL,)
        options = Options.of(config.name, config.options)
        self._payload: dict[str, Any] = dict(options.payload)
        self._upscaler = options.upscaler
        self._max_images = options.max_images
        self._client = make_client(config, max_connections=options.max_connections)
        if config.api_key:
            user, _, password = config.api_key.partition(":")
            self._client.auth = httpx.BasicAuth(user, password)

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=self._models,
            max_images=self._max_images,
            modes=(Mode.DRAFT, Mode.STANDARD),
            styles=STYLES,
            actions=(Action.IMAGINE, Action.VARIATION, Action.UPSCALE),
            seeds=True,
            negative_prompt=True,
        )

    def estimate_credits(self, request: GenerationRequest) -> int:
        return standard_credits(request)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        # ``correlation`` stays unused: a synchronous call has no id to resume.
        images: tuple[GeneratedImage, ...]
        if request.action is Action.UPSCALE:
            body = self._upscale_body(request)
            answer = await self._with_progress(self._post("extra-single-image", body), progress)
            images = (_decode(answer.get("image"), _first_seed(request), "a1111: upscale"),)
        else:
            path = "img2img" if request.action is Action.VARIATION else "txt2img"
            body = self._generation_body(request)
            answer = await self._with_progress(self._post(path, body), progress)
            images = _images(answer, request, f"a1111: {path}")
        await progress(1.0)
        return GenerationResult(images, provider_job_id=None, cost_usd=0.0)

    async def interrupt(self) -> None:
        """Stop the WebUI's current generation, whichever job it belongs to: the
        interrupt is global, like the progress."""
        what = "a1111: interrupt"
        response = await call(self._client, "POST", "/sdapi/v1/interrupt", what)
        if response.status_code != 200:
            raise _http_error(response, what)

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- the request -------------------------------------------------------------------

    def _generation_body(self, request: GenerationRequest) -> dict[str, Any]:
        count = len(request.seeds)
        if not 1 <= count <= self._max_images:
            raise PermanentProviderError(
                f"a1111: {count} images requested; this WebUI is configured for "
                f"1 to {self._max_images} per call"
            )
        body: dict[str, Any] = {
            "prompt": _styled(request),
            "negative_prompt": request.negative_prompt or "",
            # The WebUI seeds image i of a batch with seed + i: our seeds exactly,
            # unless they wrapped around the top of the range (info says which it used).
            "seed": request.seeds[0],
            "batch_size": count,
            "n_iter": 1,
            "width": _multiple_of_8(request.width),
            "height": _multiple_of_8(request.height),
            "steps": _STEPS[request.mode],
            "cfg_scale": 7.0,
            "sampler_name": "Euler a",
            "send_images": True,
            "save_images": False,
        }
        if request.model not in (DEFAULT_MODEL, self.name, ""):
            body["override_settings"] = {"sd_model_checkpoint": request.model}
        if request.action is Action.VARIATION:
            strength = DEFAULT_STRENGTH if request.strength is None else request.strength
            body.update(init_images=[_source(request)], denoising_strength=strength)
        return {**body, **self._payload}

    def _upscale_body(self, request: GenerationRequest) -> dict[str, Any]:
        factor = min(8, max(1, request.upscale_factor or 2))  # the WebUI accepts 1..8
        return {
            "image": _source(request),
            "resize_mode": 0,
            "upscaling_resize": factor,
            "upscaler_1": self._upscaler,
        }

    # -- the call ----------------------------------------------------------------------

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        what = f"a1111: {path}"
        # The images come back inside the JSON, base64 (and a grid beside several).
        count = int(body.get("batch_size", 1)) * int(body.get("n_iter", 1)) + 1
        cap = self._config.reads.inline_images_cap(count)
        response = await call(
            self._client, "POST", f"/sdapi/v1/{path}", what, json=body, max_bytes=cap
        )
        if response.status_code != 200:
            raise _http_error(response, what)
        answer = json_body(response, what)
        if not isinstance(answer, dict):
            raise ProviderError(f"{what}: expected an object, got {str(answer)[:200]!r}")
        return answer

    async def _with_progress(
        self, work: Coroutine[Any, Any, dict[str, Any]], progress: ProgressCallback
    ) -> dict[str, Any]:
        """Run ``work`` while polling the WebUI's progress every poll interval."""
        task = asyncio.create_task(work)
        # Stop short of 1.0 until the images are in hand; never go back.
        forward = ForwardProgress(progress, ceiling=0.99)
        await forward(0.0)
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self._config.poll_interval_s)
                if done:
                    return task.result()
                fraction = await self._progress()
                if fraction is not None:
                    await forward(fraction)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _progress(self) -> float | None:
        """The running generation's fraction done; ``None`` when nothing runs or the
        endpoint does not answer (progress is a nicety: it never fails a job)."""
        params = {"skip_current_image": "true"}
        try:
            response = await call(
                self._client, "GET", "/sdapi/v1/progress", "a1111: progress", params=params
            )
            data = response.json() if response.status_code == 200 else None
        except (ProviderError, ValueError):
            return None
        if not isinstance(data, dict) or not (data.get("state") or {}).get("job_count"):
            return None
        value = data.get("progress")
        return float(value) if isinstance(value, int | float) else None


def build(config: ProviderConfig) -> A1111Provider:
    return A1111Provider(config)


def _http_error(response: httpx.Response, what: str) -> ProviderError:
    if response.status_code >= 500 and _PERMANENT_500.search(response.text):
        return PermanentProviderError(f"{what}: HTTP {response.status_code} {response.text[:300]}")
    return error_for(response, what)


def _styled(request: GenerationRequest) -> str:
    """The WebUI's own styles are per-installation; a style is said in words."""
    if request.style in ("", "none"):
        return request.prompt
    return f"{request.prompt}, {request.style} style"


def _multiple_of_8(side: int) -> int:
    """The WebUI works in a latent space 1/8 the size and floors other sides to a
    multiple of 8; snapping to the nearest multiple (halves up) loses less."""
    return max(64, (side + 4) // 8 * 8)


def _source(request: GenerationRequest) -> str:
    if not request.source_image:
        raise PermanentProviderError(f"a1111: {request.action} needs a source image")
    return base64.b64encode(request.source_image).decode()


def _first_seed(request: GenerationRequest) -> int:
    return request.seeds[0] if request.seeds else 0


def _images(
    answer: dict[str, Any], request: GenerationRequest, what: str
) -> tuple[GeneratedImage, ...]:
    encoded = answer.get("images")
    wanted = len(request.seeds)
    if not isinstance(encoded, list) or len(encoded) < wanted:
        got = len(encoded) if isinstance(encoded, list) else 0
        raise ProviderError(f"{what}: {got} of {wanted} images returned")
    # Extensions (ControlNet and others) may append their own images after the batch.
    seeds = _seeds_used(answer.get("info"), request.seeds)
    return tuple(_decode(item, seed, what) for item, seed in zip(encoded, seeds, strict=False))


def _seeds_used(info: Any, requested: tuple[int, ...]) -> tuple[int, ...]:
    """The seeds the WebUI reports in ``info`` (a JSON string), else those we sent."""
    try:
        seeds = json.loads(info)["all_seeds"] if isinstance(info, str) else None
    except (ValueError, KeyError, TypeError):
        seeds = None
    if isinstance(seeds, list) and len(seeds) >= len(requested):
        if all(isinstance(seed, int) for seed in seeds):
            return tuple(seeds[: len(requested)])
    return requested


def _decode(encoded: Any, seed: int, what: str) -> GeneratedImage:
    if not isinstance(encoded, str):
        raise ProviderError(f"{what}: an image is missing from the answer")
    try:
        data = base64.b64decode(encoded.split(",", 1)[-1], validate=True)
    except (binascii.Error, ValueError) as error:
        raise ProviderError(f"{what}: an image is not valid base64") from error
    return decode_image(data, seed, what)
