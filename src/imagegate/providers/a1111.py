"""AUTOMATIC1111 / Forge WebUI adapter (the WebUI started with ``--api``).

``imagine`` is ``POST /sdapi/v1/txt2img``; ``img2img``, ``variation``, ``vary_region``,
``zoom_out`` and ``pan`` are ``/img2img`` (the last three with a mask: inpainting);
``upscale`` is ``/extra-single-image`` (and, creative, an img2img pass over its result);
``describe`` is ``/interrogate``. The bodies are built in :mod:`.a1111_bodies`. Each
call is synchronous: the answer carries the images, so the HTTP timeout (``timeout_s``)
must outlast the slowest generation. While it runs, the adapter polls ``GET
/sdapi/v1/progress`` for the progress bar; that endpoint is global (it shows whichever
generation the WebUI is running, and the WebUI runs one at a time), so with several
jobs on one WebUI a job's bar may show another's progress until its own turn comes.

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
from typing import Any

import httpx

from imagegate.domain.actions import UpscaleMode
from imagegate.domain.params import STYLES, Mode
from imagegate.providers.a1111_bodies import (
    DEFAULT_MODEL,
    DEFAULT_STRENGTH,
    DEFAULT_UPSCALER,
    Options,
    creative_body,
    generation_body,
    img2img_body,
    interrogate_body,
    merged,
    suggestions,
    upscale_body,
)
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
from imagegate.providers.fitting import fit
from imagegate.providers.http import (
    ProviderConfig,
    call,
    decode_image,
    error_for,
    json_body,
    make_client,
)
from imagegate.providers.progress import ForwardProgress

__all__ = ["DEFAULT_MODEL", "DEFAULT_STRENGTH", "DEFAULT_UPSCALER", "A1111Provider", "Options"]

ACTIONS = (
    Action.IMAGINE,
    Action.IMG2IMG,
    Action.VARIATION,
    Action.VARY_REGION,
    Action.ZOOM_OUT,
    Action.PAN,
    Action.UPSCALE,
    Action.DESCRIBE,
)
# 500s that no retry can cure: the request names something the WebUI does not have,
# or sends an image it cannot read. (Out of memory, also a 500, is worth a retry.)
_PERMANENT_500 = re.compile(
    r"could not find upscaler|invalid encoded image|model '[^']*' not found", re.IGNORECASE
)
# The WebUI floors each side to a multiple of 8 (the latent space, the upscalers): an
# answer this close to the size asked for is resized to it, anything else refused.
_SLACK = 8


class A1111Provider:
    """Generates on one AUTOMATIC1111 or Forge WebUI. ``api_key`` is ``user:pass`` for
    a WebUI started with ``--api-auth``; ``options``: :class:`Options`."""

    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self._config = config
        self._models = config.models or (DEFAULT_MODEL,)
        self._options = Options.of(config.name, config.options)
        self._client = make_client(config, max_connections=self._options.max_connections)
        if config.api_key:
            user, _, password = config.api_key.partition(":")
            self._client.auth = httpx.BasicAuth(user, password)

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=self._models,
            max_images=self._options.max_images,
            modes=(Mode.DRAFT, Mode.STANDARD),
            styles=STYLES,
            actions=ACTIONS,
            seeds=True,
            negative_prompt=True,
            tuning=frozenset({"tile"}),
        )

    def estimate_credits(self, request: GenerationRequest) -> int:
        return standard_credits(request)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        # ``correlation`` stays unused: a synchronous call has no id to resume.
        if request.action not in ACTIONS:
            raise PermanentProviderError(f"a1111: {request.action} is not supported")
        options = merged(self._options, self.name, request.options)
        # Stop short of 1.0 until the images are in hand; never go back.
        forward = ForwardProgress(progress, ceiling=0.99)
        await forward(0.0)
        if request.action is Action.DESCRIBE:
            answer = await self._run("interrogate", interrogate_body(request, options), forward)
            texts = _suggestions(answer.get("caption"))
            await progress(1.0)
            return GenerationResult((), provider_job_id=None, texts=texts)
        if request.action is Action.UPSCALE:
            images: tuple[GeneratedImage, ...] = (await self._upscale(request, options, forward),)
        elif request.action is Action.IMAGINE:
            body = {**generation_body(request, options, self.name), **options.payload}
            answer = await self._run("txt2img", body, forward)
            images = _images(answer, request.seeds, "a1111: txt2img")
        else:
            answer = await self._run("img2img", img2img_body(request, options, self.name), forward)
            images = _images(answer, request.seeds, "a1111: img2img")
        # Decoding and resizing a large image would hold up the event loop: a thread.
        fitted = await asyncio.to_thread(_fit_all, images, request)
        await progress(1.0)
        return GenerationResult(fitted, provider_job_id=None, cost_usd=0.0)

    async def _upscale(
        self, request: GenerationRequest, options: Options, forward: ForwardProgress
    ) -> GeneratedImage:
        """Extras at the target size; creative: then img2img over it at low denoise."""
        creative = request.upscale_mode is UpscaleMode.CREATIVE
        what, seed = "a1111: extra-single-image", request.seeds[0] if request.seeds else 0
        body = upscale_body(request, options)
        answer = await self._run("extra-single-image", body, forward, end=0.5 if creative else 1)
        image = _decode(answer.get("image"), seed, what)
        if image.width < request.width - _SLACK or image.height < request.height - _SLACK:
            raise PermanentProviderError(
                f"{what}: upscaler {options.upscaler!r} made {image.width}x{image.height} "
                f"of an upscale to {request.width}x{request.height} (is it 'None'?)"
            )
        if not creative:
            return image
        body = creative_body(request, options, self.name, image.data)
        answer = await self._run("img2img", body, forward, start=0.5)
        return _images(answer, (seed,), "a1111: img2img (creative upscale)")[0]

    async def interrupt(self) -> None:
        """Stop the WebUI's current generation, whichever job it belongs to: the
        interrupt is global, like the progress."""
        what = "a1111: interrupt"
        response = await call(self._client, "POST", "/sdapi/v1/interrupt", what)
        if response.status_code != 200:
            raise _http_error(response, what)

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- the call ----------------------------------------------------------------------

    async def _run(
        self,
        path: str,
        body: dict[str, Any],
        forward: ForwardProgress,
        start: float = 0.0,
        end: float = 1.0,
    ) -> dict[str, Any]:
        """POST ``body`` while polling the WebUI's progress every poll interval, its
        fraction reported between ``start`` and ``end``."""
        task = asyncio.create_task(self._post(path, body))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self._config.poll_interval_s)
                if done:
                    return task.result()
                fraction = await self._progress()
                if fraction is not None:
                    await forward(start + (end - start) * fraction)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

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


def _images(
    answer: dict[str, Any], requested: tuple[int, ...], what: str
) -> tuple[GeneratedImage, ...]:
    encoded = answer.get("images")
    wanted = len(requested)
    if not isinstance(encoded, list) or len(encoded) < wanted:
        got = len(encoded) if isinstance(encoded, list) else 0
        raise ProviderError(f"{what}: {got} of {wanted} images returned")
    # Extensions (ControlNet and others) may append their own images after the batch.
    seeds = _seeds_used(answer.get("info"), requested)
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


def _fit_all(
    images: tuple[GeneratedImage, ...], request: GenerationRequest
) -> tuple[GeneratedImage, ...]:
    what = f"a1111: {request.action}"
    return tuple(_fit(image, request.width, request.height, what) for image in images)


def _fit(image: GeneratedImage, width: int, height: int, what: str) -> GeneratedImage:
    """``image`` at exactly ``width`` x ``height``: the WebUI's sides are multiples of
    8, a request's need not be. Only an answer of the same shape is resampled; one of
    another shape (a payload that changed the size) is refused, not distorted."""
    skew = abs(image.width * height - image.height * width)
    if skew > _SLACK * max(image.width, image.height, width, height):
        raise PermanentProviderError(
            f"{what}: the WebUI made {image.width}x{image.height} for {width}x{height}; "
            "does options.payload change the size?"
        )
    return fit(image, width, height)


def _suggestions(caption: Any) -> tuple[str, ...]:
    texts = suggestions(caption) if isinstance(caption, str) else ()
    if not texts:
        raise ProviderError(f"a1111: interrogate: no caption in the answer ({caption!r:.100})")
    return texts
