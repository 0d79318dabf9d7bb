"""The provider Protocol every adapter implements, and the plain data it exchanges."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from imagegate.domain.params import Mode, OutputFormat, variation_seeds

ProgressCallback = Callable[[float], Awaitable[None]]
"""Called with the fraction done, 0.0 to 1.0, as a provider makes progress."""


@dataclass(frozen=True)
class GenerationRequest:
    """What to make. ``seeds`` holds one seed per requested image."""

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
        self, request: GenerationRequest, progress: ProgressCallback
    ) -> GenerationResult:
        """Make the images, calling ``progress`` as work advances."""
        ...
