"""fal.ai adapter: the queue API (``https://queue.fal.run``).

One submission per job: ``POST /{model_id}`` with the whole batch (``num_images``, one
``seed``). The request id is recorded at once; then the request's status is polled
under the model's app (``/{owner}/{app}/requests/{id}/status``), its result fetched,
and the image URLs downloaded. A later attempt that finds the id resumes it; one that
fal no longer knows, or whose result is gone, is submitted anew.

The workflow actions run a model id each (``options.models``; the inputs of each kind
of model are in :mod:`fal_inputs`); their images are fitted to the request's exact
size, and a describe returns texts. See docs/providers/fal.md."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Literal

import httpx
from pydantic import Field

from imagegate.domain.actions import UpscaleMode
from imagegate.domain.params import MAX_VARIATIONS, STYLES, Mode, OutputFormat
from imagegate.observability.logging import get_logger
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
from imagegate.providers.errors import ModeratedError, PermanentProviderError, ProviderError
from imagegate.providers.fal_inputs import (
    CREATIVE_UPSCALE_MODEL,
    DESCRIBE_MODEL,
    FILL_MODEL,
    IMG2IMG_MODEL,
    UPSCALE_MODEL,
    Kind,
    action_body,
    kind_of,
    output_items,
    texts_from,
)
from imagegate.providers.fitting import fit
from imagegate.providers.http import (
    ProviderConfig,
    ResultExpiredError,
    call,
    decode_image,
    error_for,
    fetch_image,
    json_body,
    make_client,
    make_download_client,
    poll_until,
)
from imagegate.providers.options import AdapterOptions, HttpOptions
from imagegate.providers.progress import ForwardProgress

log = get_logger("imagegate.providers.fal")

DEFAULT_BASE_URL = "https://queue.fal.run"
DEFAULT_MODELS = ("fal-ai/flux/dev", "fal-ai/flux/schnell", "fal-ai/fast-sdxl")
# Ids under these namespaces carry one more segment before the app: workflows/owner/app.
_NAMESPACES = ("workflows", "comfy")
# FLUX works on 16-pixel latent patches (and 16 is a multiple of SDXL's 8).
_SIDE_STEP, _MIN_SIDE, _MAX_SIDE = 16, 256, 4096
_STEP = re.compile(r"(\d+)/(\d+)")
# Progress milestones: submitted, queued, running (scaled by the runner's own step
# count), completed, and the downloads that fill the rest.
_SUBMITTED, _RUNNING, _COMPLETED = 0.05, 0.1, 0.9


@dataclass(frozen=True)
class ModelRules:
    """What a fal model's input schema accepts."""

    max_images: int
    format_field: str
    negative_prompt: bool


FLUX = ModelRules(max_images=4, format_field="output_format", negative_prompt=False)
SDXL = ModelRules(max_images=8, format_field="format", negative_prompt=True)
_SDXL_APPS = ("fal-ai/fast-sdxl", "fal-ai/fast-lightning-sdxl", "fal-ai/fast-fooocus-sdxl")


def rules_for(model_id: str) -> ModelRules:
    """The SDXL apps take ``format`` and a negative prompt; FLUX and the rest of fal's
    text-to-image models follow FLUX's schema (``output_format``, no negative)."""
    return SDXL if model_id.startswith(_SDXL_APPS) else FLUX


def app_root(model_id: str) -> str:
    """Where a model's requests live: ``fal-ai/flux/dev`` → ``fal-ai/flux``."""
    parts = model_id.strip("/").split("/")
    size = 3 if parts[0] in _NAMESPACES else 2
    if len(parts) < size or not all(parts[:size]):
        raise PermanentProviderError(f"fal: {model_id!r} is not a model id like owner/app[/path]")
    return "/".join(parts[:size])


def snap_side(value: int) -> int:
    """A side fal's models take: the nearest multiple of 16, within 256..4096."""
    return min(_MAX_SIDE, max(_MIN_SIDE, round(value / _SIDE_STEP) * _SIDE_STEP))


class _Unknown(Exception):
    """fal does not know the request (404 on its status): only a new submission helps."""


