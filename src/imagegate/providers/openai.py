"""OpenAI Images: ``gpt-image-1``, ``dall-e-3`` and ``dall-e-2`` through
``/images/generations``, ``/images/edits`` (vary, gpt-image-1) and
``/images/variations`` (vary, dall-e-2). See docs/providers/openai.md.

The API is synchronous: an image comes back in the answer to the request that paid
for it, so there is no provider job to record or resume. The ``x-request-id`` of each
call is kept as the result's ``provider_job_id`` (what OpenAI support asks for)."""

from __future__ import annotations

import base64
import binascii
import io
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

import httpx
from PIL import Image
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
    gpt: bool  # answers in b64_json only; takes output_format
    vary: str | None  # the endpoint that makes variations, if any


_MODELS = {
    "gpt-image-1": _Rules(
        ((1024, 1024), (1536, 1024), (1024, 1536)),
        {Mode.DRAFT: "low", Mode.STANDARD: "high"}, per_call=10, gpt=True, vary="/images/edits",
    ),
    "dall-e-3": _Rules(
        ((1024, 1024), (1792, 1024), (1024, 1792)),
        {Mode.DRAFT: "standard", Mode.STANDARD: "hd"}, per_call=1, gpt=False, vary=None,
    ),
    "dall-e-2": _Rules(
        ((256, 256), (512, 512), (1024, 1024)),
        {Mode.DRAFT: "standard", Mode.STANDARD: "standard"}, per_call=10, gpt=False,
        vary="/images/variations",
    ),
}  # fmt: skip


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
        can_vary = any(_MODELS[m].vary for m in self._models)
        return Capabilities(
            models=self._models,
            max_images=10,
            modes=(Mode.DRAFT, Mode.STANDARD),
            styles=STYLES,
            actions=(Action.IMAGINE, Action.VARIATION) if can_vary else (Action.IMAGINE,),
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
        a synchronous call leaves nothing to resume."""
        rules = self._rules(request)
        size = snap_size(rules.sizes, request.width, request.height)
        images: list[GeneratedImage] = []
        request_ids: list[str] = []
        for start in range(0, len(request.seeds), rules.per_call):
            seeds = request.seeds[start : start + rules.per_call]
            response = await self._submit(request, rules, len(seeds), size)
            request_id = response.headers.get("x-request-id", "")
            request_ids.append(request_id)
            images.extend(await self._images(response, seeds, request_id))
            await progress(len(images) / len(request.seeds))
        return GenerationResult(tuple(images), provider_job_id=_joined(request_ids))

    def _rules(self, request: GenerationRequest) -> _Rules:
        if request.model not in self._models:
            raise PermanentProviderError(f"{self.name}: model {request.model!r} not configured")
        rules = _MODELS[request.model]
        if request.action is Action.UPSCALE:
            raise PermanentProviderError(f"{self.name}: OpenAI Images cannot upscale")
        if request.action is Action.VARIATION and (rules.vary is None or not request.source_image):
            raise PermanentProviderError(
                f"{self.name}: {request.model} cannot vary an image"
                if rules.vary is None
                else f"{self.name}: vary needs a source image"
            )
        return rules

    async def _submit(
        self, request: GenerationRequest, rules: _Rules, n: int, size: tuple[int, int]
    ) -> httpx.Response:
        fields: dict[str, Any] = {"model": request.model, "n": n, "size": f"{size[0]}x{size[1]}"}
        if rules.gpt:
            fields["output_format"] = request.output_format.value
        else:
            # dall-e answers PNG only (the runner transcodes it), as a URL or base64.
            fields["response_format"] = self._response_format
        if request.action is Action.VARIATION and rules.vary is not None:
            return await self._vary(request, rules, rules.vary, fields, size)
        fields["prompt"] = _prompt(request)
        fields["quality"] = self._quality.get(request.mode.value, rules.quality[request.mode])
        what = f"{self.name} generations"
        response = await call(
            self._client, "POST", "/images/generations", what, json=fields,
            max_bytes=self._reads.inline_images_cap(len(request.seeds)),
        )  # fmt: skip
        if response.status_code != 200:
            raise _error(response, what)
        return response

    async def _vary(
        self,
        request: GenerationRequest,
        rules: _Rules,
        path: str,
        fields: dict[str, Any],
        size: tuple[int, int],
    ) -> httpx.Response:
        """gpt-image-1 edits the source with the prompt; dall-e-2's variations take no
        prompt and a square PNG, which the source is cropped and converted to."""
        assert request.source_image is not None
        source, content_type = request.source_image, _content_type(request.source_image)
        if rules.gpt:
            fields["prompt"] = _prompt(request)
            fields["quality"] = self._quality.get(request.mode.value, rules.quality[request.mode])
            if request.strength is not None and request.strength < 0.5:
                # A small variation: ask the model to keep the source's details.
                fields["input_fidelity"] = "high"
        else:
            source, content_type = _square_png(source, size[0]), "image/png"
        what = f"{self.name} {path.rsplit('/', 1)[-1]}"
        extension = content_type.removeprefix("image/")
        response = await call(
            self._client, "POST", path, what,
            data={key: str(value) for key, value in fields.items()},
            files={"image": (f"source.{extension}", source, content_type)},
            max_bytes=self._reads.inline_images_cap(len(request.seeds)),
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
    # OpenAI takes no style parameter that matches imagegate's presets: the prompt says it.
    if request.style and request.style != "none":
        return f"{request.prompt}, {request.style} style"
    return request.prompt


def _content_type(data: bytes) -> str:
    try:
        return decode_image(data, 0, "source image").content_type
    except ProviderError as error:
        raise PermanentProviderError(error.message) from error


def _square_png(data: bytes, side: int) -> bytes:
    """The centre square of an image as a PNG of ``side`` pixels (dall-e-2's input)."""
    with Image.open(io.BytesIO(data)) as image:
        edge = min(image.size)
        left, top = (image.width - edge) // 2, (image.height - edge) // 2
        square = image.convert("RGBA").crop((left, top, left + edge, top + edge))
        out = io.BytesIO()
        square.resize((side, side)).save(out, format="PNG")
        return out.getvalue()


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
