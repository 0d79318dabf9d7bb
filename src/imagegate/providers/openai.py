"""OpenAI Images: ``gpt-image-1``, ``dall-e-3`` and ``dall-e-2`` through
``/images/generations`` (imagine), ``/images/edits`` (img2img, variation, blend with
gpt-image-1; zoom out, pan and vary region with a mask, gpt-image-1 and dall-e-2) and
``/images/variations`` (variation, dall-e-2). See docs/providers/openai.md.

The API is synchronous: an image comes back in the answer to the request that paid
for it, so there is no provider job to record or resume. The ``x-request-id`` of each
call is kept as the result's ``provider_job_id`` (what OpenAI support asks for)."""

from __future__ import annotations

import asyncio
import base64
import binascii
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

import httpx
from pydantic import Field

from imagegate.domain.params import STYLES, Mode
from imagegate.imaging.masks import outpaint_inputs, transparent_where_masked
from imagegate.providers.base import (
    Action,
    Capabilities,
    Correlation,
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
    Provider,
    standard_credits,
)
from imagegate.providers.config import ConfigError
from imagegate.providers.errors import (
    ModeratedError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
)
from imagegate.providers.exact_size import exact_size, stretched_png
from imagegate.providers.http import (
    ProviderConfig,
    call,
    decode_image,
    error_for,
    fetch_image,
    json_body,
    make_client,
    make_download_client,
)
from imagegate.providers.options import HttpOptions

DEFAULT_BASE_URL = "https://api.openai.com/v1"
# The error codes OpenAI uses for a refusal on content grounds: dall-e's, gpt-image-1's.
_MODERATION_CODES = {"content_policy_violation", "moderation_blocked"}
# The ids the job row keeps are at most this long (one x-request-id is 36 characters).
_MAX_ID_CHARS = 128
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


@dataclass(frozen=True)
class _Rules:
    """What one model accepts."""

    sizes: tuple[tuple[int, int], ...]
    quality: dict[Mode, str]
    per_call: int  # images one call may return (``n``)
    gpt: bool  # answers in b64_json only; takes output_format, several images, input_fidelity
    actions: frozenset[Action]


# Every action but imagine edits a source through /images/edits, except dall-e-2's
# variation (/images/variations). dall-e-2's edits repaint only where the mask is
# transparent, so it cannot img2img or blend; dall-e-3 edits nothing.
_EDITS = frozenset({Action.ZOOM_OUT, Action.PAN, Action.VARY_REGION})
_MODELS = {
    "gpt-image-1": _Rules(
        ((1024, 1024), (1536, 1024), (1024, 1536)),
        {Mode.DRAFT: "low", Mode.STANDARD: "high"}, per_call=10, gpt=True,
        actions=frozenset({Action.IMAGINE, Action.IMG2IMG, Action.VARIATION, Action.BLEND,
                           *_EDITS}),
    ),
    "dall-e-3": _Rules(
        ((1024, 1024), (1792, 1024), (1024, 1792)),
        {Mode.DRAFT: "standard", Mode.STANDARD: "hd"}, per_call=1, gpt=False,
        actions=frozenset({Action.IMAGINE}),
    ),
    "dall-e-2": _Rules(
        ((256, 256), (512, 512), (1024, 1024)),
        {Mode.DRAFT: "standard", Mode.STANDARD: "standard"}, per_call=10, gpt=False,
        actions=frozenset({Action.IMAGINE, Action.VARIATION, *_EDITS}),
    ),
}  # fmt: skip
# gpt-image-1's edits take up to this many input images (``image[]``).
MAX_EDIT_IMAGES = 16
# Edits want a prompt; a blend may come without one.
_BLEND_PROMPT = "One coherent picture that blends the subjects and styles of these images"
_File = tuple[str, tuple[str, bytes, str]]


def snap_size(sizes: tuple[tuple[int, int], ...], width: int, height: int) -> tuple[int, int]:
    """The allowed size nearest in aspect ratio to ``width`` x ``height``; between
    sizes of the same aspect (dall-e-2's squares), the one nearest in area."""

    def distance(size: tuple[int, int]) -> tuple[float, float]:
        aspect = abs(math.log((size[0] / size[1]) / (width / height)))
        area = abs(math.log((size[0] * size[1]) / (width * height)))
        return round(aspect, 6), area

    return min(sizes, key=distance)


class Options(HttpOptions):
    """``[providers.<name>.options]`` of an OpenAI provider (docs/providers/openai.md)."""

    response_format: Literal["b64_json", "url"] = "b64_json"
    # Quality by mode, over the model's defaults: {"draft": "low", "standard": "medium"}.
    quality: dict[Literal["draft", "standard"], str] = Field(default_factory=dict)