class ActionModels(AdapterOptions):
    """``options.models``: the model id each workflow action runs on; ``""`` turns
    the action off."""

    img2img: str = IMG2IMG_MODEL
    variation: str = IMG2IMG_MODEL
    upscale: str = UPSCALE_MODEL
    upscale_creative: str = CREATIVE_UPSCALE_MODEL
    vary_region: str = FILL_MODEL
    zoom_out: str = FILL_MODEL
    pan: str = FILL_MODEL
    describe: str = DESCRIBE_MODEL


class Options(HttpOptions):
    """``[providers.<name>.options]`` of a fal provider (docs/providers/fal.md)."""

    safety_checker: bool = True  # enable_safety_checker
    priority: Literal["normal", "low"] | None = None  # the X-Fal-Queue-Priority header
    models: ActionModels = Field(default_factory=ActionModels)


class FalProvider:
    """Translates imagegate requests to fal queue requests and back."""

    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self.config = config
        self.models = config.models or DEFAULT_MODELS
        headers = {"Authorization": f"Key {config.api_key}"} if config.api_key else {}
        options = Options.of(config.name, config.options)
        if options.priority is not None:
            headers["X-Fal-Queue-Priority"] = options.priority
        self._safety_checker = options.safety_checker
        chosen = options.models
        self._action_models = {
            action: model
            for action, model in (
                (Action.IMG2IMG, chosen.img2img), (Action.VARIATION, chosen.variation),
                (Action.UPSCALE, chosen.upscale), (Action.ZOOM_OUT, chosen.zoom_out),
                (Action.PAN, chosen.pan), (Action.VARY_REGION, chosen.vary_region),
                (Action.DESCRIBE, chosen.describe),
            )
            if model
        }  # fmt: skip
        self._creative_upscaler = chosen.upscale_creative or None
        for model in (*self._action_models.values(), *self.models):
            app_root(model)  # a malformed id stops start-up
        pool = options.max_connections
        self._client = make_client(
            replace(config, base_url=config.base_url or DEFAULT_BASE_URL),
            headers,
            max_connections=pool,
        )
        # Result images live on fal's CDN: fetched without our key, which stays with fal.
        self._media = make_download_client(
            replace(config, base_url=config.base_url or DEFAULT_BASE_URL), max_connections=pool
        )

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._media.aclose()

    def capabilities(self) -> Capabilities:
        rules = [rules_for(m) for m in self.models]
        return Capabilities(
            models=tuple(self.models),
            max_images=min(MAX_VARIATIONS, max(r.max_images for r in rules)),
            modes=(Mode.DRAFT, Mode.STANDARD),
            styles=STYLES,  # fal's models have no presets: the style joins the prompt
            actions=(Action.IMAGINE, *self._action_models),
            seeds=True,
            negative_prompt=any(r.negative_prompt for r in rules),
        )

    def estimate_credits(self, request: GenerationRequest) -> int:
        return standard_credits(request)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        model = self._model_for(request)
        body = self._input(request, model)
        report = ForwardProgress(progress)
        existing = correlation.existing
        if existing:
            try:
                return await self._collect(existing, request, model, report)
            except (_Unknown, ResultExpiredError) as gone:
                log.info("fal.resume_gone", provider_job_id=existing, reason=str(gone))
        request_id = await self._submit(model, body)
        await correlation.record(request_id)
        await report(_SUBMITTED)
        try:
            return await self._collect(request_id, request, model, report)
        except _Unknown as lost:
            raise ProviderError(str(lost), provider_job_id=request_id) from lost

    def _model_for(self, request: GenerationRequest) -> str:
        """The job's model for an imagine, the action's model otherwise; an action
        with no model configured is refused before anything is sent."""
        if request.action is Action.IMAGINE:
            return request.model
        model = self._action_models.get(request.action)
        if model is None:
            raise PermanentProviderError(
                f"fal: no model is configured for {request.action} "
                f"(options.models.{request.action})"
            )
        if request.action is Action.UPSCALE and request.upscale_mode is UpscaleMode.CREATIVE:
            return self._creative_upscaler or model
        return model

    async def cancel(self, provider_job_id: str, model: str | None = None) -> bool:
        """Ask fal to cancel a request (of ``model``, default the first configured):
        True when cancellation was requested, False when the request had already
        completed or fal does not know it. The runner calls it for a job canceled while
        its request runs (providers.base.Cancellable)."""
        root = app_root(model or self.models[0])
        what = f"fal cancel {provider_job_id}"
        url = f"/{root}/requests/{provider_job_id}/cancel"
        response = await call(self._client, "PUT", url, what, provider_job_id=provider_job_id)
        if response.status_code == 202:
            return True
        if response.status_code in (400, 404) and _field(response, "status") in (
            "ALREADY_COMPLETED",
            "NOT_FOUND",
        ):
            return False
        raise error_for(response, what, provider_job_id=provider_job_id)

    def _input(self, request: GenerationRequest, model: str) -> dict[str, Any]:
        """The model's input for the whole batch: fal seeds the batch, not each image."""
        if request.action is not Action.IMAGINE:
            return action_body(
                request, kind_of(model, request.action), _styled(request), self._safety_checker
            )
        rules = rules_for(request.model)
        if not 1 <= len(request.seeds) <= rules.max_images:
            raise PermanentProviderError(
                f"fal: {request.model} makes 1 to {rules.max_images} images per request"
            )
        # fal encodes JPEG and PNG only; a WebP request gets PNG.
        fmt = request.output_format
        if fmt is OutputFormat.WEBP:
            fmt = OutputFormat.PNG
        body: dict[str, Any] = {
            "prompt": _styled(request),
            "image_size": {"width": snap_side(request.width), "height": snap_side(request.height)},
            "num_images": len(request.seeds),
            "seed": request.seeds[0],
            rules.format_field: fmt.value,
            "enable_safety_checker": self._safety_checker,
        }
        if request.negative_prompt and rules.negative_prompt:
            body["negative_prompt"] = request.negative_prompt
        return body

    async def _submit(self, model: str, body: dict[str, Any]) -> str:
        app_root(model)  # a malformed id fails here, before anything is paid for
        what = f"fal submit {model}"
        response = await call(self._client, "POST", f"/{model}", what, json=body)
        if response.status_code not in (200, 201, 202):
            raise _failure(response, what)
        request_id = _field(response, "request_id", what)
        if not isinstance(request_id, str) or not request_id:
            raise ProviderError(f"{what}: no request_id in the answer: {response.text[:200]!r}")
        return request_id

    async def _collect(
        self, request_id: str, request: GenerationRequest, model: str, report: ForwardProgress
    ) -> GenerationResult:
        root = app_root(model)
        await self._wait(root, request_id, report)
        result = await self._result(root, request_id)
        if request.action is Action.DESCRIBE:
            await report(1.0)
            return GenerationResult(
                (), provider_job_id=request_id, texts=texts_from(result, request_id)
            )
        kind: Kind | None = (
            None if request.action is Action.IMAGINE else kind_of(model, request.action)
        )
        images = await self._download(result, request, request_id, report, kind)
        if kind is not None:
            images = tuple(fit(image, request.width, request.height) for image in images)
        return GenerationResult(images, provider_job_id=request_id)

    async def _wait(self, root: str, request_id: str, report: ForwardProgress) -> None:
        """Poll the status until ``COMPLETED``, reporting progress on the way."""
        what = f"fal status {request_id}"
        url = f"/{root}/requests/{request_id}/status"

        async def check() -> bool | None:
            try:
                response = await call(self._client, "GET", url, what, params={"logs": "1"})
                if response.status_code == 404:
                    raise _Unknown(f"{what}: fal does not know this request")
                if response.status_code not in (200, 202):
                    raise error_for(response, what, provider_job_id=request_id)
                body = json_body(response, what)
            except ProviderError as lost:
                _resumable(lost, request_id)
                raise
            state = body.get("status") if isinstance(body, dict) else None
            if state == "COMPLETED":
                return True
            if state == "IN_QUEUE":
                await report(_SUBMITTED)
            elif state == "IN_PROGRESS":
                await report(_RUNNING + (_COMPLETED - _RUNNING) * _log_fraction(body))
            else:
                raise ProviderError(
                    f"{what}: unexpected status {state!r}",
                    provider_job_id=request_id,
                    resumable=True,
                )
            return None

        await poll_until(
            check,
            interval_s=self.config.poll_interval_s,
            timeout_s=self.config.timeout_s,
            what=what,
            provider_job_id=request_id,
        )
        await report(_COMPLETED)

    async def _result(self, root: str, request_id: str) -> dict[str, Any]:
        what = f"fal result {request_id}"
        url = f"/{root}/requests/{request_id}"
        response = await call(self._client, "GET", url, what, provider_job_id=request_id)
        if response.status_code == 404:
            raise ResultExpiredError(f"{what}: the result is gone", provider_job_id=request_id)
        if response.status_code != 200:
            # The request ran and failed: its result is the model's error, for good.
            raise _failure(response, what, request_id)
        body = json_body(response, what)
        if not isinstance(body, dict):
            raise ProviderError(f"{what}: unexpected body {str(body)[:200]!r}")
        return body

    async def _download(
        self,
        result: dict[str, Any],
        request: GenerationRequest,
        request_id: str,
        report: ForwardProgress,
        kind: Kind | None = None,
    ) -> tuple[GeneratedImage, ...]:
        what = f"fal result {request_id}"
        items = result.get("images") if kind is None else output_items(result, kind)
        wanted = 1 if kind in ("esrgan", "clarity") else len(request.seeds)
        if not isinstance(items, list) or len(items) < wanted:
            raise ProviderError(f"{what}: expected {wanted} images, got {str(items)[:200]!r}")
        flags = result.get("has_nsfw_concepts") or []
        flagged = sum(1 for flag in flags if flag is True)
        if flagged:
            # The safety checker blacks out what it flags: there is no image to return.
            raise ModeratedError(
                f"{what}: fal's safety checker flagged {flagged} of {wanted} images",
                provider_job_id=request_id,
            )
        images = []
        for index, (item, seed) in enumerate(zip(items, request.seeds, strict=False)):
            url = item.get("url") if isinstance(item, dict) else None
            if not isinstance(url, str):
                raise ProviderError(f"{what}: image {index} has no url")
            data = await fetch_image(self._media, url, what, provider_job_id=request_id)
            images.append(decode_image(data, seed, what))
            await report(_COMPLETED + (1 - _COMPLETED) * (index + 1) / wanted)
        return tuple(images)


