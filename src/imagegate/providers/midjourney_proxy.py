"""Midjourney through an upstream that speaks the midjourney-proxy protocol
(novicezk/midjourney-proxy, its forks, commercial wrappers): ``POST
/mj/submit/imagine`` with the prompt and its flags, ``POST /mj/submit/action`` with a
button's ``customId`` for a follow-up, ``GET /mj/task/{id}/fetch`` until ``SUCCESS``;
``imageUrl`` is the 2x2 grid, split here into its four pictures. See
docs/providers/midjourney_proxy.md, which also says what automating Midjourney risks.

A job is one upstream task: its id is recorded at once, and a resumed attempt polls
it instead of submitting again. A follow-up (upscale, variation, zoom out, pan) is an
action on the parent's own upstream task, so it works only for a parent that ran
here: the request carries the parent's task id (``parent_provider_job_id``)."""

from __future__ import annotations

import asyncio
import io
import re
from fractions import Fraction
from typing import Any

from PIL import Image

from imagegate.domain.params import MAX_VARIATIONS, STYLES, Mode
from imagegate.imaging.codec import encode
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
    RetryableProviderError,
)
from imagegate.providers.exact_size import exact_size
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
from imagegate.providers.progress import ForwardProgress

DEFAULT_MODELS = ("v7", "v6.1", "niji6")
_MODEL = re.compile(r"^(?:v(?P<v>\d+(?:\.\d+)?)|niji(?P<niji>\d+)?)$")
# Submit return codes (the protocol answers HTTP 200 whatever they say).
OK, NOT_FOUND, VALIDATION, FAILED, EXISTS, QUEUED, QUEUE_FULL, BANNED = 1, 3, 4, 9, 21, 22, 23, 24
_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%")
# failReason wordings that mean a refusal on content grounds (Midjourney's own).
_MODERATION = ("banned", "filter", "moderat", "community guidelines", "not allowed", "sensitive")
_INVALID = ("invalid parameter", "invalid value", "unrecognized parameter")
_TUNING_FLAGS = {"stylize": "--s", "chaos": "--c", "weird": "--w", "quality": "--q"}
_COMMON_RATIOS = tuple(
    Fraction(w, h)
    for a, b in ((1, 1), (4, 3), (3, 2), (16, 9), (21, 9), (5, 4), (2, 1), (7, 4))
    for w, h in ((a, b), (b, a))
)  # fmt: skip
_RATIO_TOLERANCE = 0.015
_ACTIONS = (Action.IMAGINE, Action.UPSCALE, Action.VARIATION, Action.ZOOM_OUT, Action.PAN)


class Options(HttpOptions):
    """``[providers.<name>.options]`` of a midjourney_proxy provider."""


def model_flag(model: str) -> tuple[str, str]:
    """The prompt flag and ``botType`` of a model name: ``v7`` → ``--v 7``, ``niji6``
    → ``--niji 6`` (``niji`` alone: the current Niji)."""
    match = _MODEL.match(model)
    if match is None:
        raise ValueError(model)
    if match["v"]:
        return f"--v {match['v']}", "MID_JOURNEY"
    niji = match["niji"]
    return ("--niji " + niji if niji else "--niji"), "NIJI_JOURNEY"


def aspect_ratio(width: int, height: int) -> str:
    """``--ar`` of a size: the common ratio it rounds from (1456x816 → ``16:9``; sizes
    are snapped to multiples of 8 or 16), else the ratio in small numbers (``10:7``)."""
    exact = Fraction(width, height)
    near = min(_COMMON_RATIOS, key=lambda r: abs(r / exact - 1))
    if abs(near / exact - 1) > _RATIO_TOLERANCE:
        near = exact.limit_denominator(20)
    return f"{near.numerator}:{near.denominator}"


