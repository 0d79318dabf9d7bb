"""The built-in provider: renders offline with :mod:`imagegate.render`, so the
service works, and its tests run, without any external API. It does every action
(:class:`~imagegate.providers.base.Action`) on real pixels; this module checks the
request, decodes its inputs and hands each action to its renderer module. Two knobs
make it a test double too: ``latency_ms`` (a slow provider) and ``fault_marker`` (a
flaky one)."""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor

from PIL import Image

from imagegate.domain.actions import BLEND_MAX, BLEND_MIN, MAX_OUTPUT_SIDE, UpscaleMode
from imagegate.domain.actions import VariationStrength as Strength
from imagegate.domain.params import STYLES, Mode
from imagegate.imaging import encode, open_image
from imagegate.providers import placeholder
from imagegate.providers.base import (
    SOURCE_ACTIONS,
    Action,
    Capabilities,
    Correlation,
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
    standard_credits,
)
from imagegate.providers.errors import PermanentProviderError, RetryableProviderError
from imagegate.render.blend import blend
from imagegate.render.colour import match_colours
from imagegate.render.describe import describe
from imagegate.render.repaint import outpaint, repaint_region
from imagegate.render.tuning import TUNING_KEYS, Look, make_tileable, render_scene
from imagegate.render.upscale import upscale
from imagegate.render.variation import img2img, vary

_LATENCY_SLICES = 20  # progress moves in 5 % steps while a simulated latency elapses


