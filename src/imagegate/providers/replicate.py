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
prefer_wait_s``; 0 turns it off, and it never exceeds half the HTTP timeout)."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from typing import Any

import httpx
from pydantic import Field

from imagegate.domain.actions import UpscaleMode
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
from imagegate.providers.errors import (
    ModeratedError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    RetryableProviderError,
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

DEFAULT_PREFER_WAIT_S = 2
_TERMINAL = {"succeeded", "failed", "canceled", "aborted"}
# How image models say their safety checker refused every output ("NSFW content
# detected…", "All generated images contained NSFW content…"), and the wording of
# models behind a provider filter ("…flagged as sensitive").
_MODERATED = re.compile(r"\bnsfw\b|flagged as sensitive", re.IGNORECASE)
_TQDM = re.compile(r"(\d{1,3})%\|")
# "Request was throttled. Your rate limit resets in ~30s." (older: "…in 30 seconds.")
_THROTTLED_FOR = re.compile(r"(\d+(?:\.\d+)?)\s*(?:s\b|sec)", re.IGNORECASE)


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
            max_images=max(spec.max_outputs for spec in specs),
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
        prediction = await self._resume(correlation.existing) if correlation.existing else None
        if prediction is None:
            model = self._model_for(request)
            overrides = self._overrides if spec_for(model, request.action).kind == "image" else {}
            prediction = await self._create(model, model_input(request, model, overrides))
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

    async def cancel(self, provider_job_id: str, model: str | None = None) -> None:
        """Cancel a prediction (one that has already ended stays as it ended);
        ``model`` is not needed, a prediction id is global (providers.base.Cancellable)."""
        what = f"replicate: cancel prediction {provider_job_id}"
        url = f"/predictions/{provider_job_id}/cancel"
        response = await call(self._client, "POST", url, what, provider_job_id=provider_job_id)
        if response.status_code != 200:
            raise _http_error(response, what, provider_job_id)

    async def aclose(self) -> None:
        await self._client.aclose()
        await self._files.aclose()

    # -- the request -------------------------------------------------------------------

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

    async def _create(self, model: str, data: dict[str, Any]) -> dict[str, Any]:
        owner_name, _, version = model.partition(":")
        if version:
            url, body = "/predictions", {"version": version, "input": data}
        else:
            url, body = f"/models/{owner_name}/predictions", {"input": data}
        headers = {"Prefer": f"wait={self._prefer_wait_s}"} if self._prefer_wait_s else {}
        what = f"replicate: create prediction ({model})"
        response = await call(self._client, "POST", url, what, json=body, headers=headers)
        if response.status_code not in {200, 201, 202}:
            raise _http_error(response, what)
        return _prediction(response, what)

    async def _resume(self, prediction_id: str) -> dict[str, Any] | None:
        """The earlier attempt's prediction, or ``None`` when Replicate no longer has
        it or its outputs are gone (then a new prediction is the only way)."""
        prediction = await self._get(prediction_id)
        if prediction is None or _outputs_removed(prediction):
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
                raise _http_error(response, what, prediction_id)
            return _prediction(response, what)
        except ProviderError as error:
            error.provider_job_id, error.resumable = prediction_id, True
            raise

    async def _wait(self, prediction: dict[str, Any], progress: ForwardProgress) -> dict[str, Any]:
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
            await progress(_fraction(latest))
            return latest if latest["status"] in _TERMINAL else None

        finished: dict[str, Any] = await poll_until(
            check,
            interval_s=self._config.poll_interval_s,
            timeout_s=self._config.timeout_s,
            what=f"replicate: prediction {prediction_id}",
            provider_job_id=prediction_id,
        )
        _raise_for_status(finished)
        return finished

    async def _images(
        self, prediction: dict[str, Any], request: GenerationRequest
    ) -> tuple[GeneratedImage, ...]:
        prediction_id = prediction["id"]
        if _outputs_removed(prediction):
            raise ResultExpiredError(
                f"replicate: the outputs of {prediction_id} were deleted",
                provider_job_id=prediction_id,
            )
        seeds = request.seeds or (0,)
        wanted = 1 if request.action is Action.UPSCALE else len(seeds)
        urls = _output_urls(prediction)
        if len(urls) < wanted:
            raise _too_few(prediction, len(urls), wanted)
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


def _http_error(
    response: httpx.Response, what: str, provider_job_id: str | None = None
) -> ProviderError:
    error = error_for(response, what, provider_job_id=provider_job_id)
    if isinstance(error, RateLimitedError) and error.retry_after is None:
        # Replicate says when in the body: "…resets in ~30s."
        match = _THROTTLED_FOR.search(response.text)
        error.retry_after = float(match.group(1)) if match else None
    return error


def _prediction(response: httpx.Response, what: str) -> dict[str, Any]:
    body = json_body(response, what)
    fields: dict[str, Any] = body if isinstance(body, dict) else {}
    if not (isinstance(fields.get("id"), str) and isinstance(fields.get("status"), str)):
        raise ProviderError(f"{what}: not a prediction: {str(body)[:200]!r}")
    return fields


def _fraction(prediction: dict[str, Any]) -> float:
    """How far along: the last tqdm percentage in the logs, scaled to leave the last
    tenth for downloading the outputs."""
    if prediction["status"] == "succeeded":
        return 0.9
    found = _TQDM.findall(str(prediction.get("logs") or ""))
    return min(100, int(found[-1])) / 100 * 0.9 if found else 0.0


def _raise_for_status(prediction: dict[str, Any]) -> None:
    status, prediction_id = prediction["status"], prediction["id"]
    message = str(prediction.get("error") or "")
    if status == "succeeded":
        return
    if status == "failed" and _MODERATED.search(message):
        raise ModeratedError(f"replicate: {message}", provider_job_id=prediction_id)
    if status == "aborted":
        # Ended by its deadline before it started: nothing ran, nothing was charged.
        raise RetryableProviderError(
            f"replicate: prediction {prediction_id} aborted before it started",
            provider_job_id=prediction_id,
        )
    # A model's own failure (its exception text, or a platform code such as E1000):
    # Replicate gives no reliable transient/permanent split, so retry a bounded number.
    raise ProviderError(
        f"replicate: prediction {prediction_id} {status}: {message or 'no error given'}",
        provider_job_id=prediction_id,
    )


def _outputs_removed(prediction: dict[str, Any]) -> bool:
    succeeded = prediction["status"] == "succeeded"
    return succeeded and (bool(prediction.get("data_removed")) or prediction.get("output") is None)


def _output_urls(prediction: dict[str, Any]) -> list[str]:
    output = prediction.get("output")
    items = output if isinstance(output, list) else [output]
    return [item for item in items if isinstance(item, str)]


def _too_few(prediction: dict[str, Any], got: int, wanted: int) -> ProviderError:
    prediction_id = prediction["id"]
    message = f"replicate: prediction {prediction_id} returned {got} of {wanted} images"
    if _MODERATED.search(str(prediction.get("logs") or "")):
        # The safety checker dropped some outputs. The same seeds would draw the same
        # images again, so this is a refusal, not bad luck.
        return ModeratedError(f"{message} (NSFW outputs removed)", provider_job_id=prediction_id)
    return ProviderError(message, provider_job_id=prediction_id)
