"""Follow-ups on a finished job (``POST /api/image/jobs/{id}/actions``): upscale,
variation (remix with a prompt), reroll, zoom out, pan and vary region.

Each makes a new child job from one of the parent's images: the parent's prompt and
resolved parameters, the action's own values, and a reference to the source image in
storage (``engine.inputs`` reads it per attempt). Validation is complete before
anything is written: a refused action creates nothing."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, TypeVar

from imagegate.domain import actions as rules
from imagegate.domain.actions import Box, Direction, UpscaleMode, VariationStrength
from imagegate.domain.jobs import JobAction, JobStatus
from imagegate.domain.params import MAX_SEED, MAX_VARIATIONS, Mode, ParamError
from imagegate.domain.records import JobRecord, Principal, StoredImage
from imagegate.engine import routing
from imagegate.errors import InvalidRequest, InvalidState
from imagegate.providers.base import action_for_job
from imagegate.runtime import Runtime
from imagegate.services import jobs as jobs_service
from imagegate.services import moderation, quotas, webhooks
from imagegate.services import uploads as uploads_service
from imagegate.services.idempotency import IdempotentRequest
from imagegate.services.jobs import NewJob, Presenter, Submitted


@dataclass(frozen=True)
class ActionSpec:
    """An action request's fields as the client sent them (``None`` = not given)."""

    action: str
    index: int | None = None
    mode: str | None = None  # upscale: subtle | creative
    factor: float | None = None  # upscale: 2 | 4; zoom_out: 1.0-2.0
    strength: str | None = None  # variation: subtle | strong
    direction: str | None = None  # pan
    prompt: str | None = None  # remix: a new prompt for the child
    mask: dict[str, Any] | None = None  # vary_region: {"rectangles": [...]} | {"upload_id"}
    variations: int | None = None
    model: str | None = None
    webhook_url: str | None = None
    metadata: dict[str, str] | None = None


async def act(
    rt: Runtime,
    principal: Principal,
    job_id: str,
    spec: ActionSpec,
    present: Presenter,
    idempotency: IdempotentRequest | None = None,
) -> Submitted:
    """Create the child job ``spec`` asks for from job ``job_id``."""
    parent = await jobs_service.get(rt, principal, job_id)
    action = JobAction(spec.action)
    if parent.status is not JobStatus.COMPLETED:
        raise InvalidState(
            f"the job is {parent.status}; actions apply to completed jobs only", field="job_id"
        )
    if spec.webhook_url is not None:
        await webhooks.check_url(rt, spec.webhook_url, "webhook_url")
    try:
        prompt, params = await _child_params(rt, principal, parent, action, spec)
    except ParamError as error:
        raise InvalidRequest(str(error), field=error.field) from error
    if params.get("remix"):  # a new prompt: screened like a create's
        await moderation.screen_prompt(rt, principal, prompt, user=parent.user)
    params.update(jobs_service.workspace_params(rt, principal))
    params.update(
        quotas.check_job(
            rt, principal, mode=str(params.get("mode", "standard")), action=action.value,
            variations=int(params.get("variations", 1)),
        )
    )  # fmt: skip
    requested = spec.model or _inherited_model(rt, parent, params, action)
    params["requested_model"] = requested
    choice = jobs_service.choose_model(rt, requested, params, action)
    params["model"] = choice.name
    negative = parent.negative_prompt
    new = NewJob(
        action=action,
        prompt=prompt,
        negative_prompt=negative,
        params=params,
        choice=choice,
        estimate=jobs_service.estimate_credits(rt, choice, prompt, negative, params, action),
        user=parent.user,
        metadata=spec.metadata if spec.metadata is not None else {},
        webhook_url=spec.webhook_url or parent.webhook_url,
        parent_job_id=parent.id,
        root_job_id=parent.root_job_id or parent.id,
    )
    return await jobs_service.record_and_queue(rt, principal, new, present, idempotency)


def _inherited_model(
    rt: Runtime, parent: JobRecord, params: dict[str, Any], action: JobAction
) -> str:
    """The parent's requested model when it can do the action too (a chain stays on
    one model, as in Midjourney); else ``auto``, any provider able to."""
    wanted = str(parent.params.get("requested_model") or "auto")
    if wanted != "auto" and rt.providers.resolve(wanted) is not None:
        if routing.candidates_for(rt, {**params, "requested_model": wanted}, action):
            return wanted
    return "auto"