class OpenAIProvider:
    """Adapter for the OpenAI Images API."""

    def __init__(self, config: ProviderConfig) -> None:
        unknown = set(config.models) - set(_MODELS)
        if unknown:
            raise ConfigError(  # stops start-up with this message, not a traceback
                f"providers.{config.name}: unknown OpenAI image model(s) {sorted(unknown)}; "
                f"choose from {sorted(_MODELS)}"
            )
        self.name = config.name
        self._models = config.models or tuple(_MODELS)
        options = Options.of(config.name, config.options)
        self._response_format = options.response_format
        self._quality: dict[str, str] = {str(mode): q for mode, q in options.quality.items()}
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        pool = options.max_connections
        self._client = make_client(config, headers, max_connections=pool)
        # Result URLs live on another host: they must never see the API key.
        self._downloads = make_download_client(config, max_connections=pool)
        self._reads = config.reads

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._downloads.aclose()

    def capabilities(self) -> Capabilities:
        offered = set().union(*(_MODELS[m].actions for m in self._models))
        return Capabilities(
            models=self._models,
            max_images=10,
            modes=(Mode.DRAFT, Mode.STANDARD),
            styles=STYLES,
            actions=tuple(a for a in Action if a in offered),
            seeds=False,
            negative_prompt=False,
            max_pixels=max(w * h for m in self._models for w, h in _MODELS[m].sizes),
        )

    def estimate_credits(self, request: GenerationRequest) -> int:
        return standard_credits(request)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        """One call per ``per_call`` images (dall-e-3: one per image), in sequence, so
        that a refusal does not pay for the calls after it. ``correlation`` goes unused:
        a synchronous call leaves nothing to resume. Every action but imagine returns
        its images at exactly the request's size (OpenAI draws at one of its sizes)."""
        model = self._model_for(request)
        rules = _MODELS[model]
        size = snap_size(rules.sizes, request.width, request.height)
        files = await asyncio.to_thread(_edit_files, request, rules, size)
        images: list[GeneratedImage] = []
        request_ids: list[str] = []
        for start in range(0, len(request.seeds), rules.per_call):
            seeds = request.seeds[start : start + rules.per_call]
            response = await self._submit(request, model, len(seeds), size, files)
            request_id = response.headers.get("x-request-id", "")
            request_ids.append(request_id)
            images.extend(await self._images(response, seeds, request_id))
            await progress(len(images) / len(request.seeds))
        if request.action is not Action.IMAGINE:
            images = await asyncio.to_thread(
                lambda: [exact_size(i, request.width, request.height) for i in images]
            )
        return GenerationResult(tuple(images), provider_job_id=_joined(request_ids))

    def _model_for(self, request: GenerationRequest) -> str:
        """The job's model if it can do the action, else the first configured model
        that can (a variation of a dall-e-3 image is made by gpt-image-1)."""
        if request.model not in self._models:
            raise PermanentProviderError(f"{self.name}: model {request.model!r} not configured")
        able = [m for m in (request.model, *self._models) if request.action in _MODELS[m].actions]
        if not able:
            raise PermanentProviderError(
                f"{self.name}: no configured OpenAI model can {request.action} "
                f"({', '.join(self._models)})"
            )
        return able[0]

    async def _submit(
        self,
        request: GenerationRequest,
        model: str,
        n: int,
        size: tuple[int, int],
        files: list[_File],
    ) -> httpx.Response:
        rules = _MODELS[model]
        fields: dict[str, Any] = {"model": model, "n": n, "size": f"{size[0]}x{size[1]}"}
        if rules.gpt:
            fields["output_format"] = request.output_format.value
        else:
            # dall-e answers PNG only (the runner transcodes it), as a URL or base64.
            fields["response_format"] = self._response_format
        path = "/images/generations"
        if request.action is not Action.IMAGINE:
            path = "/images/variations" if not rules.gpt and request.action is Action.VARIATION \
                else "/images/edits"  # fmt: skip
        if path != "/images/variations":
            fields["prompt"] = _prompt(request)
            fields["quality"] = self._quality.get(request.mode.value, rules.quality[request.mode])
        if rules.gpt and request.action in (Action.IMG2IMG, Action.VARIATION):
            if request.strength is not None and request.strength < 0.5:
                # A small change: ask the model to keep the source's details.
                fields["input_fidelity"] = "high"
        what = f"{self.name} {path.rsplit('/', 1)[-1]}"
        cap = self._reads.inline_images_cap(n)
        if path == "/images/generations":
            response = await call(self._client, "POST", path, what, json=fields, max_bytes=cap)
        else:
            response = await call(
                self._client, "POST", path, what, max_bytes=cap, files=files,
                data={key: str(value) for key, value in fields.items()},
            )  # fmt: skip
        if response.status_code != 200:
            raise _error(response, what)
        return response

    async def _images(
        self, response: httpx.Response, seeds: tuple[int, ...], request_id: str
    ) -> list[GeneratedImage]:
        what = f"{self.name} result"
        body = json_body(response, what)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or len(data) != len(seeds):
            count = len(data) if isinstance(data, list) else "no"
            raise ProviderError(
                f"{what}: asked for {len(seeds)} images, got {count}", provider_job_id=request_id
            )
        images = []
        for item, seed in zip(data, seeds, strict=True):
            raw = await self._image_bytes(item, what, request_id)
            # OpenAI has no seeds: the requested one is kept so the job's images are told apart.
            images.append(decode_image(raw, seed, what))
        return images

    async def _image_bytes(self, item: Any, what: str, request_id: str) -> bytes:
        if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
            try:
                return base64.b64decode(item["b64_json"], validate=True)
            except binascii.Error as error:
                raise ProviderError(
                    f"{what}: bad base64 image", provider_job_id=request_id
                ) from error
        if isinstance(item, dict) and isinstance(item.get("url"), str):
            return await fetch_image(self._downloads, item["url"], what, provider_job_id=request_id)
        raise ProviderError(
            f"{what}: an item with neither b64_json nor url", provider_job_id=request_id
        )


