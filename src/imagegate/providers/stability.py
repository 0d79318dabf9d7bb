"""Stability AI adapter: the REST API v2beta ``stable-image`` endpoints.

Generation (``ultra``, ``core``, the ``sd3.5-*`` models; image-to-image for img2img and
variation on ultra and sd3.5), ``edit/outpaint`` (zoom out, pan) and ``edit/inpaint``
(vary region) are synchronous and make one image per call, so a job with several
seeds makes one call per seed. Upscaling is ``fast`` and ``conservative``
(synchronous) or ``creative`` (asynchronous: its id is recorded, then
``GET /v2beta/results/{id}`` is polled, and a later attempt resumes it). The forms are
built in :mod:`.stability_forms`. See docs/providers/stability.md."""

from __future__ import annotations

import asyncio
import base64
import binascii
from dataclasses import replace
from typing import Any, Literal

import httpx

from imagegate.domain.params import MAX_VARIATIONS, STYLES, Mode
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
from imagegate.providers.exact_size import exact_size
from imagegate.providers.http import (
    ProviderConfig,
    ResultExpiredError,
    call,
    decode_image,
    error_for,
    json_body,
    make_client,
    poll_until,
)
from imagegate.providers.options import HttpOptions
from imagegate.providers.stability_forms import (
    SD3_MODELS,
    STYLE_PRESETS,
    UPSCALERS,
    VARIES,
    Form,
    aspect_ratio,
    generation_form,
    inpaint_form,
    outpaint_form,
    upscale_form,
    upscale_kind,
)

log = get_logger("imagegate.providers.stability")

DEFAULT_BASE_URL = "https://api.stability.ai"
DEFAULT_MODELS = ("core", "ultra", *SD3_MODELS, *UPSCALERS)
# Outpaint and inpaint are endpoints, not models: any configured model reaches them.
_EDITS = {Action.ZOOM_OUT: outpaint_form, Action.PAN: outpaint_form,
          Action.VARY_REGION: inpaint_form}  # fmt: skip
_GONE = object()  # a result the API no longer has (404): only a new submission helps


class Options(HttpOptions):
    """``[providers.<name>.options]`` of a Stability provider (docs/providers/stability.md)."""

    # The upscaler of a subtle upscale (fast falls back to conservative where it cannot:
    # a factor other than 4, a source over a megapixel). Creative upscales use creative.
    upscaler: Literal["fast", "conservative", "creative"] = "fast"


