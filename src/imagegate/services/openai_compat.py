"""The OpenAI-compatible images API as imagegate jobs: a generation, an edit or a
variation becomes one durable job (rate-limited, charged, in the job API), and the
answer waits for that job's end on the event feed, never by polling the queue.

What OpenAI's requests become (docs/openai-compat.md):
- generations → an ``imagine`` job of the size's ratio and the quality's mode;
- edits, one image, no mask → img2img of it (``init_image``, strength 0.6);
- edits, one image and a mask → a ``vary_region`` job with no parent: only the mask's
  transparent pixels are repainted, the rest is kept;
- edits, several images → a ``blend`` of them, led by the prompt;
- variations → img2img of the image with a neutral prompt, strength 0.6."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from imagegate.domain.actions import BLEND_MAX
from imagegate.domain.jobs import JobAction, JobStatus
from imagegate.domain.openai_images import (
    DEFAULT_MODEL,
    Family,
    OpenAIParamError,
    Shape,
    always_b64,
    shape,
)
from imagegate.domain.rates import Allowance
from imagegate.domain.records import JobRecord, Principal, StoredImage, UploadRecord
from imagegate.runtime import Runtime
from imagegate.services import event_feed, sources
from imagegate.services import jobs as jobs_service
from imagegate.services import uploads as uploads_service
from imagegate.services.event_feed import EventFeed
from imagegate.services.jobs import NewJob, Presenter, Submitted
from imagegate.services.submission import JobSpec, resolve_for

VARIATION_PROMPT = "a variation of the image: the same subject, composition and style"
EDIT_STRENGTH = 0.6


class OpenAIFailure(Exception):
    """An answer in OpenAI's error shape: its HTTP status, ``type``, ``param``, ``code``."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = (
            status, message, type_, param, code,
        )  # fmt: skip
        self.headers = headers or {}


@dataclass(frozen=True)
class ImageRequest:
    """The fields every /v1 images request shares, as the client sent them."""

    prompt: str
    model: str | None = None
    n: int = 1
    size: str | None = None
    quality: str | None = None
    response_format: str | None = None
    output_format: str | None = None
    output_compression: int | None = None
    background: str | None = None
    user: str | None = None
    stream: bool = False


@dataclass(frozen=True)
class Upload:
    """An image file of a multipart request: its bytes, declared type and form field."""

    data: bytes
    content_type: str | None
    field: str


@dataclass(frozen=True)
class Pending:
    """A job made for a request, with what its answer will need."""

    job_id: str
    model: str
    shape: Shape
    b64: bool
    output_format: str
    # Where the workspace stands against the job rate (the answer's RateLimit headers).
    rate_limit: Allowance | None = None


@dataclass(frozen=True)
class Finished:
    """The job of a request, ended well, and its images in order."""

    job: JobRecord
    pending: Pending
    images: list[StoredImage] = field(default_factory=list)


def _model(rt: Runtime, request: ImageRequest, default: str = DEFAULT_MODEL) -> tuple[str, str]:
    name = request.model or default
    target = rt.settings.openai_models_map.get(name)
    if target is None:
        known = ", ".join(sorted(rt.settings.openai_models_map))
        raise OpenAIFailure(
            400, f"Invalid value for 'model' = {name}. Models served here: {known}",
            param="model", code="invalid_value",
        )  # fmt: skip
    return name, target


def _checked(
    rt: Runtime, request: ImageRequest, default: str = DEFAULT_MODEL
) -> tuple[str, str, Shape, str]:
    name, target = _model(rt, request, default)
    try:
        s = shape(name, request.size, request.quality, request.n)
    except OpenAIParamError as error:
        raise OpenAIFailure(400, str(error), param=error.param, code="invalid_value") from error
    output_format = request.output_format or "png"
    if s.family is not Family.GPT_IMAGE and output_format != "png":
        raise OpenAIFailure(
            400, f"output_format is only supported for gpt-image models, not {name}",
            param="output_format", code="invalid_value",
        )  # fmt: skip
    if request.stream and s.family is not Family.GPT_IMAGE:
        raise OpenAIFailure(
            400, f"streaming is only supported for gpt-image models, not {name}",
            param="stream", code="invalid_value",
        )  # fmt: skip
    if request.background == "transparent":
        raise OpenAIFailure(
            400, "imagegate's providers make opaque images; background 'transparent' is "
            "not supported (use 'auto' or 'opaque')", param="background", code="invalid_value",
        )  # fmt: skip
    if request.output_compression is not None and output_format == "png":
        raise OpenAIFailure(
            400, "output_compression applies to jpeg and webp only",
            param="output_compression", code="invalid_value",
        )  # fmt: skip
    return name, target, s, output_format


