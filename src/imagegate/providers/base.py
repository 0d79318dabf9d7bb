"""The provider Protocol every adapter implements, and the plain data it exchanges."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from imagegate.domain.params import Mode, OutputFormat, variation_seeds

ProgressCallback = Callable[[float], Awaitable[None]]
"""Called with the fraction done, 0.0 to 1.0, as a provider makes progress."""


class Action(StrEnum):
    """What a provider is asked to do. ``imagine`` makes images from the prompt;
    ``upscale`` enlarges ``source_image``; ``vary`` makes variations of it."""

    IMAGINE = "imagine"
    UPSCALE = "upscale"
    VARY = "vary"


class Correlation(Protocol):
    """The job's link to the provider's own job id.

    An adapter for a provider that runs jobs asynchronously calls :meth:`record` as
    soon as the provider has given it an id, before it waits for the result. After a
    crash, the next attempt finds that id in :attr:`existing` and polls it instead of
    submitting (and paying for) the job again."""

    @property
    def existing(self) -> str | None:
        """The provider job id an earlier attempt of this job recorded, if any."""
        ...

    async def record(self, provider_job_id: str) -> None:
        """Persist ``provider_job_id`` for this job, durably, before returning."""
        ...


class NoCorrelation:
    """For callers with nothing to resume (tests, one-off calls)."""

    def __init__(self, existing: str | None = None) -> None:
        self._existing = existing
        self.recorded: list[str] = []

    @property
    def existing(self) -> str | None:
        return self._existing

    async def record(self, provider_job_id: str) -> None:
        self.recorded.append(provider_job_id)


@dataclass(frozen=True)
class GenerationRequest:
    """What to make. ``seeds`` holds one seed per requested image.

    For ``upscale`` and ``vary``, ``source_image`` holds the encoded input image;
    ``upscale_factor`` and ``strength`` (0..1, how far a variation may move) apply to
    those actions only."""

    prompt: str
    negative_prompt: str | None
    width: int
    height: int
    seeds: tuple[int, ...]
    style: str
    mode: Mode
    model: str
    attempt: int = 1
    output_format: OutputFormat = OutputFormat.PNG
    action: Action = Action.IMAGINE
    source_image: bytes | None = field(default=None, repr=False)
    upscale_factor: int | None = None
    strength: float | None = None

    @classmethod
    def from_params(
        cls,
        prompt: str,
        negative_prompt: str | None,
        params: dict[str, Any],
        model: str,
        attempt: int = 1,
    ) -> GenerationRequest:
        """The request for a job's resolved ``params`` (as stored with the job)."""
        return cls(
            prompt=prompt,
            negative_prompt=negative_prompt,
            width=int(params["width"]),
            height=int(params["height"]),
            seeds=tuple(variation_seeds(int(params["seed"]), int(params["variations"]))),
            style=str(params["style"]),
            mode=Mode(params["mode"]),
            model=model,
            attempt=attempt,
            output_format=OutputFormat(params.get("output_format", OutputFormat.PNG)),
        )


@dataclass(frozen=True)
class GeneratedImage:
    """One finished image, already encoded."""

    data: bytes
    content_type: str
    width: int
    height: int
    seed: int


@dataclass(frozen=True)
class GenerationResult:
    images: tuple[GeneratedImage, ...]
    provider_job_id: str | None = None
    cost_usd: float = 0.0


@dataclass(frozen=True)
class Capabilities:
    models: tuple[str, ...]
    max_images: int
    modes: tuple[Mode, ...]
    styles: tuple[str, ...]
    actions: tuple[Action, ...] = (Action.IMAGINE,)
    # Whether the provider honours a seed (same seed, same image).
    seeds: bool = True
    negative_prompt: bool = True
    max_pixels: int = 4096 * 4096


_CREDITS_PER_IMAGE = {Mode.DRAFT: 1, Mode.STANDARD: 2}


def standard_credits(request: GenerationRequest) -> int:
    """imagegate's own unit, the same for every provider: 1 credit per draft image,
    2 per standard one (money is in the configured price table, not here)."""
    return _CREDITS_PER_IMAGE[request.mode] * max(1, len(request.seeds))


class Provider(Protocol):
    """An image provider adapter.

    Adapters translate a :class:`GenerationRequest` into the provider's API and back.
    They never touch the database, storage or webhooks, and raise only the types in
    :mod:`imagegate.providers.errors`.
    """

    name: str

    def capabilities(self) -> Capabilities:
        """What this provider can do."""
        ...

    def estimate_credits(self, request: GenerationRequest) -> int:
        """Credits a request will cost, known before it is submitted."""
        ...

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, correlation: Correlation
    ) -> GenerationResult:
        """Make the images, calling ``progress`` as work advances. An adapter whose
        provider hands out job ids records each through ``correlation`` at once, and
        resumes ``correlation.existing`` instead of submitting again."""
        ...


@runtime_checkable
class Cancellable(Protocol):
    """A provider whose API cancels one of its jobs (Replicate, fal). The runner calls
    it for a job canceled while its provider job runs, so the provider stops working
    (and charging) for it; interrupting our side alone would leave it running there."""

    async def cancel(self, provider_job_id: str, model: str | None = None) -> object:
        """Ask the provider to cancel ``provider_job_id`` (a job of ``model``)."""
        ...
