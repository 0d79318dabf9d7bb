"""Black Forest Labs FLUX: ``POST /{model}`` submits a task, its ``polling_url`` (or
``GET /get_result?id=``) reports it until ``Ready``, and ``result.sample`` is a
delivery URL valid for 10 minutes. The actions: ``flux-pro-1.0-fill`` (vary region),
``flux-pro-1.0-expand`` (zoom out, pan), Kontext (img2img, variation, blend) and the
Redux ``image_prompt`` (variation, --sref). See docs/providers/bfl.md.

One task makes one image, so a job of n images is n tasks: submitted in turn, each id
recorded at once (the job's correlation holds them comma-joined, in seed order), then
followed together. A resumed attempt asks BFL about each recorded id and submits
again only for the ones it no longer knows."""

from __future__ import annotations

import asyncio
import base64
import math
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field

from imagegate.domain.params import MAX_VARIATIONS, STYLES, Mode, OutputFormat
from imagegate.providers import parts
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
    RetryableProviderError,
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
    poll_until,
)
from imagegate.providers.options import HttpOptions
from imagegate.providers.progress import PartsProgress

DEFAULT_BASE_URL = "https://api.bfl.ai/v1"
_MODERATED = {"Request Moderated", "Content Moderated"}
_FAILED = {"Error", "Failed"}
_NOT_FOUND = "Task not found"
_MIN_SIDE, _MAX_SIDE, _SIDE_STEP = 256, 1440, 32
_MIN_RATIO, _MAX_RATIO = Fraction(9, 21), Fraction(21, 9)


@dataclass(frozen=True)
class _Rules:
    # "pixels": width and height; "ratio": aspect_ratio (the model picks the pixels);
    # "source": the size follows the input image (fill; expand adds its padding).
    sizing: str
    # The field that carries the source image (vary, Kontext's edits, --sref).
    image_field: str
    max_pixels: int
    actions: frozenset[Action]


_TEXT = frozenset({Action.IMAGINE, Action.VARIATION})  # variation: the Redux image prompt
_KONTEXT = frozenset({Action.IMAGINE, Action.IMG2IMG, Action.VARIATION, Action.BLEND})
_MODELS = {
    "flux-pro-1.1": _Rules("pixels", "image_prompt", _MAX_SIDE * _MAX_SIDE, _TEXT),
    "flux-dev": _Rules("pixels", "image_prompt", _MAX_SIDE * _MAX_SIDE, _TEXT),
    "flux-pro-1.1-ultra": _Rules("ratio", "image_prompt", 2048 * 2048, _TEXT),
    "flux-kontext-pro": _Rules("ratio", "input_image", 1024 * 1024, _KONTEXT),
    "flux-kontext-max": _Rules("ratio", "input_image", 1024 * 1024, _KONTEXT),
    "flux-pro-1.0-fill": _Rules("source", "image", _MAX_SIDE * _MAX_SIDE,
                                frozenset({Action.VARY_REGION})),
    "flux-pro-1.0-expand": _Rules("source", "image", _MAX_SIDE * _MAX_SIDE,
                                  frozenset({Action.ZOOM_OUT, Action.PAN})),
}  # fmt: skip
# Kontext takes its first image as input_image and up to three more (input_image_2..4).
MAX_KONTEXT_IMAGES = 4
# Expand adds at most this many pixels a side.
MAX_EXPAND = 2048
# Midjourney's --sw runs 0..1000 (default 100); ultra's image_prompt_strength 0..1
# (default 0.1): the one is the other over a thousand.
_SW_SCALE = 1000


@dataclass(frozen=True)
class _Task:
    id: str
    polling_url: str


def snap_pixels(width: int, height: int) -> tuple[int, int]:
    """Width and height as FLUX takes them: scaled (aspect kept) into 256..1440, then
    each rounded to the nearest multiple of 32."""
    scale = min(1.0, _MAX_SIDE / max(width, height))
    scale = max(scale, _MIN_SIDE / min(width, height))

    def side(value: int) -> int:
        # Halves round up (round() would round them to even: 720 to 704, not 736).
        snapped = math.floor(value * scale / _SIDE_STEP + 0.5) * _SIDE_STEP
        return min(_MAX_SIDE, max(_MIN_SIDE, snapped))

    return side(width), side(height)