def _styled(request: GenerationRequest) -> str:
    """fal's models have no presets: a style joins the prompt."""
    if request.style in ("", "none"):
        return request.prompt
    return f"{request.prompt}, {request.style} style"


def _log_fraction(body: dict[str, Any]) -> float:
    """How far the runner is, from the last ``step/steps`` its logs printed (diffusion
    runners print a tqdm bar); 0 when the logs say nothing countable."""
    logs = body.get("logs")
    if not isinstance(logs, list):
        return 0.0
    for entry in reversed(logs):
        message = entry.get("message", "") if isinstance(entry, dict) else ""
        match = _STEP.search(str(message))
        if match and int(match.group(2)) > 0:
            return min(1.0, int(match.group(1)) / int(match.group(2)))
    return 0.0


def _field(response: httpx.Response, name: str, what: str | None = None) -> Any:
    try:
        body = response.json()
    except ValueError as error:
        if what is None:
            return None
        raise ProviderError(f"{what}: malformed JSON body: {response.text[:200]!r}") from error
    return body.get(name) if isinstance(body, dict) else None


def _failure(response: httpx.Response, what: str, request_id: str | None = None) -> ProviderError:
    """fal's errors: a model's ``detail`` list whose ``type`` is
    ``content_policy_violation`` is a moderation verdict; the rest reads as HTTP."""
    detail = _field(response, "detail")
    if isinstance(detail, list) and any(
        isinstance(d, dict) and d.get("type") == "content_policy_violation" for d in detail
    ):
        return ModeratedError(
            f"{what}: the model's content checker refused the request", provider_job_id=request_id
        )
    return error_for(response, what, provider_job_id=request_id)


def _resumable(error: ProviderError, request_id: str) -> None:
    """A failed poll loses sight of the request, not the request: poll it again later."""
    if error.retryable:
        error.resumable = True
        error.provider_job_id = request_id


def build(config: ProviderConfig) -> Provider:
    return FalProvider(config)