def _b64(request: ImageRequest, name: str) -> bool:
    if always_b64(name) or request.stream:
        return True
    return request.response_format == "b64_json"


def _spec(request: ImageRequest, target: str, s: Shape, output_format: str, kind: str) -> JobSpec:
    # OpenAI's output_compression (0-100, lower makes smaller files; 100 by default) is
    # the encoder's quality.
    compression = request.output_compression
    return JobSpec(
        prompt=request.prompt, ratio=s.ratio, variations=request.n, mode=s.mode.value,
        model=target, output_format=output_format, user=request.user,
        output_quality=None if compression is None else max(1, compression),
        metadata={"openai_endpoint": kind, "openai_model": request.model or DEFAULT_MODEL},
    )  # fmt: skip


async def generate(
    rt: Runtime, principal: Principal, request: ImageRequest, present: Presenter
) -> Pending:
    """``POST /v1/images/generations``: one imagine job, answered when it ends."""
    name, target, s, output_format = _checked(rt, request)
    spec = _spec(request, target, s, output_format, "generations")
    submitted = await jobs_service.submit(rt, principal, spec, present)
    return Pending(
        submitted.job_id, name, s, _b64(request, name), output_format, submitted.rate_limit
    )


async def edit(
    rt: Runtime,
    principal: Principal,
    request: ImageRequest,
    images: Sequence[Upload],
    mask: Upload | None,
    present: Presenter,
) -> Pending:
    """``POST /v1/images/edits``: img2img, a masked repaint or a blend (module docstring)."""
    name, target, s, output_format = _checked(rt, request)
    if not images:
        raise OpenAIFailure(
            400, "an image is required", param="image", code="missing_required_parameter"
        )
    if len(images) > BLEND_MAX:
        raise OpenAIFailure(400, f"at most {BLEND_MAX} images", param="image", code="invalid_value")
    if mask is not None and len(images) > 1:
        raise OpenAIFailure(
            400, "a mask applies to a single image; send one image with it",
            param="mask", code="invalid_value",
        )  # fmt: skip
    spec = _spec(request, target, s, output_format, "edits")
    async with uploads_service.Provisional(rt, principal) as made:
        stored = [await _store(made, u) for u in images]
        if mask is not None:
            mask_upload = await _store(made, mask)
            submitted = await _masked_edit(rt, principal, spec, stored[0], mask_upload, present)
        elif len(stored) > 1:
            spec = replace(spec, action="blend", images=tuple(u.id for u in stored))
            submitted = await jobs_service.submit(rt, principal, spec, present)
        else:
            spec = replace(spec, init_image=stored[0].id, strength=EDIT_STRENGTH)
            submitted = await jobs_service.submit(rt, principal, spec, present)
    return Pending(
        submitted.job_id, name, s, _b64(request, name), output_format, submitted.rate_limit
    )


async def variation(
    rt: Runtime, principal: Principal, request: ImageRequest, image: Upload, present: Presenter
) -> Pending:
    """``POST /v1/images/variations``: img2img of the image with a neutral prompt."""
    name, target, s, output_format = _checked(rt, request, default="dall-e-2")
    spec = _spec(request, target, s, output_format, "variations")
    async with uploads_service.Provisional(rt, principal) as made:
        upload = await _store(made, image)
        spec = replace(spec, prompt=VARIATION_PROMPT, init_image=upload.id,
                       strength=EDIT_STRENGTH)  # fmt: skip
        submitted = await jobs_service.submit(rt, principal, spec, present)
    return Pending(
        submitted.job_id, name, s, _b64(request, name), output_format, submitted.rate_limit
    )


