"""Local generation with Hugging Face diffusers, in this process.

The optional extra ``imagegate[diffusers]`` brings torch and diffusers; they are
imported on first use, so the base install never needs them. Options: :class:`Options`
(docs/providers/diffusers.md). One text-to-image pipeline is loaded; the image-to-image
and inpainting pipelines of the same family are made from it with ``from_pipe``, which
shares its weights. :mod:`.diffusers_inputs` says what each action hands them."""

from __future__ import annotations

import asyncio
import importlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from imagegate.domain.params import STYLES, Mode
from imagegate.imaging import encode
from imagegate.observability.logging import get_logger
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
from imagegate.providers.comfyui import style_prompt
from imagegate.providers.diffusers_inputs import (
    MAX_SIDE,
    finished,
    inputs_for,
    snap_side,
    steps_for,
)
from imagegate.providers.errors import (
    ModeratedError,
    PermanentProviderError,
    ProviderError,
    RetryableProviderError,
)
from imagegate.providers.http import ProviderConfig
from imagegate.providers.options import AdapterOptions
from imagegate.providers.progress import ForwardProgress

log = get_logger("imagegate.providers.diffusers")

__all__ = ["ACTIONS", "DiffusersProvider", "Options", "build", "snap_side"]

INSTALL_HINT = "pip install 'imagegate[diffusers]'"
_DEFAULT_STEPS = 30
ACTIONS = (
    Action.IMAGINE,
    Action.IMG2IMG,
    Action.VARIATION,
    Action.VARY_REGION,
    Action.ZOOM_OUT,
    Action.PAN,
)
# The auto pipeline that makes each kind from the loaded text-to-image one.
_AUTO = {"img2img": "AutoPipelineForImage2Image", "inpaint": "AutoPipelineForInpainting"}