def aspect_ratio(width: int, height: int) -> str:
    """``W:H`` in small numbers, within the 21:9..9:21 that ultra and Kontext accept."""
    ratio = min(_MAX_RATIO, max(_MIN_RATIO, Fraction(width, height)))
    near = ratio.limit_denominator(21)
    if not _MIN_RATIO <= near <= _MAX_RATIO:
        near = ratio
    return f"{near.numerator}:{near.denominator}"


class Options(HttpOptions):
    """``[providers.<name>.options]`` of a BFL provider (docs/providers/bfl.md)."""

    safety_tolerance: int = Field(default=2, ge=0, le=6)  # 0 strictest .. 6


class BFLProvider:
    """Adapter for the Black Forest Labs API."""

    def __init__(self, config: ProviderConfig) -> None:
        unknown = set(config.models) - set(_MODELS)
        if unknown:
            raise ConfigError(  # stops start-up with this message, not a traceback
                f"providers.{config.name}: unknown FLUX model(s) {sorted(unknown)}; "
                f"choose from {sorted(_MODELS)}"
            )
        self.name = config.name
        self._models = config.models or tuple(_MODELS)
        self._timeout_s = config.timeout_s
        self._interval_s = config.poll_interval_s
        options = Options.of(config.name, config.options)
        self._safety_tolerance = options.safety_tolerance
        self._host = urlsplit(config.base_url or "").hostname
        headers = {"x-key": config.api_key} if config.api_key else {}
        self._client = make_client(config, headers, max_connections=options.max_connections)
        # Delivery URLs live on another host: they must never see the API key.
        self._downloads = make_download_client(config, max_connections=options.max_connections)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._downloads.aclose()

    def capabilities(self) -> Capabilities:
        offered = set().union(*(_MODELS[m].actions for m in self._models))
        return Capabilities(
            models=self._models,
            # One task per image; imagegate's own cap on variations bounds a job.
            max_images=MAX_VARIATIONS,
            modes=(Mode.DRAFT, Mode.STANDARD),
            styles=STYLES,
            actions=tuple(a for a in Action if a in offered),
            seeds=True,
            negative_prompt=False,
            max_pixels=max(_MODELS[m].max_pixels for m in self._models),
            style_reference=any(_MODELS[m].image_field == "image_prompt" for m in self._models),
        )

    def estimate_credits(self, request: GenerationRequest) -> int:
        return standard_credits(request)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        model = self._model_for(request)
        template = await asyncio.to_thread(_body, request, model, self._safety_tolerance)
        known = parts.split(correlation.existing)
        recorded = correlation.existing
        tasks: list[_Task] = []
        for index, seed in enumerate(request.seeds):
            task = await self._find(known[index]) if index < len(known) else None
            if task is None:
                body = {**template, "seed": seed}
                task = await self._submit(model, body, resumable=bool(recorded))
            tasks.append(task)
            # The ids not yet looked at stay recorded: a crash now must not forget them.
            ids = parts.joined([t.id for t in tasks] + known[len(tasks) :])
            if ids != recorded:
                await correlation.record(ids)
                recorded = ids
        tracker = PartsProgress(progress, len(tasks))
        images = await parts.gather(
            self._follow(task, seed, index, tracker)
            for index, (task, seed) in enumerate(zip(tasks, request.seeds, strict=True))
        )
        if request.action is not Action.IMAGINE:
            # Kontext draws about a megapixel, fill and expand snap to their own grid.
            images = await asyncio.to_thread(
                lambda: [exact_size(i, request.width, request.height) for i in images]
            )
        return GenerationResult(tuple(images), provider_job_id=parts.joined([t.id for t in tasks]))

    def _model_for(self, request: GenerationRequest) -> str:
        """The job's model if it can do the action, else the first configured model
        that can (a region repaint of a flux-pro-1.1 image goes to flux-pro-1.0-fill)."""
        if request.model not in self._models:
            raise PermanentProviderError(f"{self.name}: model {request.model!r} not configured")
        able = [m for m in (request.model, *self._models) if request.action in _MODELS[m].actions]
        if not able:
            raise PermanentProviderError(
                f"{self.name}: no configured FLUX model can {request.action} "
                f"({', '.join(self._models)})"
            )
        return able[0]

    async def _submit(self, model: str, body: dict[str, Any], *, resumable: bool) -> _Task:
        """One task. ``resumable``: tasks are already recorded for this job, so a refused
        submission must leave them to the next attempt rather than have it start over."""
        what = f"{self.name} submit {model}"
        try:
            response = await call(self._client, "POST", f"/{model}", what, json=body)
            if response.status_code != 200:
                raise error_for(response, what)
            answer = json_body(response, what)
            task_id = answer.get("id") if isinstance(answer, dict) else None
            if not isinstance(task_id, str) or not task_id:
                raise ProviderError(f"{what}: no task id in {answer!r:.200}")
        except ProviderError as error:
            error.resumable = error.resumable or resumable
            raise
        polling_url = answer.get("polling_url")
        if not isinstance(polling_url, str) or not self._trusted(polling_url):
            polling_url = f"/get_result?id={task_id}"
        return _Task(task_id, polling_url)

    def _trusted(self, url: str) -> bool:
        """Whether ``url`` may be sent the key: BFL's own hosts (its regional polling
        hosts are ``api.<region>.bfl.ai``) or the configured one."""
        host = urlsplit(url).hostname or ""
        return host == self._host or host == "bfl.ai" or host.endswith(".bfl.ai")

    async def _find(self, task_id: str) -> _Task | None:
        """The recorded task, if BFL still knows it; ``None`` means submit anew."""
        task = _Task(task_id, f"/get_result?id={task_id}")
        answer = await self._poll(task)
        return None if answer.get("status") == _NOT_FOUND else task

    async def _poll(self, task: _Task) -> dict[str, Any]:
        """One look at a task. Failing to look is resumable: the task lives on."""
        what = f"{self.name} poll {task.id}"
        try:
            response = await call(self._client, "GET", task.polling_url, what)
            if response.status_code == 404:
                return {"status": _NOT_FOUND}
            if response.status_code != 200:
                raise error_for(response, what)
            answer = json_body(response, what)
            if not isinstance(answer, dict) or not isinstance(answer.get("status"), str):
                raise ProviderError(f"{what}: no status in {answer!r:.200}")
        except ProviderError as error:
            error.provider_job_id, error.resumable = task.id, True
            raise
        return answer

    async def _follow(
        self, task: _Task, seed: int, index: int, tracker: PartsProgress
    ) -> GeneratedImage:
        what = f"{self.name} task {task.id}"

        async def check() -> dict[str, Any] | None:
            answer = await self._poll(task)
            status = answer["status"]
            if status == "Ready":
                return answer
            _raise_for(status, answer, what, task.id)
            await tracker.update(index, _fraction(answer.get("progress")))
            return None

        answer = await poll_until(
            check, interval_s=self._interval_s, timeout_s=self._timeout_s, what=what,
            provider_job_id=task.id,
        )  # fmt: skip
        result = answer.get("result")
        sample = result.get("sample") if isinstance(result, dict) else None
        if not isinstance(sample, str):
            raise ProviderError(f"{what}: Ready without result.sample", provider_job_id=task.id)
        data = await fetch_image(self._downloads, sample, what, provider_job_id=task.id)
        image = decode_image(data, seed, what)
        await tracker.update(index, 1.0)
        return image