def prompt_for(request: GenerationRequest) -> str:
    """The prompt with the flags Midjourney reads: ``--ar`` from the size, ``--seed``,
    ``--no``, the model's ``--v``/``--niji``, ``--draft``, and the tuning knobs."""
    text = " ".join(request.prompt.split())
    if request.style and request.style != "none":
        text = f"{text}, {request.style} style"
    flags = [f"--ar {aspect_ratio(request.width, request.height)}"]
    if request.seeds:
        flags.append(f"--seed {request.seeds[0] % 2**32}")
    if request.negative_prompt:
        flags.append("--no " + " ".join(request.negative_prompt.replace("--", " ").split()))
    flags.append(model_flag(request.model)[0])
    if request.mode is Mode.DRAFT and request.model.startswith("v7"):
        flags.append("--draft")
    tuning = request.tuning
    for key, flag in _TUNING_FLAGS.items():
        if tuning.get(key) is not None:
            flags.append(f"{flag} {tuning[key]:g}")
    if tuning.get("tile"):
        flags.append("--tile")
    if tuning.get("raw"):
        flags.append("--style raw")
    return " ".join([text, *flags])


def button_prefixes(request: GenerationRequest) -> tuple[str, ...]:
    """The customId beginnings that do ``request``'s action on its parent, best first:
    under a grid the ``U``/``V`` buttons name the picture; under an upscaled picture
    (index 1) the 2x upscalers, vary subtle/strong, zoom and pan."""
    n = request.source_index or 1
    action = request.action
    if action is Action.UPSCALE:
        mode = request.upscale_mode.value if request.upscale_mode else "subtle"
        return (f"MJ::JOB::upsample_v7_2x_{mode}::1::", f"MJ::JOB::upsample_v6_2x_{mode}::1::",
                f"MJ::JOB::upsample::{n}::")  # fmt: skip
    if action is Action.VARIATION:
        subtle = (request.strength or 0.75) < 0.5
        vary = "low_variation" if subtle else "high_variation"
        return f"MJ::JOB::{vary}::1::", f"MJ::JOB::variation::{n}::"
    if action is Action.ZOOM_OUT and request.canvas is not None:
        factor = request.canvas.width / max(1, request.canvas.source.width)
        if abs(factor - 2.0) < 0.05:
            return ("MJ::Outpaint::50::1::",)
        if abs(factor - 1.5) < 0.05:
            return ("MJ::Outpaint::75::1::",)
        return ()
    if action is Action.PAN and request.direction is not None:
        return (f"MJ::JOB::pan_{request.direction.value}::1::",)
    return ()


