"""The images a create request names (img2img's ``init_image``, a blend's or a
describe's ``images``, a prompt's leading image URL or ``--sref``), looked up or
fetched as uploads and written into the job's params as references
(``engine.inputs`` reads them per attempt)."""

from __future__ import annotations

from typing import Any

from imagegate.domain.actions import MAX_OUTPUT_SIDE, BlendDimensions
from imagegate.domain.params import Mode, Ratio, pixel_size
from imagegate.domain.records import Principal, UploadRecord
from imagegate.errors import InvalidRequest
from imagegate.runtime import Runtime
from imagegate.services import uploads as uploads_service
from imagegate.services.submission import JobSpec, Resolved

DEFAULT_STRENGTH = 0.6


def reference(upload: UploadRecord) -> dict[str, Any]:
    """How a job's params point at an upload."""
    return {
        "upload_id": upload.id, "key": upload.storage_key, "width": upload.width,
        "height": upload.height, "content_type": upload.content_type,
    }  # fmt: skip


def strength_from_weight(image_weight: float | None) -> float:
    """Midjourney's ``--iw`` (0-3, default 1: how much the image counts against the
    text) as an img2img strength (how far the result may move from it):
    1 - iw / 3, kept in 0.05-1, so ``--iw 1`` is about 0.67 and ``--iw 3`` the image."""
    if image_weight is None:
        return DEFAULT_STRENGTH
    return round(min(1.0, max(0.05, 1 - image_weight / 3)), 3)


async def attach(
    rt: Runtime, principal: Principal, spec: JobSpec, resolved: Resolved
) -> dict[str, Any]:
    """The params the request's images add (or change)."""
    action = spec.action or "imagine"
    refs = resolved.refs
    params: dict[str, Any] = {}
    if action == "imagine":
        init = spec.init_image or refs.get("init_image")
        if init:
            field = "init_image" if spec.init_image else "prompt"
            upload = await uploads_service.resolve_image_ref(rt, principal, init, field)
            params["source"] = reference(upload)
            params["strength"] = (
                spec.strength
                if spec.strength is not None
                else strength_from_weight(resolved.params.get("image_weight"))
            )
    elif action == "blend":
        uploads = [
            await uploads_service.resolve_image_ref(rt, principal, ref, f"images[{i}]")
            for i, ref in enumerate(spec.images)
        ]
        params["sources"] = [reference(u) for u in uploads]
        if spec.dimensions is not None and spec.ratio is not None:
            raise InvalidRequest("give dimensions or ratio for a blend, not both", field="ratio")
        if spec.ratio is None:
            shape = BlendDimensions(spec.dimensions or BlendDimensions.SQUARE)
            width, height = pixel_size(Ratio.parse(shape.ratio), Mode(resolved.params["mode"]))
            params.update(ratio=shape.ratio, width=width, height=height, dimensions=shape.value)
    elif action == "describe":
        upload = await uploads_service.resolve_image_ref(rt, principal, spec.images[0], "images[0]")
        # The size routing checks providers against: the image's, within the longest
        # side any action makes (an upload may be larger; describing reads, not makes).
        scale = min(1.0, MAX_OUTPUT_SIDE / max(upload.width, upload.height))
        width, height = max(1, int(upload.width * scale)), max(1, int(upload.height * scale))
        params.update(source=reference(upload), variations=1, width=width, height=height)
    sref = refs.get("style_reference")
    if sref:
        upload = await uploads_service.resolve_image_ref(rt, principal, sref, "prompt")
        params["style_reference"] = reference(upload)
    return params