def _raise_for(status: str, answer: dict[str, Any], what: str, task_id: str) -> None:
    """The error a finished-but-not-Ready status means; nothing for one still running."""
    details = answer.get("details")
    if status in _MODERATED:
        raise ModeratedError(f"{what}: {status} {details or ''}".strip(), provider_job_id=task_id)
    if status in _FAILED:
        # BFL documents no cause for Error: unclassified, retried a bounded number of times.
        raise ProviderError(f"{what}: {status} {details or ''}".strip(), provider_job_id=task_id)
    if status == _NOT_FOUND:
        raise RetryableProviderError(
            f"{what}: BFL no longer knows the task", provider_job_id=task_id
        )
    # Pending, or a status BFL may add later: keep polling until the deadline.


def _body(request: GenerationRequest, model: str, tolerance: int) -> dict[str, Any]:
    """The task's body, but its seed: the same for every image of the job."""
    rules = _MODELS[model]
    # FLUX answers jpeg or png; webp is asked as png (lossless) and transcoded by the runner.
    fmt = "jpeg" if request.output_format is OutputFormat.JPEG else "png"
    body: dict[str, Any] = {
        "prompt": _prompt(request), "output_format": fmt, "safety_tolerance": tolerance,
    }  # fmt: skip
    if rules.sizing == "pixels":
        body["width"], body["height"] = snap_pixels(request.width, request.height)
    elif rules.sizing == "ratio":
        body["aspect_ratio"] = aspect_ratio(request.width, request.height)
    action = request.action
    if action is Action.BLEND:
        return body | _references(request.source_images)
    if action is Action.IMAGINE:
        if request.style_image and rules.image_field == "image_prompt":
            # --sref: the Redux image prompt; ultra weighs it by --sw.
            body["image_prompt"] = _b64(request.style_image)
            if model == "flux-pro-1.1-ultra" and request.style_weight is not None:
                body["image_prompt_strength"] = min(1.0, request.style_weight / _SW_SCALE)
        return body
    source = request.source_image
    if not source:
        raise PermanentProviderError(f"bfl: {action} needs a source image")
    if action is Action.VARY_REGION:
        if not request.mask:
            raise PermanentProviderError("bfl: vary_region needs a mask")
        return body | {"image": _b64(source), "mask": _b64(request.mask)}
    if action in (Action.ZOOM_OUT, Action.PAN):
        return body | _expand(source, request)
    body[rules.image_field] = _b64(source)
    if model == "flux-pro-1.1-ultra" and request.strength is not None:
        # Ultra blends toward the image prompt by this much; strength says how far to move.
        body["image_prompt_strength"] = round(1.0 - request.strength, 3)
    return body


