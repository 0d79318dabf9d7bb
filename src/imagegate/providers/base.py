"""The provider Protocol every adapter implements, and the plain data it exchanges."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from imagegate.domain.actions import Canvas, Direction, UpscaleMode
from imagegate.domain.params import Mode, OutputFormat, variation_seeds

ProgressCallback = Callable[[float], Awaitable[None]]
"""Called with the fraction done, 0.0 to 1.0, as a provider makes progress."""


class Action(StrEnum):
    """What a provider is asked to do: the capability routing filters providers by.

    The public actions (``domain.jobs.JobAction``) map onto these: a ``reroll`` is an
    ``imagine`` (or ``img2img``) again; an imagine with an ``init_image`` is ``img2img``.
    The request's fields each action reads are listed on :class:`GenerationRequest`."""

    IMAGINE = "imagine"  # text → images
    IMG2IMG = "img2img"  # source_image + strength + prompt → images
    UPSCALE = "upscale"  # source_image → one image of width x height (upscale_factor x)
    VARIATION = "variation"  # source_image + strength (+ a new prompt: remix) → images
    ZOOM_OUT = "zoom_out"  # source_image placed in canvas.source, the rest painted
    PAN = "pan"  # the same, the canvas extended on one side
    VARY_REGION = "vary_region"  # source_image + mask: only the masked pixels repainted
    BLEND = "blend"  # source_images (2-5) → images of width x height
    DESCRIBE = "describe"  # source_image → texts (four prompt suggestions)


def action_for_job(job_action: str, params: dict[str, Any]) -> Action:
    """The provider action that does a job of ``job_action`` with ``params``."""
    if job_action in ("imagine", "reroll"):
        return Action.IMG2IMG if params.get("source") else Action.IMAGINE
    return Action(job_action)


# Actions that read ``source_image``.
SOURCE_ACTIONS = frozenset(
    {
        Action.IMG2IMG,
        Action.UPSCALE,
        Action.VARIATION,
        Action.ZOOM_OUT,
        Action.PAN,
        Action.VARY_REGION,
        Action.DESCRIBE,
    }
)


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
    """What to make. ``seeds`` holds one seed per requested image; ``width`` and
    ``height`` are always the size of the images to return.

    By action (:class:`Action`):

    - ``source_image`` (encoded PNG/JPEG/WebP bytes): every action in ``SOURCE_ACTIONS``;
    - ``strength`` (0..1, how far from the source the result may move): ``img2img``
      and ``variation``;
    - ``upscale_factor`` (2 or 4) and ``upscale_mode``: ``upscale``;
    - ``canvas`` (the output size and the box the source is scaled into; the rest is
      to paint): ``zoom_out`` and ``pan`` (``direction`` for the latter);
      ``imaging.masks.outpaint_inputs`` builds the padded image + mask pair that
      edit/inpaint APIs take;
    - ``mask`` (a PNG of the source's size, white = repaint, black = keep):
      ``vary_region``;
    - ``source_images`` (2-5 encoded images): ``blend``;
    - ``style_image`` / ``style_weight`` (``--sref``/``--sw``): any action, for
      providers that take a style reference (``--iw`` reaches every provider as the
      img2img ``strength``: services.sources);
    - ``tuning``: Midjourney's knobs with no portable meaning (``stylize``, ``chaos``,
      ``weird``, ``tile``, ``quality``, ``raw``); an adapter maps those its provider has
      an equivalent for and lists them in ``Capabilities.tuning``; the rest are
      reported on the job as ``ignored_params``;
    - ``options``: per-provider options from the job's style preset (the adapter's
      own names), applied over the adapter's configured options;
    - ``source_index`` (1-based: which of the parent's images ``source_image`` is) and
      ``parent_provider_job_id`` (the parent job's ``provider_job_id``, set only when
      the parent ran on the provider this attempt runs on): follow-ups, for providers
      whose actions are buttons on their own earlier job (midjourney_proxy)."""

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
    upscale_mode: UpscaleMode | None = None
    strength: float | None = None
    canvas: Canvas | None = None
    direction: Direction | None = None
    mask: bytes | None = field(default=None, repr=False)
    source_images: tuple[bytes, ...] = field(default=(), repr=False)
    style_image: bytes | None = field(default=None, repr=False)
    style_weight: int | None = None
    tuning: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    source_index: int | None = None
    parent_provider_job_id: str | None = None

    @classmethod
    def from_params(
        cls,
        prompt: str,
        negative_prompt: str | None,
        params: dict[str, Any],
        model: str,
        attempt: int = 1,
        job_action: str = "imagine",
        provider: str | None = None,
    ) -> GenerationRequest:
        """The request for a job's resolved ``params`` (as stored with the job), without
        the image bytes its inputs name (``engine.inputs`` loads those). ``provider``
        (the configured name) picks that provider's entry of the preset's options."""
        by_provider = params.get("provider_options") or {}
        canvas = params.get("canvas")
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
            action=action_for_job(job_action, params),
            upscale_factor=params.get("upscale_factor"),
            upscale_mode=UpscaleMode(params["upscale_mode"]) if "upscale_mode" in params else None,
            strength=params.get("strength"),
            canvas=Canvas.from_dict(canvas) if canvas else None,
            direction=Direction(params["direction"]) if "direction" in params else None,
            style_weight=params.get("style_weight"),
            tuning=dict(params.get("tuning") or {}),
            options=dict(by_provider.get(provider) or {}) if provider else {},
            source_index=params.get("source_index"),
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
    # Text results (``describe``): four prompt suggestions, best first.
    texts: tuple[str, ...] = ()


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
    # The GenerationRequest.tuning keys this provider maps onto its API.
    tuning: frozenset[str] = frozenset()
    # Whether it takes a style reference image (--sref).
    style_reference: bool = False


_CREDITS_PER_IMAGE = {Mode.DRAFT: 1, Mode.STANDARD: 2}


def standard_credits(request: GenerationRequest) -> int:
    """imagegate's own unit, the same for every provider (money is in the configured
    price table, not here). Drafts are the cheap previews, finals what is paid for:

    - 1 credit per draft image, 2 per standard (final) image, for every action that
      makes images from a prompt or a source (imagine, img2img, variation, zoom, pan,
      vary region, blend);
    - an upscale is always a final: 2 credits at x2, 4 at x4, whatever the source's mode;
    - a describe: 1 credit."""
    if request.action is Action.DESCRIBE:
        return 1
    if request.action is Action.UPSCALE:
        return _CREDITS_PER_IMAGE[Mode.STANDARD] * max(1, (request.upscale_factor or 2) // 2)
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