class StabilityProvider:
    """Translates imagegate requests to Stability's multipart forms and back."""

    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self.config = config
        self.options = Options.of(config.name, config.options)
        self.models = config.models or DEFAULT_MODELS
        headers = {"Accept": "application/json", "stability-client-id": "imagegate"}
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
        self._client = make_client(
            replace(config, base_url=config.base_url or DEFAULT_BASE_URL),
            headers,
            max_connections=self.options.max_connections,
        )
        # Every answer that ends a generation carries its one image (bytes or base64).
        self._image_cap = config.reads.inline_images_cap(1)

    async def aclose(self) -> None:
        await self._client.aclose()

    def capabilities(self) -> Capabilities:
        generates = [m for m in self.models if m not in UPSCALERS]
        actions = []
        if generates:
            actions.append(Action.IMAGINE)
        if any(m in VARIES for m in self.models):
            actions += [Action.IMG2IMG, Action.VARIATION]
        if any(m in UPSCALERS for m in self.models):
            actions.append(Action.UPSCALE)
        if generates:
            actions += [Action.ZOOM_OUT, Action.PAN, Action.VARY_REGION]
        return Capabilities(
            models=tuple(self.models),
            max_images=MAX_VARIATIONS,  # one call per image, so the job's limit is ours
            modes=(Mode.DRAFT, Mode.STANDARD),
            styles=tuple(s for s in STYLES if s == "none" or s in STYLE_PRESETS),
            actions=tuple(a for a in Action if a in actions),
            seeds=True,
            negative_prompt=True,
        )

    def estimate_credits(self, request: GenerationRequest) -> int:
        return standard_credits(request)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        """One synchronous call per seed (an upscale: one call, creative asynchronous).
        Every action but imagine returns its images at exactly the request's size."""
        if request.action is Action.UPSCALE:
            result = await self._upscale(request, progress, correlation)
        else:
            result = await self._per_seed(request, progress)
        if request.action is Action.IMAGINE:
            return result
        images = await asyncio.to_thread(
            lambda: tuple(exact_size(i, request.width, request.height) for i in result.images)
        )
        return replace(result, images=images)

    async def _per_seed(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        path, fields, files = await asyncio.to_thread(self._form, request)
        images: list[GeneratedImage] = []
        request_ids: list[str] = []
        for index, seed in enumerate(request.seeds):
            what = f"stability {path.rsplit('/', 1)[-1]} (seed {seed})"
            response = await self._post(path, {**fields, "seed": str(seed)}, files, what)
            images.append(_image(response, what, seed))
            request_ids.append(response.headers.get("x-request-id", ""))
            await progress((index + 1) / len(request.seeds))
        if not request.seeds:
            await progress(1.0)
        # Synchronous calls leave no job to resume; the first request id helps support.
        first_id = request_ids[0] if request_ids else ""
        return GenerationResult(tuple(images), provider_job_id=first_id or None)

    def _form(self, request: GenerationRequest) -> Form:
        action = request.action
        if action in _EDITS:
            return _EDITS[action](request)
        if action in (Action.IMG2IMG, Action.VARIATION):
            # The job's model if it takes an image, else the first configured one that does.
            able = [m for m in (request.model, *self.models) if m in VARIES]
            return generation_form(request, able[0] if able else request.model)
        if action is Action.IMAGINE:
            return generation_form(request, request.model)
        raise PermanentProviderError(f"stability: the API cannot {action}")

    async def _post(
        self, path: str, fields: dict[str, str], files: dict[str, Any], what: str
    ) -> httpx.Response:
        response = await call(
            self._client, "POST", path, what, data=fields, files=files, max_bytes=self._image_cap
        )
        if response.status_code != 200:
            raise _failure(response, what)
        return response

    async def _upscale(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        kind = upscale_kind(request, self.options.upscaler)
        fields, files = await asyncio.to_thread(upscale_form, kind, request)
        seed = request.seeds[0] if request.seeds else 0
        if kind == "creative":
            image, job_id = await self._creative(fields, files, seed, progress, correlation)
            await progress(1.0)
            return GenerationResult((image,), provider_job_id=job_id)
        what = f"stability upscale/{kind}"
        response = await self._post(f"/v2beta/stable-image/upscale/{kind}", fields, files, what)
        image = _image(response, what, seed)
        await progress(1.0)
        return GenerationResult((image,), provider_job_id=response.headers.get("x-request-id"))

    async def _creative(
        self,
        fields: dict[str, str],
        files: dict[str, Any],
        seed: int,
        progress: ProgressCallback,
        correlation: Correlation,
    ) -> tuple[GeneratedImage, str]:
        """The asynchronous upscale: resume the recorded job if the API still has it,
        otherwise submit, record the id before waiting, and poll for the result."""
        existing = correlation.existing
        if existing:
            found = await self._follow(existing, seed)
            if found is not _GONE:
                return found, existing
            log.info("stability.resume_gone", provider_job_id=existing)
        what = "stability upscale/creative"
        response = await self._post("/v2beta/stable-image/upscale/creative", fields, files, what)
        body = json_body(response, what)
        job_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(job_id, str) or not job_id:
            raise ProviderError(f"{what}: no id in the answer: {str(body)[:200]!r}")
        await correlation.record(job_id)
        await progress(0.1)
        found = await self._follow(job_id, seed)
        if found is _GONE:
            raise ResultExpiredError(f"{what}: result {job_id} is gone", provider_job_id=job_id)
        return found, job_id

    async def _follow(self, job_id: str, seed: int) -> Any:
        """Poll ``GET /v2beta/results/{id}``: the image, or ``_GONE`` on 404."""
        what = f"stability results/{job_id}"

        async def check() -> Any:
            try:
                response = await call(
                    self._client, "GET", f"/v2beta/results/{job_id}", what,
                    max_bytes=self._image_cap,
                )  # fmt: skip
            except ProviderError as lost:
                _resumable(lost, job_id)
                raise
            if response.status_code == 202:
                return None
            if response.status_code == 404:
                return _GONE
            if response.status_code != 200:
                failure = _failure(response, what, job_id)
                # Throttling says nothing about the job, which lives on. A 5xx may be
                # the job's own failure: resubmitting is the way to an image then.
                if response.status_code == 429:
                    _resumable(failure, job_id)
                raise failure
            return _image(response, what, seed)

        return await poll_until(
            check,
            interval_s=self.config.poll_interval_s,
            timeout_s=self.config.timeout_s,
            what=what,
            provider_job_id=job_id,
        )


def _image(response: httpx.Response, what: str, seed: int) -> GeneratedImage:
    """``{image (base64), finish_reason, seed}`` → the image, or the verdict."""
    body = json_body(response, what)
    if not isinstance(body, dict) or not isinstance(body.get("image"), str):
        raise ProviderError(f"{what}: no image in the answer: {str(body)[:200]!r}")
    if body.get("finish_reason") == "CONTENT_FILTERED":
        raise ModeratedError(f"{what}: the output was withheld by Stability's content filter")
    try:
        data = base64.b64decode(body["image"], validate=True)
    except (binascii.Error, ValueError) as error:
        raise ProviderError(f"{what}: image is not valid base64") from error
    returned = body.get("seed")
    # Seed 0 asks Stability to choose one; the answer says which it used.
    used = int(returned) if isinstance(returned, int | str) and str(returned).isdigit() else seed
    return decode_image(data, used, what)


def _failure(response: httpx.Response, what: str, job_id: str | None = None) -> ProviderError:
    # The API documents 403 as its content moderation's refusal of the request.
    if response.status_code == 403:
        return ModeratedError(
            f"{what}: refused by Stability's content moderation: {_errors(response)}",
            provider_job_id=job_id,
        )
    return error_for(response, what, provider_job_id=job_id)


def _errors(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    errors = body.get("errors") if isinstance(body, dict) else None
    return "; ".join(str(e) for e in errors) if isinstance(errors, list) else str(body)[:200]


def _resumable(error: ProviderError, job_id: str) -> None:
    """A failed poll loses sight of the job, not the job: the next attempt polls again."""
    if error.retryable:
        error.resumable = True
        error.provider_job_id = job_id


def build(config: ProviderConfig) -> Provider:
    return StabilityProvider(config)


__all__ = ["DEFAULT_MODELS", "SD3_MODELS", "StabilityProvider", "aspect_ratio", "build"]