def _references(images: tuple[bytes, ...]) -> dict[str, str]:
    """A blend's images as Kontext's input_image, input_image_2 … input_image_4."""
    if not 2 <= len(images) <= MAX_KONTEXT_IMAGES:
        raise PermanentProviderError(
            f"bfl: Kontext blends 2 to {MAX_KONTEXT_IMAGES} images, got {len(images)}"
        )
    names = ["input_image", *(f"input_image_{n}" for n in range(2, MAX_KONTEXT_IMAGES + 1))]
    return {name: _b64(data) for name, data in zip(names, images, strict=False)}


def _expand(source: bytes, request: GenerationRequest) -> dict[str, Any]:
    """Expand's image (the source at its box's size) and the pixels to add each side."""
    canvas = request.canvas
    if canvas is None:
        raise PermanentProviderError(f"bfl: {request.action} needs a canvas")
    left, top, right, bottom = canvas.padding()
    if max(left, top, right, bottom) > MAX_EXPAND:
        raise PermanentProviderError(f"bfl: expand adds at most {MAX_EXPAND} pixels a side")
    box = canvas.source
    image = stretched_png(source, box.width, box.height, "RGB")
    return {"image": _b64(image), "left": left, "top": top, "right": right, "bottom": bottom}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _prompt(request: GenerationRequest) -> str:
    # FLUX has no style parameter: the prompt carries imagegate's preset.
    if request.style and request.style != "none":
        return f"{request.prompt}, {request.style} style"
    return request.prompt


def _fraction(progress: Any) -> float:
    """BFL's ``progress`` (its unit is not documented: a fraction or a percentage)."""
    if not isinstance(progress, int | float) or isinstance(progress, bool) or progress < 0:
        return 0.0
    value = float(progress) / 100 if progress > 1 else float(progress)
    return 0.0 if math.isnan(value) else min(value, 1.0)


def build(config: ProviderConfig) -> Provider:
    """The adapter for a ``type = "bfl"`` provider table."""
    if not config.base_url:
        config = replace(config, base_url=DEFAULT_BASE_URL)
    return BFLProvider(config)
