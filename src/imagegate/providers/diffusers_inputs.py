"""What the diffusers adapter hands each pipeline, per action, and what it does to the
pipeline's images after (pure Pillow: no torch here).

- ``imagine``: the text-to-image pipeline at the snapped size;
- ``img2img`` and ``variation``: the image-to-image pipeline, the source cropped and
  resized to the snapped size, ``strength`` the request's;
- ``vary_region``: the inpainting pipeline with the request's mask;
- ``zoom_out`` and ``pan``: the inpainting pipeline over the padded canvas
  (``imaging.masks.outpaint_inputs``), strength 1: the added area has nothing to keep.

Every image comes back at exactly the request's size, and for the masked actions the
pixels outside the mask are the source's: Stable Diffusion inpainting repaints the
whole image through its VAE, so the adapter lays the source back over what was not
to be painted, as the WebUI and diffusers' own ``apply_overlay`` do."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image, ImageOps

from imagegate.domain.params import SIZE_STEP
from imagegate.imaging import open_image, outpaint_inputs
from imagegate.providers.base import Action, GenerationRequest
from imagegate.providers.errors import PermanentProviderError

DEFAULT_STRENGTH = 0.6  # an img2img or variation that names none
# Stable Diffusion's VAE works on 1/8 of the image: both sides must be multiples of 8.
MIN_SIDE, MAX_SIDE = 16, 4096
MASKED = frozenset({Action.VARY_REGION, Action.ZOOM_OUT, Action.PAN})
# The grey the padded canvas's transparent border becomes: a neutral start.
_CANVAS_GREY = (127, 127, 127)

Kind = Literal["text2image", "img2img", "inpaint"]


def snap_side(value: int) -> int:
    """The nearest side the pipeline accepts: a multiple of 8 within 16..4096."""
    return min(MAX_SIDE, max(MIN_SIDE, round(value / SIZE_STEP) * SIZE_STEP))


@dataclass(frozen=True)
class Inputs:
    """A request as pipeline arguments, and what to keep of the source after."""

    kind: Kind
    strength: float
    arguments: dict[str, Any] = field(default_factory=dict)
    # At the request's size: the pixels to keep, and the mask (white = painted).
    keep: Image.Image | None = None
    mask: Image.Image | None = None


def inputs_for(request: GenerationRequest, region_strength: float) -> Inputs:
    """The pipeline arguments of ``request`` (PermanentProviderError if it lacks one)."""
    size = (snap_side(request.width), snap_side(request.height))
    if request.action is Action.IMAGINE:
        return Inputs("text2image", 1.0, {"width": size[0], "height": size[1]})
    source = _open(request.source_image, f"{request.action} needs a source image")
    if request.action in (Action.IMG2IMG, Action.VARIATION):
        strength = DEFAULT_STRENGTH if request.strength is None else request.strength
        image = ImageOps.fit(source.convert("RGB"), size, Image.Resampling.LANCZOS)
        return Inputs("img2img", strength, {"image": image})
    if request.action is Action.VARY_REGION:
        mask = _open(request.mask, "vary_region needs a mask").convert("L")
        if mask.size != source.size:
            raise PermanentProviderError(
                f"diffusers: the mask is {mask.size[0]}x{mask.size[1]}, the source "
                f"{source.size[0]}x{source.size[1]}: they must be the same size"
            )
        return _inpaint(source.convert("RGB"), mask, region_strength, request, size)
    if request.action in (Action.ZOOM_OUT, Action.PAN):
        if request.canvas is None or request.source_image is None:
            raise PermanentProviderError(f"diffusers: {request.action} needs a canvas")
        padded, mask_png = outpaint_inputs(request.source_image, request.canvas)
        with open_image(padded) as canvas:
            grey = Image.new("RGBA", canvas.size, (*_CANVAS_GREY, 255))
            flat = Image.alpha_composite(grey, canvas.convert("RGBA")).convert("RGB")
        return _inpaint(flat, open_image(mask_png).convert("L"), 1.0, request, size)
    raise PermanentProviderError(f"diffusers: {request.action} is not supported")


def _inpaint(
    image: Image.Image,
    mask: Image.Image,
    strength: float,
    request: GenerationRequest,
    size: tuple[int, int],
) -> Inputs:
    binary = mask.point(lambda v: 255 if v >= 128 else 0)
    wanted = (request.width, request.height)
    arguments = {
        "image": image.resize(size, Image.Resampling.LANCZOS),
        "mask_image": binary.resize(size, Image.Resampling.NEAREST),
        "width": size[0],
        "height": size[1],
    }
    keep = image.resize(wanted, Image.Resampling.LANCZOS)
    return Inputs(
        "inpaint", strength, arguments, keep, binary.resize(wanted, Image.Resampling.NEAREST)
    )


def steps_for(steps: int, strength: float) -> tuple[int, int]:
    """(num_inference_steps, the steps that run): an image-to-image pipeline runs only
    the last ``int(steps * strength)`` of its schedule, and refuses to run none."""
    strength = min(1.0, max(0.01, strength))
    total = steps
    if int(total * strength) < 1:
        total = math.ceil(1 / strength)
    while int(total * strength) < 1:
        total += 1
    return total, min(int(total * strength), total)


def finished(image: Image.Image, request: GenerationRequest, inputs: Inputs) -> Image.Image:
    """A pipeline image at the request's size, the source kept outside the mask."""
    out = image.convert("RGB")
    if out.size != (request.width, request.height):
        out = out.resize((request.width, request.height), Image.Resampling.LANCZOS)
    if inputs.keep is not None and inputs.mask is not None:
        out = Image.composite(out, inputs.keep, inputs.mask)
    return out


def _open(data: bytes | None, missing: str) -> Image.Image:
    if not data:
        raise PermanentProviderError(f"diffusers: {missing}")
    try:
        return open_image(data)
    except (OSError, ValueError) as error:
        raise PermanentProviderError(f"diffusers: an input image is unreadable: {error}") from error
