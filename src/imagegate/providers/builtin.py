"""The built-in provider: renders offline with :mod:`imagegate.render`, so the
service works, and its tests run, without any external API. Two knobs make it a test
double too: ``latency_ms`` (a slow provider) and ``fault_marker`` (a flaky one)."""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import sys
from concurrent.futures import Executor, ProcessPoolExecutor

from imagegate.domain.params import STYLES, Mode
from imagegate.imaging import encode
from imagegate.providers.base import (
    Capabilities,
    Correlation,
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    ProgressCallback,
    standard_credits,
)
from imagegate.providers.errors import RetryableProviderError
from imagegate.render import render_image

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
    ) -> None:
        """``latency_ms`` is added to every request, spread over the images.
        A prompt containing ``fault_marker`` (any case) fails with a retryable error on
        attempts up to ``fault_attempts``, then succeeds: chaos testing for retries.
        ``processes`` > 0 renders in that many worker processes instead of threads."""
        self.latency_ms = latency_ms
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


def render_encoded(request: GenerationRequest, seed: int) -> bytes:
    """One image of ``request`` with ``seed``, encoded as it asks (runs in a worker)."""
    image = render_image(
        request.prompt, request.negative_prompt, request.style, seed, request.width,
        request.height,
    )  # fmt: skip
    return encode(image, request.output_format)