async def _store(made: uploads_service.Provisional, upload: Upload) -> UploadRecord:
    return await made.from_bytes(upload.data, upload.content_type, field=upload.field)


async def _masked_edit(
    rt: Runtime,
    principal: Principal,
    spec: JobSpec,
    image: UploadRecord,
    mask: UploadRecord,
    present: Presenter,
) -> Submitted:
    """A ``vary_region`` job without a parent: the upload is its source, the mask (its
    transparent pixels, OpenAI's convention; engine.inputs normalises it) what is
    repainted. Its images keep the source's size, as a repaint does."""
    resolved = await resolve_for(rt, principal, spec)
    params = {
        **resolved.params,
        "action": JobAction.VARY_REGION.value,
        "source": sources.reference(image),
        "mask": sources.reference(mask),
        "width": image.width,
        "height": image.height,
        # The workspace's compliance floor binds this job as it binds any other.
        **jobs_service.workspace_params(rt, principal),
    }
    requested = str(params.get("requested_model") or "auto")
    choice = jobs_service.choose_model(rt, requested, params, JobAction.VARY_REGION)
    params["model"] = choice.name
    params["routing"] = rt.providers.config.policy_for(principal.workspace_name)
    estimate = jobs_service.estimate_credits(
        rt, choice, resolved.prompt, resolved.negative_prompt, params, JobAction.VARY_REGION
    )
    new = NewJob(
        action=JobAction.VARY_REGION, prompt=resolved.prompt,
        negative_prompt=resolved.negative_prompt, params=params, choice=choice,
        estimate=estimate, user=spec.user, metadata=spec.metadata,
    )  # fmt: skip
    return await jobs_service.record_and_queue(rt, principal, new, present, None)


async def finish(rt: Runtime, feed: EventFeed, principal: Principal, pending: Pending) -> Finished:
    """Wait for the job's end (on the event feed); raise OpenAIFailure unless it
    completed."""
    job_id = pending.job_id
    await event_feed.wait_for_end(
        feed, rt, workspace_id=principal.workspace_id, job_id=job_id,
        timeout_s=rt.settings.openai_wait_s,
    )  # fmt: skip
    job = await jobs_service.get(rt, principal, job_id)
    if not job.status.is_terminal():
        raise OpenAIFailure(
            504, f"job {job_id} has not ended after {rt.settings.openai_wait_s} s; it goes on "
            f"and GET /api/image/jobs/{job_id} has it", type_="server_error", code="timeout",
        )  # fmt: skip
    if job.status is not JobStatus.COMPLETED:
        raise failure_for(job)
    images = sorted((i for i in job.images if i.kind == "image"), key=lambda i: i.index)
    return Finished(job, pending, images)


# Job error codes that mean the request, not the service, was at fault.
_CLIENT_FAULTS = frozenset({"provider_rejected", "validation_error", "input_missing"})
_UNAVAILABLE = frozenset({"provider_unavailable", "no_provider", "provider_rate_limited"})


def failure_for(job: JobRecord) -> OpenAIFailure:
    """How a job that did not complete is answered."""
    code = job.error_code or "job_failed"
    message = f"{job.error_message or 'the job failed'} (imagegate job {job.id})"
    if code == "content_policy_violation":
        return OpenAIFailure(
            400, "Your request was rejected by the safety system. " + message,
            type_="image_generation_user_error", code="moderation_blocked",
        )  # fmt: skip
    if code in _CLIENT_FAULTS:
        return OpenAIFailure(400, message, code=code)
    if job.status is JobStatus.CANCELED:
        return OpenAIFailure(409, f"imagegate job {job.id} was canceled", code="job_canceled")
    status = 503 if code in _UNAVAILABLE else 500
    return OpenAIFailure(status, message, type_="server_error", code=code)


async def image_bytes(rt: Runtime, image: StoredImage) -> str:
    """A stored image as base64, for ``b64_json``."""
    return base64.b64encode(await rt.storage.get(image.storage_key)).decode("ascii")