class BuiltinProvider:
    """Deterministic procedural images; same request, same bytes."""

    name = "builtin"

    def __init__(
        self,
        latency_ms: int = 0,
        fault_marker: str | None = None,
        fault_attempts: int = 1_000_000,
        processes: int = 0,
        placeholder: bool = False,
    ) -> None:
        """``latency_ms`` is added to every request, spread over the images.
        A prompt containing ``fault_marker`` (any case) fails with a retryable error on
        attempts up to ``fault_attempts``, then succeeds: chaos testing for retries.
        ``processes`` > 0 renders in that many worker processes instead of threads.
        ``placeholder`` renders nothing: every image is a tiny pre-encoded one
        (providers.placeholder), for measuring the service apart from rendering."""
        self.latency_ms = latency_ms
        self.placeholder = placeholder
        self.fault_marker = fault_marker
        self.fault_attempts = fault_attempts
        self.processes = processes
        self._pool: Executor | None = None

    def _executor(self) -> Executor | None:
        # Rendering is mostly Python-level numpy calls that hold the GIL; in the server's
        # process they would compete with the event loop. Worker processes (started on
        # first use, by spawn: the server has threads, which fork does not copy safely)
        # put them on the other cores.
        if self.processes > 0 and self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.processes,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_render_process,
                initargs=(os.getpid(),),
            )
        return self._pool

    def close(self) -> None:
        """Stop the worker processes, if any were started."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def capabilities(self) -> Capabilities:
        return Capabilities(
            models=("builtin",),
            max_images=4,
            modes=(Mode.DRAFT, Mode.STANDARD),
            styles=STYLES,
            actions=tuple(Action),
            tuning=TUNING_KEYS,
            style_reference=True,
        )

    def estimate_credits(self, request: GenerationRequest) -> int:
        return standard_credits(request)

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        if self._should_fail(request):
            raise RetryableProviderError(
                f"builtin fault injected (marker {self.fault_marker!r}, "
                f"attempt {request.attempt} of {self.fault_attempts} failing)"
            )
        _check(request)
        if self.placeholder:
            return await self._placeholder(request, progress)
        if request.action is Action.DESCRIBE:
            return await self._describe(request, progress)
        total = len(request.seeds)
        images: list[GeneratedImage] = []
        for index, seed in enumerate(request.seeds):
            await self._wait(index, total, progress)
            # Rendering is CPU-bound: off the event loop, in a process or a thread.
            loop = asyncio.get_running_loop()
            data = await loop.run_in_executor(self._executor(), render_encoded, request, seed)
            images.append(
                GeneratedImage(
                    data, request.output_format.content_type, request.width, request.height, seed
                )
            )
            await progress((index + 1) / total)
        if not total:
            await progress(1.0)
        return GenerationResult(images=tuple(images), provider_job_id=None, cost_usd=0.0)

    async def _placeholder(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        await self._wait(0, 1, progress)
        if request.action is Action.DESCRIBE:
            texts = placeholder.DESCRIBE_TEXTS
            return GenerationResult(images=(), provider_job_id=None, cost_usd=0.0, texts=texts)
        made = placeholder.images(request)
        return GenerationResult(images=made, provider_job_id=None, cost_usd=0.0)

    async def _describe(
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        await self._wait(0, 1, progress)
        loop = asyncio.get_running_loop()
        texts = await loop.run_in_executor(self._executor(), describe_texts, request)
        await progress(1.0)
        return GenerationResult(images=(), provider_job_id=None, cost_usd=0.0, texts=texts)

    def _should_fail(self, request: GenerationRequest) -> bool:
        if not self.fault_marker:
            return False
        marked = self.fault_marker.casefold() in request.prompt.casefold()
        return marked and request.attempt <= self.fault_attempts

    async def _wait(self, index: int, total: int, progress: ProgressCallback) -> None:
        """This image's share of the simulated latency, reporting progress as it passes,
        so a slow job's progress bar moves smoothly rather than in one jump per image."""
        if self.latency_ms <= 0:
            return
        slices = max(1, _LATENCY_SLICES // total)
        pause = self.latency_ms / 1000 / total / slices
        for step in range(slices):
            await asyncio.sleep(pause)
            # Stop short of the image's own completion, which is reported after it renders.
            await progress((index + (step + 1) / (slices + 1)) / total)


def _init_render_process(parent_pid: int) -> None:
    # Rendering is batch work; the server's own process answers requests. When the
    # cores are busy the kernel should favour the latter.
    os.nice(10)
    _die_with_parent(parent_pid)


def _die_with_parent(parent_pid: int) -> None:
    """A server killed with SIGKILL cannot stop its render processes; on Linux the
    kernel can, when the parent dies. Elsewhere they exit when their pipe closes."""
    if not sys.platform.startswith("linux"):
        return
    pr_set_pdeathsig = 1
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(0)


def _check(request: GenerationRequest) -> None:
    """Refuse, before any work, a request that lacks what its action reads (the
    service never sends one; a caller of the provider alone might)."""
    action = request.action
    if action in SOURCE_ACTIONS and request.source_image is None:
        raise PermanentProviderError(f"{action} needs a source image")
    if max(request.width, request.height) > MAX_OUTPUT_SIDE:
        raise PermanentProviderError(
            f"{request.width}x{request.height} is over the longest side the built-in "
            f"provider makes, {MAX_OUTPUT_SIDE}"
        )
    if action in (Action.ZOOM_OUT, Action.PAN):
        canvas = request.canvas
        if canvas is None or (canvas.width, canvas.height) != (request.width, request.height):
            raise PermanentProviderError(f"{action} needs a canvas of the output's size")
    if action is Action.VARY_REGION and request.mask is None:
        raise PermanentProviderError("vary_region needs a mask")
    if action is Action.BLEND and not BLEND_MIN <= len(request.source_images) <= BLEND_MAX:
        raise PermanentProviderError(f"blend takes {BLEND_MIN} to {BLEND_MAX} source images")


def render_encoded(request: GenerationRequest, seed: int) -> bytes:
    """One image of ``request`` with ``seed``, encoded as it asks (runs in a worker)."""
    return encode(_RENDERERS[request.action](request, seed), request.output_format)


def describe_texts(request: GenerationRequest) -> tuple[str, ...]:
    """The four prompt suggestions for ``request.source_image`` (runs in a worker)."""
    return describe(_decoded(request.source_image, "source image"))


def _decoded(data: bytes | None, what: str) -> Image.Image:
    if data is None:
        raise PermanentProviderError(f"the {what} is missing")
    try:
        image = open_image(data)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise PermanentProviderError(f"the {what} does not decode: {error}") from error
    if max(image.size) > MAX_OUTPUT_SIDE:
        raise PermanentProviderError(
            f"the {what} is {image.width}x{image.height}; the built-in provider takes "
            f"sides up to {MAX_OUTPUT_SIDE}"
        )
    return image.convert("RGB")


def _look(request: GenerationRequest) -> Look:
    style = _decoded(request.style_image, "style image") if request.style_image else None
    return Look.of(request.tuning, style, request.style_weight)


def _scene(request: GenerationRequest, seed: int, size: tuple[int, int], look: Look) -> Image.Image:
    return render_scene(request.prompt, request.negative_prompt, request.style, seed, size, look)


def _finished(image: Image.Image, look: Look) -> Image.Image:
    return make_tileable(image) if look.tile else image


def _imagine(request: GenerationRequest, seed: int) -> Image.Image:
    look = _look(request)
    return _finished(_scene(request, seed, (request.width, request.height), look), look)


def _img2img(request: GenerationRequest, seed: int) -> Image.Image:
    look = _look(request)
    fresh = _scene(request, seed, (request.width, request.height), look)
    strength = 0.5 if request.strength is None else request.strength
    return _finished(img2img(_decoded(request.source_image, "source image"), fresh, strength), look)


def _upscale(request: GenerationRequest, seed: int) -> Image.Image:
    source = _decoded(request.source_image, "source image")
    creative = request.upscale_mode is UpscaleMode.CREATIVE
    return upscale(source, (request.width, request.height), creative, seed)


def _variation(request: GenerationRequest, seed: int) -> Image.Image:
    look = _look(request)
    source = _decoded(request.source_image, "source image")
    fresh = _scene(request, seed, (request.width, request.height), look)
    strength = Strength.SUBTLE.strength if request.strength is None else request.strength
    return _finished(vary(source, fresh, seed, strength, look.spread), look)


def _outpaint(request: GenerationRequest, seed: int) -> Image.Image:
    canvas = request.canvas
    if canvas is None:  # refused by _check already; this tells the type checker
        raise PermanentProviderError(f"{request.action} needs a canvas")
    fresh = _scene(request, seed, (canvas.width, canvas.height), _look(request))
    return outpaint(_decoded(request.source_image, "source image"), canvas, fresh)


def _vary_region(request: GenerationRequest, seed: int) -> Image.Image:
    source = _decoded(request.source_image, "source image")
    mask = _decoded(request.mask, "mask").convert("L")
    if source.size != (request.width, request.height):
        raise PermanentProviderError("vary_region returns the source's size")
    fresh = _scene(request, seed, source.size, _look(request))
    return repaint_region(source, mask, fresh)


def _blend(request: GenerationRequest, seed: int) -> Image.Image:
    look = _look(request)
    images = [
        _decoded(data, f"source image {n}") for n, data in enumerate(request.source_images, 1)
    ]
    image = blend(images, (request.width, request.height), seed, look.spread)
    if look.style is not None:
        image = match_colours(image, look.style, look.style_amount)
    return _finished(image, look)


_RENDERERS: dict[Action, Callable[[GenerationRequest, int], Image.Image]] = {
    Action.IMAGINE: _imagine,
    Action.IMG2IMG: _img2img,
    Action.UPSCALE: _upscale,
    Action.VARIATION: _variation,
    Action.ZOOM_OUT: _outpaint,
    Action.PAN: _outpaint,
    Action.VARY_REGION: _vary_region,
    Action.BLEND: _blend,
}
