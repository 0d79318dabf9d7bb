"""Replicate adapter: predictions API (``https://api.replicate.com/v1``).

A model is addressed as ``owner/name`` (an official model: ``POST
/models/{owner}/{name}/predictions``) or ``owner/name:version`` (``POST /predictions``
with the version id). The prediction id is recorded as soon as the create call
returns; the adapter then polls ``GET /predictions/{id}`` until the prediction ends,
reading progress from the model's tqdm lines in ``logs``, and downloads the output
files (which Replicate deletes an hour after the prediction completes).

``Prefer: wait=N``: the create call may hold the request up to N seconds and answer
with the finished prediction, which saves a poll round on fast models (FLUX schnell
finishes in about a second). The price: the prediction id is only known when the
create call returns, so a crash or a dropped connection inside those N seconds leaves
a paid prediction we cannot resume. N is therefore small: 2 s by default (``options
prefer_wait_s``; 0 turns it off, and it never exceeds half the HTTP timeout).

A model that makes fewer images per prediction than the job asks (FLUX Fill pro makes
one) gets one prediction per seed, as BFL's tasks: created in turn, each id recorded at
once (the job's correlation holds them comma-joined, in seed order), then followed
together. A resumed attempt looks up each recorded id and creates only the predictions
it no longer has."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from functools import partial
from typing import Any

import httpx
from pydantic import Field

from imagegate.domain.actions import UpscaleMode
from imagegate.domain.params import MAX_VARIATIONS, STYLES, Mode
from imagegate.providers import parts
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
from imagegate.providers.errors import (
    PermanentProviderError,
    ProviderError,
)
from imagegate.providers.fitting import fit
from imagegate.providers.http import (
    ProviderConfig,
    ResultExpiredError,
    call,
    decode_image,
    fetch_image,
    make_client,
    make_download_client,
    poll_until,
)
from imagegate.providers.options import AdapterOptions, HttpOptions
from imagegate.providers.progress import ForwardProgress, PartsProgress
from imagegate.providers.replicate_inputs import (
    DEFAULT_DESCRIBE_MODEL,
    FILL_MODEL,
    MODELS,
    UPSCALER,
    VARIATION_MODEL,
    model_input,
    spec_for,
    texts_from,
)
from imagegate.providers.replicate_predictions import (
    TERMINAL,
    fraction,
    http_error,
    output_urls,
    outputs_removed,
    parse_prediction,
    raise_for_status,
    too_few,
)

DEFAULT_PREFER_WAIT_S = 2


class ActionModels(AdapterOptions):
    """``options.models``: the model each action runs on (``owner/name`` or
    ``owner/name:version``); ``""`` turns the action off, unset keeps the default."""

    img2img: str | None = None  # default: vary_model
    variation: str | None = None  # default: vary_model
    upscale: str | None = None  # default: upscale_model
    upscale_creative: str | None = None  # default: the upscale model
    vary_region: str = FILL_MODEL
    zoom_out: str = FILL_MODEL
    pan: str = FILL_MODEL
    describe: str = DEFAULT_DESCRIBE_MODEL


class Options(HttpOptions):
    """``[providers.<name>.options]`` of a Replicate provider (docs/providers/replicate.md)."""

    # Fields merged into every prediction's input, over the adapter's.
    input: dict[str, Any] = Field(default_factory=dict)
    # ``Prefer: wait=N`` on create; 0 turns it off (see the module's docstring).
    prefer_wait_s: int = Field(default=DEFAULT_PREFER_WAIT_S, ge=0, le=60)
    # USD, to report cost from ``metrics.predict_time``; unset: the price table's.
    price_per_second: float | None = Field(default=None, ge=0)
    # The older spellings of models.upscale and models.img2img/variation.
    upscale_model: str = UPSCALER
    vary_model: str = VARIATION_MODEL
    models: ActionModels = Field(default_factory=ActionModels)


class ReplicateProvider:
    """Runs predictions on Replicate, with the options of :class:`Options`."""

    def __init__(self, config: ProviderConfig) -> None:
        self.name = config.name
        self._config = config
        options = Options.of(config.name, config.options)
        self._models = config.models or tuple(MODELS)
        self._overrides: dict[str, Any] = dict(options.input)
        self._prefer_wait_s = _prefer_wait(options.prefer_wait_s, config.timeout_s)
        self._price_per_s = options.price_per_second
        self._action_models = _action_models(options)
        self._creative_upscaler = options.models.upscale_creative or None
        pool = options.max_connections
        self._auth = {"Authorization": f"Bearer {config.api_key or ''}"}
        self._client = make_client(config, self._auth, max_connections=pool)
        # Output files on replicate.delivery are public: the token goes only to files
        # served by the API's own host (the files API), which asks for it. Every file
        # is fetched through the SSRF guard, redirects included.
        self._files = make_download_client(replace(config, api_key=None), max_connections=pool)
        self._api_origin = httpx.URL(config.base_url or "").copy_with(path="/", query=None)

    def capabilities(self) -> Capabilities:
        specs = [spec_for(model) for model in self._models]
        return Capabilities(
            models=self._models,
            # A model that makes fewer per prediction runs one prediction per image.
            max_images=MAX_VARIATIONS,
            modes=(Mode.DRAFT, Mode.STANDARD),
            styles=STYLES,
            actions=(Action.IMAGINE, *self._action_models),
            seeds=True,
            negative_prompt=all(spec.negative_prompt for spec in specs),
        )

    def estimate_credits(self, request: GenerationRequest) -> int:
        return standard_credits(request)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        model = self._model_for(request)
        spec = spec_for(model, request.action)
        if spec.kind in ("image", "fill") and len(request.seeds) > spec.max_outputs:
            return await self._generate_each(request, model, progress, correlation)
        prediction = await self._resume(correlation.existing) if correlation.existing else None
        if prediction is None:
            data = model_input(request, model, self._overrides_for(model, request))
            prediction = await self._create(model, data, wait_s=self._prefer_wait_s)
            await correlation.record(prediction["id"])
        prediction = await self._wait(prediction, ForwardProgress(progress))
        if request.action is Action.DESCRIBE:
            texts = texts_from(prediction.get("output"), prediction["id"])
            await progress(1.0)
            return GenerationResult((), prediction["id"], self._cost(prediction), texts)
        images = await self._images(prediction, request)
        if request.action is not Action.IMAGINE:
            images = tuple(fit(image, request.width, request.height) for image in images)
        await progress(1.0)
        return GenerationResult(images, prediction["id"], self._cost(prediction))

    async def _generate_each(
        self,
        request: GenerationRequest,
        model: str,
        progress: ProgressCallback,
        correlation: Correlation,
    ) -> GenerationResult:
        """One prediction per seed (see the module's docstring)."""
        if len(request.seeds) > MAX_VARIATIONS:
            raise PermanentProviderError(
                f"replicate: a job makes at most {MAX_VARIATIONS} images, "
                f"{len(request.seeds)} requested"
            )
        first = replace(request, seeds=request.seeds[:1])
        template = model_input(first, model, self._overrides_for(model, request))
        known, recorded = parts.split(correlation.existing), correlation.existing
        predictions: list[dict[str, Any]] = []
        for index, seed in enumerate(request.seeds):
            prediction = await self._resume(known[index]) if index < len(known) else None
            if prediction is None:
                # No Prefer: wait: it would hold each create, and the next one with it.
                data = {**template, "seed": seed}
                prediction = await self._create(model, data, wait_s=0, resumable=bool(recorded))
            predictions.append(prediction)
            # The ids not yet looked at stay recorded: a crash now must not forget them.
            ids = parts.joined([p["id"] for p in predictions] + known[len(predictions) :])
            if ids != recorded:
                await correlation.record(ids)
                recorded = ids
        tracker = PartsProgress(progress, len(predictions))
        try:
            followed = await parts.gather(
                self._follow(
                    prediction, replace(request, seeds=(seed,)), partial(tracker.update, i)
                )
                for i, (prediction, seed) in enumerate(zip(predictions, request.seeds, strict=True))
            )
        except ProviderError as error:
            if not error.resumable:
                # The job fails here and its next attempt starts over: the other
                # predictions would run on, billed, for nothing.
                with contextlib.suppress(ProviderError):
                    await self.cancel(",".join(p["id"] for p in predictions))
            raise
        images = tuple(image for image, _ in followed)
        cost = round(sum(self._cost(finished) for _, finished in followed), 6)
        return GenerationResult(images, parts.joined([p["id"] for p in predictions]), cost)

    async def _follow(
        self, prediction: dict[str, Any], request: GenerationRequest, progress: ProgressCallback
    ) -> tuple[GeneratedImage, dict[str, Any]]:
        """One prediction of one seed to its image, at the job's size."""
        finished = await self._wait(prediction, progress)
        [image] = await self._images(finished, request)
        if request.action is not Action.IMAGINE:
            image = fit(image, request.width, request.height)
        await progress(1.0)
        return image, finished

    async def cancel(self, provider_job_id: str, model: str | None = None) -> None:
        """Cancel the job's predictions: ``provider_job_id`` is one id, or several
        comma-joined (one prediction per seed). One that has already ended stays as it
        ended; ``model`` is not needed, a prediction id is global
        (providers.base.Cancellable). Every prediction is asked; the first failure is
        raised after."""
        ids = parts.split(provider_job_id)
        results = await asyncio.gather(*map(self._cancel_one, ids), return_exceptions=True)
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            raise failures[0]

    async def _cancel_one(self, prediction_id: str) -> None:
        what = f"replicate: cancel prediction {prediction_id}"
        url = f"/predictions/{prediction_id}/cancel"
        response = await call(self._client, "POST", url, what, provider_job_id=prediction_id)
        if response.status_code != 200:
            raise http_error(response, what, prediction_id)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._files.aclose()

    # -- the request -------------------------------------------------------------------

    def _overrides_for(self, model: str, request: GenerationRequest) -> dict[str, Any]:
        """``options.input`` goes only to the image models (see model_input)."""
        return self._overrides if spec_for(model, request.action).kind == "image" else {}

    def _model_for(self, request: GenerationRequest) -> str:
        """The imagine model for an imagine; for img2img and variation the job's model
        when it takes an image, else the action's; for the other actions the action's.
        An action with no model configured is refused before anything is sent."""
        model = request.model if request.model in self._models else self._models[0]
        if request.action is Action.IMAGINE:
            return model
        if request.action in (Action.IMG2IMG, Action.VARIATION) and spec_for(model).img2img:
            return model
        configured = self._action_models.get(request.action)
        if configured is None:
            raise PermanentProviderError(
                f"replicate: no model is configured for {request.action} "
                f"(options.models.{request.action})"
            )
        if request.action is Action.UPSCALE and request.upscale_mode is UpscaleMode.CREATIVE:
            return self._creative_upscaler or configured
        return configured

    # -- the prediction ----------------------------------------------------------------

    async def _create(
        self, model: str, data: dict[str, Any], *, wait_s: int, resumable: bool = False
    ) -> dict[str, Any]:
        """A new prediction (``Prefer: wait=wait_s`` unless 0). ``resumable``: other
        predictions of the job are already recorded, so a refused create must leave them
        to the next attempt rather than have it start over."""
        owner_name, _, version = model.partition(":")
        if version:
            url, body = "/predictions", {"version": version, "input": data}
        else:
            url, body = f"/models/{owner_name}/predictions", {"input": data}
        headers = {"Prefer": f"wait={wait_s}"} if wait_s else {}
        what = f"replicate: create prediction ({model})"
        try:
            response = await call(self._client, "POST", url, what, json=body, headers=headers)
            if response.status_code not in {200, 201, 202}:
                raise http_error(response, what)
            return parse_prediction(response, what)
        except ProviderError as error:
            error.resumable = error.resumable or resumable
            raise

    async def _resume(self, prediction_id: str) -> dict[str, Any] | None:
        """The earlier attempt's prediction, or ``None`` when Replicate no longer has
        it or its outputs are gone (then a new prediction is the only way)."""
        prediction = await self._get(prediction_id)
        if prediction is None or outputs_removed(prediction):
            return None
        return prediction

    async def _get(self, prediction_id: str) -> dict[str, Any] | None:
        """The prediction now, ``None`` if Replicate does not know it. Any other
        failure is resumable: the prediction runs on whether or not we can see it."""
        what = f"replicate: get prediction {prediction_id}"
        url = f"/predictions/{prediction_id}"
        try:
            response = await call(self._client, "GET", url, what, provider_job_id=prediction_id)
            if response.status_code == 404:
                return None
            if response.status_code != 200:
                raise http_error(response, what, prediction_id)
            return parse_prediction(response, what)
        except ProviderError as error:
            error.provider_job_id, error.resumable = prediction_id, True
            raise

    async def _wait(self, prediction: dict[str, Any], progress: ProgressCallback) -> dict[str, Any]:
        """Poll until the prediction ends; raise what a failed one means."""
        prediction_id = prediction["id"]
        latest, first = prediction, True

        async def check() -> dict[str, Any] | None:
            # The first look is at the prediction we already hold (with Prefer: wait
            # it may have finished); later looks fetch it.
            nonlocal latest, first
            if not first:
                fetched = await self._get(prediction_id)
                if fetched is None:
                    raise ProviderError(
                        f"replicate: prediction {prediction_id} disappeared while running",
                        provider_job_id=prediction_id,
                    )
                latest = fetched
            first = False
            await progress(fraction(latest))
            return latest if latest["status"] in TERMINAL else None

        finished: dict[str, Any] = await poll_until(
            check,
            interval_s=self._config.poll_interval_s,
            timeout_s=self._config.timeout_s,
            what=f"replicate: prediction {prediction_id}",
            provider_job_id=prediction_id,
        )
        raise_for_status(finished)
        return finished

    async def _images(
        self, prediction: dict[str, Any], request: GenerationRequest
    ) -> tuple[GeneratedImage, ...]:
        prediction_id = prediction["id"]
        if outputs_removed(prediction):
            raise ResultExpiredError(
                f"replicate: the outputs of {prediction_id} were deleted",
                provider_job_id=prediction_id,
            )
        seeds = request.seeds or (0,)
        wanted = 1 if request.action is Action.UPSCALE else len(seeds)
        urls = output_urls(prediction)
        if len(urls) < wanted:
            raise too_few(prediction, len(urls), wanted)
        what = f"replicate: output of {prediction_id}"
        downloads = [
            fetch_image(
                self._files, url, what, provider_job_id=prediction_id, headers=self._auth_for(url)
            )
            for url in urls[:wanted]
        ]
        blobs = await asyncio.gather(*downloads)
        pairs = zip(blobs, seeds[:wanted], strict=True)
        return tuple(decode_image(data, seed, what) for data, seed in pairs)

    def _auth_for(self, url: str) -> dict[str, str] | None:
        same_host = httpx.URL(url).copy_with(path="/", query=None) == self._api_origin
        return self._auth if same_host else None

    def _cost(self, prediction: dict[str, Any]) -> float:
        metrics = prediction.get("metrics") or {}
        seconds = metrics.get("predict_time")
        if self._price_per_s is None or not isinstance(seconds, int | float):
            return 0.0
        return round(float(seconds) * self._price_per_s, 6)


def _action_models(options: Options) -> dict[Action, str]:
    """The model of each action that has one, in the order of ``Action``."""
    chosen = options.models
    models = {
        Action.IMG2IMG: options.vary_model if chosen.img2img is None else chosen.img2img,
        Action.VARIATION: options.vary_model if chosen.variation is None else chosen.variation,
        Action.UPSCALE: options.upscale_model if chosen.upscale is None else chosen.upscale,
        Action.ZOOM_OUT: chosen.zoom_out,
        Action.PAN: chosen.pan,
        Action.VARY_REGION: chosen.vary_region,
        Action.DESCRIBE: chosen.describe,
    }
    return {action: model for action, model in models.items() if model}


def build(config: ProviderConfig) -> ReplicateProvider:
    return ReplicateProvider(config)


def _prefer_wait(wanted: int, timeout_s: float) -> int:
    # Replicate accepts 1..60; the hold must also end well inside our read timeout.
    wait_s = min(wanted, 60, int(timeout_s / 2))
    return wait_s if wait_s >= 1 else 0