def _import(name: str) -> Any:
    """torch or diffusers, or a permanent error saying how to install them."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise PermanentProviderError(
            f"diffusers provider: {name} is not installed ({error}); {INSTALL_HINT}"
        ) from error


class Options(AdapterOptions):
    """``[providers.<name>.options]`` of a diffusers provider."""

    model: str = Field(min_length=1)  # a save_pretrained folder or a hub id (required)
    local_files_only: bool = True  # never download at job time
    # cpu, cuda, cuda:N, mps, or auto (cuda when available).
    device: str = Field(default="cpu", pattern=r"^(cpu|auto|mps|cuda(:[0-9]+)?)$")
    # Unset: float32 on the CPU, float16 elsewhere.
    dtype: Literal["float32", "float16", "bfloat16"] | None = None
    steps: int = Field(default=_DEFAULT_STEPS, ge=1)
    draft_steps: int | None = Field(default=None, ge=1)  # unset: half of steps
    guidance_scale: float | None = None  # unset: the pipeline's
    max_images: int = Field(default=4, ge=1)  # images per job, made in one batch
    # vary_region: how far the masked area is denoised (1: painted afresh).
    region_strength: float = Field(default=0.75, gt=0, le=1)


class DiffusersProvider:
    """One pipeline, loaded on first use, running one job at a time in a thread."""

    def __init__(self, config: ProviderConfig) -> None:
        options = Options.of(config.name, config.options)
        self.name = config.name
        self._config = config
        self._options = options
        self._source = options.model
        self._models = config.models or (Path(self._source).name,)
        self._steps = options.steps
        self._draft_steps = options.draft_steps or max(1, self._steps // 2)
        self._pipeline: Any = None
        self._derived: dict[str, Any] = {}  # "img2img", "inpaint": made by from_pipe
        self._device = "cpu"
        # Diffusers pipelines are not safe to call from two threads at once, and one job
        # already uses every core (or the whole GPU): jobs queue here, one at a time.
        self._lock = threading.Lock()

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=self._models,
            max_images=self._options.max_images,
            modes=(Mode.DRAFT, Mode.STANDARD),
            styles=STYLES,
            actions=ACTIONS,
            seeds=True,
            negative_prompt=True,
            max_pixels=MAX_SIDE * MAX_SIDE,
        )

    def estimate_credits(self, request: GenerationRequest) -> int:
        return standard_credits(request)

    async def aclose(self) -> None:
        """Drop the pipelines (their weights are freed with them)."""
        self._pipeline, self._derived = None, {}

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        # In-process: there is no provider job to record, and none survives a crash.
        self._check(request)
        reporter = _Reporter(asyncio.get_running_loop(), progress)
        work = asyncio.ensure_future(asyncio.to_thread(self._run, request, reporter))
        try:
            while not work.done():
                changed = asyncio.ensure_future(reporter.changed.wait())
                await asyncio.wait({work, changed}, return_when=asyncio.FIRST_COMPLETED)
                changed.cancel()
                await reporter.report()
        except asyncio.CancelledError:
            reporter.cancelled = True  # the thread stops at its next step
            work.cancel()  # and what it returns then is dropped, not left unretrieved
            raise
        images = work.result()
        await progress(1.0)
        return GenerationResult(images=images, provider_job_id=None)

    def _check(self, request: GenerationRequest) -> None:
        if request.action not in ACTIONS:
            raise PermanentProviderError(f"{self.name}: {request.action} is not supported")
        if request.model not in self._models:
            raise PermanentProviderError(f"{self.name}: unknown model {request.model!r}")
        limit = self.capabilities().max_images
        if not 1 <= len(request.seeds) <= limit:
            raise PermanentProviderError(f"{self.name}: 1 to {limit} images per job")

    def _run(self, request: GenerationRequest, reporter: _Reporter) -> tuple[GeneratedImage, ...]:
        """In a worker thread: load the pipeline if need be, then make the images."""
        inputs = inputs_for(request, self._options.region_strength)
        with self._lock:
            pipeline = self._pipeline_for(inputs.kind)
            torch = _import("torch")
            steps = self._draft_steps if request.mode is Mode.DRAFT else self._steps
            steps, running = steps_for(steps, inputs.strength)
            # One CPU generator per image: the same seed gives the same image on any device.
            generators = [torch.Generator("cpu").manual_seed(seed) for seed in request.seeds]
            extra = dict(inputs.arguments)
            if inputs.kind != "text2image":
                extra["strength"] = inputs.strength
            if self._options.guidance_scale is not None:
                extra["guidance_scale"] = self._options.guidance_scale
            try:
                output = pipeline(
                    prompt=style_prompt(request.prompt, request.style),
                    negative_prompt=request.negative_prompt or None,
                    num_inference_steps=steps,
                    num_images_per_prompt=len(request.seeds),
                    generator=generators,
                    callback_on_step_end=reporter.step_callback(running),
                    output_type="pil",
                    **extra,
                )
            except Exception as error:
                raise _classify(error) from error
        if reporter.cancelled:
            raise RetryableProviderError(f"{self.name}: cancelled")
        if any(getattr(output, "nsfw_content_detected", None) or []):
            raise ModeratedError(f"{self.name}: the pipeline's safety checker flagged the image")
        fmt = request.output_format
        images = [finished(image, request, inputs) for image in output.images]
        return tuple(
            GeneratedImage(encode(image, fmt), fmt.content_type, image.width, image.height, seed)
            for image, seed in zip(images, request.seeds, strict=True)
        )

    def _pipeline_for(self, kind: str) -> Any:
        """The loaded pipeline, or its image-to-image or inpainting sibling, made once
        with ``from_pipe`` (the same components: no second copy of the weights)."""
        base = self._load()
        if kind == "text2image":
            return base
        if kind not in self._derived:
            auto = getattr(_import("diffusers"), _AUTO[kind])
            try:
                derived = auto.from_pipe(base)
            except (ValueError, KeyError, TypeError) as error:
                raise PermanentProviderError(
                    f"{self.name}: {type(base).__name__} has no {kind} pipeline: {error}"
                ) from error
            derived.set_progress_bar_config(disable=True)
            self._derived[kind] = derived
        return self._derived[kind]

    def _load(self) -> Any:
        if self._pipeline is not None:
            return self._pipeline
        torch, diffusers = _import("torch"), _import("diffusers")
        options = self._options
        device = self._resolve_device(torch, options.device)
        dtype_name = options.dtype or ("float32" if device == "cpu" else "float16")
        dtype = getattr(torch, dtype_name, None)
        if not isinstance(dtype, torch.dtype):
            raise PermanentProviderError(f"{self.name}: unknown dtype {dtype_name!r}")
        log.info("diffusers.loading", provider=self.name, device=device, dtype=dtype_name)
        try:
            # ``dtype`` (diffusers 0.40 and later; ``torch_dtype`` before, now deprecated).
            pipeline = diffusers.AutoPipelineForText2Image.from_pretrained(
                self._source,
                dtype=dtype,
                local_files_only=options.local_files_only,
            )
        except (OSError, ValueError) as error:
            raise PermanentProviderError(
                f"{self.name}: cannot load pipeline {self._source!r}: {error}"
            ) from error
        pipeline.set_progress_bar_config(disable=True)
        self._pipeline, self._device = pipeline.to(device), device
        return self._pipeline

    def _resolve_device(self, torch: Any, wanted: str) -> str:
        if wanted == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if wanted.startswith("cuda") and not torch.cuda.is_available():
            raise PermanentProviderError(
                f"{self.name}: device {wanted!r}, but CUDA is not available"
            )
        return wanted


def _classify(error: Exception) -> ProviderError:
    """A pipeline failure in the taxonomy: out of memory may pass, bad input will not."""
    if type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower():
        return RetryableProviderError(f"diffusers: out of memory: {error}")
    if isinstance(error, ValueError | TypeError):
        return PermanentProviderError(f"diffusers: the pipeline refused the request: {error}")
    return ProviderError(f"diffusers: {type(error).__name__}: {error}")


class _Reporter:
    """Carries step progress from the pipeline's thread to the event loop, keeping
    only the latest value, so a slow progress callback never holds up sampling."""

    def __init__(self, loop: asyncio.AbstractEventLoop, progress: ProgressCallback) -> None:
        self._loop, self._forward = loop, ForwardProgress(progress)
        self.changed = asyncio.Event()
        self._latest = 0.0
        self.cancelled = False

    def step_callback(self, steps: int) -> Callable[..., dict[str, Any]]:
        def on_step_end(pipeline: Any, step: int, _: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
            if self.cancelled:
                pipeline._interrupt = True  # diffusers skips the remaining steps
            self._loop.call_soon_threadsafe(self._set, min(0.99, (step + 1) / steps))
            return kwargs

        return on_step_end

    def _set(self, fraction: float) -> None:
        self._latest = max(self._latest, fraction)
        self.changed.set()

    async def report(self) -> None:
        self.changed.clear()
        await self._forward(self._latest)


def build(config: ProviderConfig) -> DiffusersProvider:
    """The adapter for a ``type = "diffusers"`` provider table. Loads nothing yet."""
    return DiffusersProvider(config)