def _prompt(request: GenerationRequest) -> str:
    if request.action is Action.BLEND and not request.prompt.strip():
        return _BLEND_PROMPT
    # OpenAI takes no style parameter that matches imagegate's presets: the prompt says it.
    if request.style and request.style != "none":
        return f"{request.prompt}, {request.style} style"
    return request.prompt


def _edit_files(request: GenerationRequest, rules: _Rules, size: tuple[int, int]) -> list[_File]:
    """The multipart files of an edit or variation: ``image`` (``image[]`` for several)
    and, for a repaint, ``mask``, a PNG of the image's size, transparent where the
    model paints. dall-e-2 takes one square PNG: image and mask are stretched to the
    call's square size (the answer is stretched back)."""
    action = request.action
    if action is Action.IMAGINE:
        return []
    if action is Action.BLEND:
        if not 2 <= len(request.source_images) <= MAX_EDIT_IMAGES:
            raise PermanentProviderError(
                f"openai: a blend takes 2 to {MAX_EDIT_IMAGES} images, "
                f"got {len(request.source_images)}"
            )
        return [("image[]", _file(f"source-{i}", data)) for i, data in
                enumerate(request.source_images, start=1)]  # fmt: skip
    if not request.source_image:
        raise PermanentProviderError(f"openai: {action} needs a source image")
    image, mask = request.source_image, None
    if action in (Action.ZOOM_OUT, Action.PAN):
        if request.canvas is None:
            raise PermanentProviderError(f"openai: {action} needs a canvas")
        # The padded image's transparent border is the area to paint: it is its own mask.
        image, _ = outpaint_inputs(image, request.canvas)
        mask = image
    elif action is Action.VARY_REGION:
        if not request.mask:
            raise PermanentProviderError("openai: vary_region needs a mask")
        mask = transparent_where_masked(image, request.mask)
    if not rules.gpt:
        image = stretched_png(image, *size)
        mask = stretched_png(mask, *size) if mask is not None else None
    files = [("image", _file("source", image))]
    if mask is not None:
        files.append(("mask", ("mask.png", mask, "image/png")))
    return files


def _file(name: str, data: bytes) -> tuple[str, bytes, str]:
    try:
        content_type = decode_image(data, 0, "source image").content_type
    except ProviderError as error:
        raise PermanentProviderError(error.message) from error
    return f"{name}.{content_type.removeprefix('image/')}", data, content_type


def _error(response: httpx.Response, what: str) -> ProviderError:
    """OpenAI's reading of a failed call: its error ``code`` says moderated or out of
    quota before the status does."""
    request_id = response.headers.get("x-request-id")
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    detail = error if isinstance(error, dict) else {}
    code, message = detail.get("code"), detail.get("message")
    if code in _MODERATION_CODES:
        return ModeratedError(f"{what}: {message}", provider_job_id=request_id)
    if code == "insufficient_quota":
        # A 429 that waiting does not cure: the account is out of credit.
        return PermanentProviderError(f"{what}: {message}", provider_job_id=request_id)
    failure = error_for(response, what, provider_job_id=request_id)
    if isinstance(failure, RateLimitedError) and failure.retry_after is None:
        failure.retry_after = duration_s(response.headers.get("x-ratelimit-reset-requests"))
    return failure


def duration_s(value: str | None) -> float | None:
    """OpenAI's ``x-ratelimit-reset-*`` durations (``1s``, ``6m0s``, ``20ms``) in seconds."""
    parts = _DURATION_PART.findall(value or "")
    if not parts:
        return None
    scale = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    return sum(float(number) * scale[unit] for number, unit in parts)


def _joined(ids: list[str]) -> str | None:
    """The ids as one string, as many as fit the job row's column."""
    kept: list[str] = []
    for one in filter(None, ids):
        if len(",".join([*kept, one])) > _MAX_ID_CHARS:
            break
        kept.append(one)
    return ",".join(kept) or None


def build(config: ProviderConfig) -> Provider:
    """The adapter for a ``type = "openai"`` provider table."""
    if not config.base_url:
        config = replace(config, base_url=DEFAULT_BASE_URL)
    return OpenAIProvider(config)