class MidjourneyProxyProvider:
    """Adapter for a midjourney-proxy upstream."""

    def __init__(self, config: ProviderConfig) -> None:
        models = config.models or DEFAULT_MODELS
        unknown = [m for m in models if _MODEL.match(m) is None]
        if unknown:
            raise ConfigError(
                f"providers.{config.name}: unknown Midjourney model(s) {unknown}; "
                "write v<version> (v7, v6.1) or niji<version> (niji6)"
            )
        if not config.base_url:
            raise ConfigError(
                f"providers.{config.name}: base_url is required (the upstream's root, before /mj)"
            )
        self.name = config.name
        self._models = models
        self._timeout_s = config.timeout_s
        self._interval_s = config.poll_interval_s
        options = Options.of(config.name, config.options)
        headers = {"mj-api-secret": config.api_key} if config.api_key else {}
        self._client = make_client(config, headers, max_connections=options.max_connections)
        # Images are served by Discord's CDN or a relay: they never see the secret.
        self._downloads = make_download_client(config, max_connections=options.max_connections)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._downloads.aclose()

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=self._models,
            # A job is one grid of four.
            max_images=MAX_VARIATIONS,
            modes=(Mode.DRAFT, Mode.STANDARD),
            styles=STYLES,
            # The follow-ups act on the parent's upstream task: only for parents that
            # ran here (Capabilities cannot say so; generate refuses the others).
            actions=_ACTIONS,
            # --seed steers the whole grid, and not exactly: the four pictures are
            # Midjourney's, not one per imagegate seed.
            seeds=False,
            negative_prompt=True,
            tuning=frozenset({*_TUNING_FLAGS, "tile", "raw"}),
        )

    def estimate_credits(self, request: GenerationRequest) -> int:
        return standard_credits(request)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        if request.model not in self._models:
            raise PermanentProviderError(f"{self.name}: model {request.model!r} not configured")
        task_id = correlation.existing
        task = await self._fetch(task_id) if task_id else None
        if task_id is None or task is None:
            task_id = await self._submit(request)
            await correlation.record(task_id)
        task = await self._follow(task_id, ForwardProgress(progress, ceiling=0.99))
        url = task.get("imageUrl")
        if not isinstance(url, str) or not url:
            raise ProviderError(f"{self.name} task {task_id}: SUCCESS without imageUrl",
                                provider_job_id=task_id)  # fmt: skip
        what = f"{self.name} task {task_id}"
        data = await fetch_image(self._downloads, url, what, provider_job_id=task_id)
        images = await asyncio.to_thread(_pictures, data, request, what)
        await progress(1.0)
        return GenerationResult(tuple(images), provider_job_id=task_id)

    async def _submit(self, request: GenerationRequest) -> str:
        if request.action is Action.IMAGINE:
            bot = model_flag(request.model)[1]
            body: dict[str, Any] = {"prompt": prompt_for(request), "botType": bot}
            return await self._post("/mj/submit/imagine", body)
        parent_id = request.parent_provider_job_id
        if not parent_id:
            raise PermanentProviderError(
                f"{self.name}: Midjourney can {request.action} only an image it made itself "
                "(a job that ran on this provider); route this job to another provider"
            )
        parent = await self._fetch(parent_id)
        if parent is None:
            raise PermanentProviderError(
                f"{self.name}: the upstream no longer knows the parent task {parent_id}"
            )
        custom_id = _button(parent, button_prefixes(request))
        if custom_id is None:
            labels = [str(b.get("label") or b.get("customId")) for b in _buttons(parent)]
            raise PermanentProviderError(
                f"{self.name}: the parent task {parent_id} offers no button for "
                f"{request.action} (it has: {', '.join(labels) or 'none'}); Midjourney "
                "zooms, pans and varies subtly only an upscaled image: upscale it first"
            )
        return await self._post("/mj/submit/action", {"taskId": parent_id, "customId": custom_id})

    async def _post(self, path: str, body: dict[str, Any]) -> str:
        """One submission; the new task's id."""
        what = f"{self.name} {path}"
        response = await call(self._client, "POST", path, what, json=body)
        if response.status_code != 200:
            raise error_for(response, what)
        answer = json_body(response, what)
        if not isinstance(answer, dict):
            raise ProviderError(f"{what}: not a submit answer: {answer!r:.200}")
        code, description = answer.get("code"), str(answer.get("description") or "")
        result = answer.get("result")
        task_id = str(result) if isinstance(result, str | int) and result else None
        if code in (OK, QUEUED, EXISTS) and task_id:
            # 22: accepted, waiting for a free slot upstream; 21: that action was
            # already done, and ``result`` is the task that did it.
            return task_id
        detail = f"{what}: code {code} {description}".strip()
        if code == BANNED:
            word = (answer.get("properties") or {}).get("bannedWord")
            raise ModeratedError(f"{detail} (banned word: {word})" if word else detail)
        if code == QUEUE_FULL:
            raise RateLimitedError(detail)
        if code in (NOT_FOUND, VALIDATION):
            raise PermanentProviderError(detail)
        if code == FAILED:
            # The original's "system error" (no free account, Discord down): transient.
            raise RetryableProviderError(detail)
        raise ProviderError(detail)

    async def _fetch(self, task_id: str) -> dict[str, Any] | None:
        """The upstream's Task, or ``None`` when it does not know the id (the original
        answers an empty 200, forks 404). Failing to look is resumable."""
        what = f"{self.name} fetch {task_id}"
        try:
            response = await call(self._client, "GET", f"/mj/task/{task_id}/fetch", what)
            if response.status_code == 404 or (
                response.status_code == 200 and not response.content.strip()
            ):
                return None
            if response.status_code != 200:
                raise error_for(response, what)
            task = json_body(response, what)
            if task is None:
                return None
            if not isinstance(task, dict) or not isinstance(task.get("status"), str):
                raise ProviderError(f"{what}: no Task in {task!r:.200}")
        except ProviderError as error:
            error.provider_job_id, error.resumable = task_id, True
            raise
        return task

    async def _follow(self, task_id: str, progress: ForwardProgress) -> dict[str, Any]:
        what = f"{self.name} task {task_id}"

        async def check() -> dict[str, Any] | None:
            task = await self._fetch(task_id)
            if task is None:
                raise RetryableProviderError(
                    f"{what}: the upstream no longer knows the task", provider_job_id=task_id
                )
            status = task["status"]
            if status == "SUCCESS":
                return task
            if status == "FAILURE":
                raise _failure(str(task.get("failReason") or "no reason given"), what, task_id)
            if status == "CANCEL":
                raise PermanentProviderError(f"{what}: canceled upstream", provider_job_id=task_id)
            if status == "MODAL":
                # The fork's remix/custom-zoom confirmation step, which no action sent
                # here asks for: waiting would only run into the deadline.
                raise PermanentProviderError(
                    f"{what}: the upstream waits for a modal step (is remix mode on?)",
                    provider_job_id=task_id,
                )
            await progress(_fraction(task.get("progress")))
            return None  # running, or a status the protocol may add: poll on

        found: dict[str, Any] = await poll_until(
            check, interval_s=self._interval_s, timeout_s=self._timeout_s, what=what,
            provider_job_id=task_id,
        )  # fmt: skip
        return found


