"""What fal's models for the workflow actions take and answer: a table of the known
model ids (their kind), a default kind per action for any other id, the input body
of each kind, and the reading of their outputs.

Kinds: ``i2i`` (FLUX dev image-to-image: ``image_url`` + ``strength``), ``fill``
(FLUX pro Fill: ``image_url`` + ``mask_url``), ``esrgan`` (``image_url`` + ``scale``),
``clarity`` (Clarity upscaler: ``upscale_factor``, a prompt, adds detail) and
``caption`` (Florence-2 captions: ``image_url`` → ``results`` text)."""

from __future__ import annotations

import base64
from typing import Any, Literal

from imagegate.domain.params import OutputFormat
from imagegate.imaging import outpaint_inputs
from imagegate.providers.base import Action, GenerationRequest
from imagegate.providers.errors import PermanentProviderError, ProviderError
from imagegate.providers.http import decode_image

Kind = Literal["i2i", "fill", "esrgan", "clarity", "caption"]

IMG2IMG_MODEL = "fal-ai/flux/dev/image-to-image"
FILL_MODEL = "fal-ai/flux-pro/v1/fill"
UPSCALE_MODEL = "fal-ai/esrgan"
CREATIVE_UPSCALE_MODEL = "fal-ai/clarity-upscaler"
DESCRIBE_MODEL = "fal-ai/florence-2-large/detailed-caption"
DEFAULT_STRENGTH = 0.6
ESRGAN_WEIGHTS = "RealESRGAN_x4plus"
# How many images one request of a kind makes (FLUX's num_images: 1 to 4).
MAX_IMAGES: dict[Kind, int] = {"i2i": 4, "fill": 4, "esrgan": 1, "clarity": 1, "caption": 0}

KINDS: dict[str, Kind] = {
    IMG2IMG_MODEL: "i2i",
    "fal-ai/flux-lora/image-to-image": "i2i",
    FILL_MODEL: "fill",
    "fal-ai/flux-lora-fill": "fill",
    UPSCALE_MODEL: "esrgan",
    CREATIVE_UPSCALE_MODEL: "clarity",
    DESCRIBE_MODEL: "caption",
    "fal-ai/florence-2-large/caption": "caption",
    "fal-ai/florence-2-large/more-detailed-caption": "caption",
}
ACTION_KINDS: dict[Action, Kind] = {
    Action.IMG2IMG: "i2i",
    Action.VARIATION: "i2i",
    Action.UPSCALE: "esrgan",
    Action.VARY_REGION: "fill",
    Action.ZOOM_OUT: "fill",
    Action.PAN: "fill",
    Action.DESCRIBE: "caption",
}


def kind_of(model_id: str, action: Action) -> Kind:
    """The table's kind for ``model_id``, else the default of ``action``."""
    return KINDS.get(model_id.strip("/"), ACTION_KINDS.get(action, "i2i"))


def action_body(
    request: GenerationRequest, kind: Kind, prompt: str, safety_checker: bool
) -> dict[str, Any]:
    """The input of an action's request on a model of ``kind``."""
    image = _data_uri(request, request.source_image)
    if kind == "caption":
        return {"image_url": image}
    if kind == "esrgan":
        return {"image_url": image, "scale": request.upscale_factor or 2,
                "model": ESRGAN_WEIGHTS, "output_format": "png"}  # fmt: skip
    if kind == "clarity":
        return {"image_url": image, "prompt": prompt, "upscale_factor": request.upscale_factor or 2,
                "seed": request.seeds[0] if request.seeds else 0,
                "enable_safety_checker": safety_checker}  # fmt: skip
    if not 1 <= len(request.seeds) <= MAX_IMAGES[kind]:
        raise PermanentProviderError(
            f"fal: a {kind} model makes 1 to {MAX_IMAGES[kind]} images per request"
        )
    body: dict[str, Any] = {
        "prompt": prompt,
        "num_images": len(request.seeds),
        "seed": request.seeds[0],
        "enable_safety_checker": safety_checker,
    }
    if kind == "i2i":
        strength = DEFAULT_STRENGTH if request.strength is None else request.strength
        # fal's FLUX image-to-image takes strength 0.01 to 1.
        return body | {"image_url": image, "strength": max(0.01, strength)}
    fmt = "png" if request.output_format is not OutputFormat.JPEG else "jpeg"
    return body | _fill_images(request) | {"output_format": fmt}


def _fill_images(request: GenerationRequest) -> dict[str, str]:
    """A region repaint: the source and the job's mask. Zoom and pan: the source on
    the larger canvas and a mask white outside it."""
    source = request.source_image or b""
    if request.action is Action.VARY_REGION:
        if not request.mask:
            raise PermanentProviderError("fal: vary_region needs a mask")
        image, mask = source, request.mask
    else:
        if request.canvas is None:
            raise PermanentProviderError(f"fal: {request.action} needs a canvas")
        image, mask = outpaint_inputs(source, request.canvas)
    return {"image_url": _data_uri(request, image), "mask_url": _data_uri(request, mask)}


def output_items(result: dict[str, Any], kind: Kind) -> list[Any]:
    """The image entries of a result: the upscalers answer one ``image``, the
    others an ``images`` list."""
    if kind in ("esrgan", "clarity"):
        return [result.get("image")]
    items = result.get("images")
    return items if isinstance(items, list) else []


def texts_from(result: dict[str, Any], request_id: str) -> tuple[str, ...]:
    """Four prompt suggestions from Florence-2's caption (``results``): its first
    sentence as a prompt, the whole caption, and the first sentence in two
    renderings. Florence's detailed captions are several sentences ("The image shows
    … . In the background, …"); the first names the subject."""
    text = result.get("results")
    if not isinstance(text, str) or not text.strip():
        raise ProviderError(
            f"fal result {request_id}: no caption in {str(result)[:200]!r}",
            provider_job_id=request_id,
        )
    caption = " ".join(text.split())
    first = caption.split(". ", 1)[0].rstrip(".")
    for opening in ("The image shows ", "The image is ", "This image shows "):
        if first.startswith(opening):
            first = first.removeprefix(opening)
            break
    return (
        first,
        caption,
        f"{first}, photograph, natural light, high detail",
        f"{first}, digital painting, dramatic lighting",
    )


def _data_uri(request: GenerationRequest, data: bytes | None) -> str:
    """fal takes a data URI wherever it takes a file URL."""
    if not data:
        raise PermanentProviderError(f"fal: {request.action} needs a source image")
    try:
        content_type = decode_image(data, 0, "fal: input image").content_type
    except ProviderError as error:  # the same bytes will never decode: no retry helps
        raise PermanentProviderError(str(error)) from error
    return f"data:{content_type};base64,{base64.b64encode(data).decode()}"