async def _child_params(
    rt: Runtime, principal: Principal, parent: JobRecord, action: JobAction, spec: ActionSpec
) -> tuple[str, dict[str, Any]]:
    """The child's prompt and resolved params. Raises ParamError naming the field."""
    if action in (JobAction.BLEND, JobAction.DESCRIBE, JobAction.IMAGINE):
        raise ParamError(
            "action", f"{action} is not a follow-up; create it with POST /api/image/jobs"
        )
    base = _inheritable(parent.params)
    prompt = (spec.prompt or "").strip() or parent.prompt
    if spec.prompt is not None and spec.prompt.strip():
        base["remix"] = True
    base["action"] = action.value
    if spec.variations is not None and not 1 <= spec.variations <= MAX_VARIATIONS:
        raise ParamError("variations", f"variations must be from 1 to {MAX_VARIATIONS}")
    variations = spec.variations or int(parent.params.get("variations", MAX_VARIATIONS))
    if action is JobAction.REROLL:
        if not parent.images and not parent.result_texts:
            raise ParamError("action", "this job made nothing to reroll")
        base["seed"] = secrets.randbelow(MAX_SEED + 1)
        base["variations"] = spec.variations or int(parent.params.get("variations", 1))
        # A reroll does what the parent did, again: an upscale re-upscales its source.
        base["reroll_of"] = action_for_job(parent.action, parent.params).value
        return prompt, base
    image = _source_image(parent, spec.index)
    source = {
        "job_id": parent.id, "index": image.index, "key": image.storage_key,
        "width": image.width, "height": image.height, "content_type": image.content_type,
    }  # fmt: skip
    base.update(source=source, source_index=image.index)
    base.pop("reroll_of", None)
    width, height = image.width, image.height
    seed = secrets.randbelow(MAX_SEED + 1)
    if action is JobAction.UPSCALE:
        mode = _choice(UpscaleMode, spec.mode or "subtle", "mode")
        factor = spec.factor if spec.factor is not None else 2
        if factor != int(factor):
            raise ParamError("factor", "an upscale factor is 2 or 4")
        out_w, out_h = rules.upscale_size(width, height, int(factor))
        # An upscale renders a final, whatever the source was (draft previews are free
        # to explore; the image kept is paid for).
        base.update(
            mode=Mode.STANDARD.value, variations=1, width=out_w, height=out_h,
            upscale_factor=int(factor), upscale_mode=mode.value,
            seed=image.seed if image.seed is not None else seed,
        )  # fmt: skip
        return prompt, base
    base.update(variations=variations, seed=seed, width=width, height=height)
    if action is JobAction.VARIATION:
        strength = _choice(VariationStrength, spec.strength or "strong", "strength")
        base.update(strength=strength.strength, variation_strength=strength.value)
    elif action is JobAction.ZOOM_OUT:
        canvas = rules.zoom_out_canvas(width, height, float(spec.factor or 2.0))
        base.update(canvas=canvas.to_dict(), zoom_factor=float(spec.factor or 2.0))
    elif action is JobAction.PAN:
        if spec.direction is None:
            raise ParamError("direction", "pan needs a direction: left, right, up or down")
        direction = _choice(Direction, spec.direction, "direction")
        canvas = rules.pan_canvas(width, height, direction)
        base.update(
            canvas=canvas.to_dict(), direction=direction.value,
            width=canvas.width, height=canvas.height,
        )  # fmt: skip
    elif action is JobAction.VARY_REGION:
        base["mask"] = await _mask(rt, principal, spec.mask, width, height)
    return prompt, base


# What a child keeps of its parent's resolved params; the rest (inputs, action values,
# results such as ignored_params) is the child's own.
_INHERITED = (
    "ratio", "style", "variations", "seed", "mode", "width", "height", "output_format",
    "output_quality", "routing", "preset", "provider_options", "tuning", "style_weight",
    "image_weight", "style_reference", "version",
)  # fmt: skip


def _inheritable(params: dict[str, Any]) -> dict[str, Any]:
    kept = {k: params[k] for k in _INHERITED if k in params}
    # A reroll of an img2img or blend job keeps its inputs.
    for key in ("source", "sources", "strength", "mask", "canvas", "direction",
                "upscale_factor", "upscale_mode", "reroll_of"):  # fmt: skip
        if key in params:
            kept[key] = params[key]
    return kept


def _source_image(parent: JobRecord, index: int | None) -> StoredImage:
    images = [i for i in parent.images if i.kind == "image"]
    if not images:
        raise ParamError("index", "this job has no images to act on")
    if index is None:
        raise ParamError("index", f"index is required: which image, 1 to {len(images)}")
    found = next((i for i in images if i.index == index), None)
    if found is None:
        raise ParamError("index", f"index must be from 1 to {len(images)}, got {index}")
    return found


_E = TypeVar("_E", UpscaleMode, VariationStrength, Direction)


def _choice(kind: type[_E], value: str, field: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        raise ParamError(field, f"{field} must be one of {choices}, got {value!r}") from None


async def _mask(
    rt: Runtime, principal: Principal, mask: dict[str, Any] | None, width: int, height: int
) -> dict[str, Any]:
    if not mask:
        raise ParamError("mask", "vary_region needs a mask: rectangles or an upload_id")
    if "rectangles" in mask:
        boxes = [Box(r["left"], r["top"], r["width"], r["height"]) for r in mask["rectangles"]]
        rules.check_rectangles(boxes, width, height)
        return {"rectangles": [b.to_dict() for b in boxes]}
    upload = await uploads_service.get(rt, principal, str(mask["upload_id"]))
    return {
        "upload_id": upload.id, "key": upload.storage_key, "width": upload.width,
        "height": upload.height, "content_type": upload.content_type,
    }  # fmt: skip