def _failure(reason: str, what: str, task_id: str) -> ProviderError:
    """The taxonomy's reading of a ``FAILURE`` Task's ``failReason``."""
    detail = f"{what}: {reason}"
    lowered = reason.lower()
    if any(word in lowered for word in _MODERATION):
        return ModeratedError(detail, provider_job_id=task_id)
    if any(word in lowered for word in _INVALID):
        return PermanentProviderError(detail, provider_job_id=task_id)
    if "queue" in lowered and "full" in lowered:
        return RateLimitedError(detail, provider_job_id=task_id)
    # Midjourney gives no cause: unclassified, retried a bounded number of times.
    return ProviderError(detail, provider_job_id=task_id)


def _buttons(task: dict[str, Any]) -> list[dict[str, Any]]:
    buttons = task.get("buttons")
    return [b for b in buttons if isinstance(b, dict)] if isinstance(buttons, list) else []


def _button(task: dict[str, Any], prefixes: tuple[str, ...]) -> str | None:
    """The first customId of ``task``'s buttons that starts with one of ``prefixes``
    (tried in order)."""
    ids = [str(b.get("customId") or "") for b in _buttons(task)]
    for prefix in prefixes:
        for custom_id in ids:
            if custom_id.startswith(prefix):
                return custom_id
    return None


def _fraction(progress: Any) -> float:
    """``"NN%"`` as a fraction (anything else: 0)."""
    match = _PERCENT.search(progress) if isinstance(progress, str) else None
    return min(1.0, float(match[1]) / 100) if match else 0.0


def _pictures(data: bytes, request: GenerationRequest, what: str) -> list[GeneratedImage]:
    """The result's pictures at the size asked for: an upscale is one picture; any
    other answer is Midjourney's 2x2 grid, split into its quadrants (the first ones,
    as many as the job has seeds; each reported with the job's seed of that place,
    though Midjourney, not that seed, chose the picture)."""
    first = request.seeds[0] if request.seeds else 0
    grid = decode_image(data, first, what)
    if request.action is Action.UPSCALE:
        return [exact_size(grid, request.width, request.height)]
    with Image.open(io.BytesIO(data)) as opened:
        image = opened.convert("RGB")
    w, h = image.width // 2, image.height // 2
    if w < 1 or h < 1:
        raise ProviderError(f"{what}: a grid of {image.width}x{image.height} is too small")
    pictures = []
    for n, seed in enumerate(request.seeds[:4] or (0,)):
        left, top = (n % 2) * w, (n // 2) * h
        quadrant = image.crop((left, top, left + w, top + h))
        picture = GeneratedImage(encode(quadrant), "image/png", w, h, seed)
        pictures.append(exact_size(picture, request.width, request.height))
    return pictures


def build(config: ProviderConfig) -> Provider:
    """The adapter for a ``type = "midjourney_proxy"`` provider table."""
    return MidjourneyProxyProvider(config)
