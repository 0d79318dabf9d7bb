"""The AUTOMATIC1111 adapter's options and the request body of each action (pure: no
HTTP here), and the describe suggestions it composes from the interrogator's caption.
docs/providers/a1111.md has the table of what each action sends."""

from __future__ import annotations

import base64
import re
from dataclasses import replace
from typing import Any, Literal

from pydantic import Field

from imagegate.domain.params import Mode
from imagegate.imaging import open_image, outpaint_inputs
from imagegate.providers.base import Action, GenerationRequest
from imagegate.providers.config import ConfigError
from imagegate.providers.errors import PermanentProviderError
from imagegate.providers.options import HttpOptions

DEFAULT_MODEL = "default"  # the checkpoint the WebUI has loaded
DEFAULT_UPSCALER = "R-ESRGAN 4x+"
DEFAULT_STRENGTH = 0.6  # an img2img or variation that names none
STEPS = {Mode.DRAFT: 20, Mode.STANDARD: 30}
# inpainting_fill, the "masked content" of the WebUI's inpaint tab.
Fill = Literal[0, 1, 2, 3]
FILL: Fill = 0
ORIGINAL: Fill = 1
LATENT_NOISE: Fill = 2
LATENT_NOTHING: Fill = 3
# resize_mode: crop and resize, so a source of another shape is not stretched.
_CROP_AND_RESIZE = 1
SUGGESTIONS = 4


class Options(HttpOptions):
    """``[providers.<name>.options]`` of an A1111 provider (docs/providers/a1111.md)."""

    # Fields merged into every txt2img/img2img body, e.g. sampler_name, steps, cfg_scale.
    payload: dict[str, Any] = Field(default_factory=dict)
    upscaler: str = DEFAULT_UPSCALER  # ``upscaler_1`` for upscales
    max_images: int = Field(default=8, ge=1)  # the batch_size limit
    # The img2img pass over the enlarged image of a creative upscale.
    creative_strength: float = Field(default=0.3, gt=0, le=1)
    # vary_region: the denoising of the masked area (which starts from the original).
    region_strength: float = Field(default=0.75, gt=0, le=1)
    mask_blur: int = Field(default=4, ge=0, le=64)
    # vary_region: repaint only the masked area, at the full width x height.
    inpaint_full_res: bool = True
    inpaint_full_res_padding: int = Field(default=32, ge=0, le=256)
    # zoom_out/pan: what the added area starts from, and how far it is denoised.
    outpaint_fill: Fill = LATENT_NOISE
    outpaint_strength: float = Field(default=1.0, gt=0, le=1)
    interrogator: Literal["clip", "deepdanbooru"] = "clip"  # describe's model


def merged(base: Options, name: str, overrides: dict[str, Any]) -> Options:
    """The configured options with a job's own (from its style preset) over them; a
    preset's ``payload`` adds to the configured one."""
    if not overrides:
        return base
    values = {**base.model_dump(), **overrides}
    values["payload"] = {**base.payload, **overrides.get("payload", {})}
    try:
        return Options.of(name, values)
    except ConfigError as error:  # the preset names an option wrongly
        raise PermanentProviderError(f"{name}: the style preset's options: {error}") from error


def generation_body(
    request: GenerationRequest, options: Options, model_name: str
) -> dict[str, Any]:
    """The txt2img body; every img2img body starts from it."""
    count = len(request.seeds)
    if not 1 <= count <= options.max_images:
        raise PermanentProviderError(
            f"a1111: {count} images requested; this WebUI is configured for "
            f"1 to {options.max_images} per call"
        )
    body: dict[str, Any] = {
        "prompt": styled(request),
        "negative_prompt": request.negative_prompt or "",
        # The WebUI seeds image i of a batch with seed + i: our seeds exactly,
        # unless they wrapped around the top of the range (info says which it used).
        "seed": request.seeds[0],
        "batch_size": count,
        "n_iter": 1,
        "width": multiple_of_8(request.width),
        "height": multiple_of_8(request.height),
        "steps": STEPS[request.mode],
        "cfg_scale": 7.0,
        "sampler_name": "Euler a",
        "send_images": True,
        "save_images": False,
    }
    if request.tuning.get("tile"):
        body["tiling"] = True  # seamless: the model's convolutions wrap around the edges
    if request.model not in (DEFAULT_MODEL, model_name, ""):
        body["override_settings"] = {"sd_model_checkpoint": request.model}
    return body


def img2img_body(request: GenerationRequest, options: Options, model_name: str) -> dict[str, Any]:
    """The ``/img2img`` body of img2img, variation, vary_region, zoom_out and pan."""
    body = generation_body(request, options, model_name)
    if request.action in (Action.IMG2IMG, Action.VARIATION):
        strength = DEFAULT_STRENGTH if request.strength is None else request.strength
        body.update(
            init_images=[b64(source(request))],
            denoising_strength=strength,
            resize_mode=_CROP_AND_RESIZE,
        )
    elif request.action is Action.VARY_REGION:
        body.update(
            init_images=[b64(source(request))],
            mask=b64(region_mask(request)),
            # The masked area starts from what is there, so the repaint fits around it.
            inpainting_fill=ORIGINAL,
            inpaint_full_res=options.inpaint_full_res,
            inpaint_full_res_padding=options.inpaint_full_res_padding,
            mask_blur=options.mask_blur,
            inpainting_mask_invert=0,
            denoising_strength=options.region_strength,
            resize_mode=0,
        )
    else:  # zoom_out, pan: the padded canvas, its mask white outside the source
        if request.canvas is None:
            raise PermanentProviderError(f"a1111: {request.action} needs a canvas")
        padded, mask = outpaint_inputs(source(request), request.canvas)
        body.update(
            init_images=[b64(padded)],
            mask=b64(mask),
            inpainting_fill=options.outpaint_fill,
            # The whole canvas at once: the source is the context for what is added.
            inpaint_full_res=False,
            mask_blur=options.mask_blur,
            inpainting_mask_invert=0,
            denoising_strength=options.outpaint_strength,
            resize_mode=0,
        )
    return {**body, **options.payload}


def upscale_body(request: GenerationRequest, options: Options) -> dict[str, Any]:
    """The ``/extra-single-image`` body: the upscaler's factor that covers width x
    height (resize mode 1), without the black margin "crop to fit" pads it with."""
    return {
        "image": b64(source(request)),
        "resize_mode": 1,
        "upscaling_resize": request.upscale_factor or 2,
        "upscaling_resize_w": request.width,
        "upscaling_resize_h": request.height,
        "upscaling_crop": False,
        "upscaler_1": options.upscaler,
    }


def creative_body(
    request: GenerationRequest, options: Options, model_name: str, enlarged: bytes
) -> dict[str, Any]:
    """The img2img pass of a creative upscale: the enlarged image, lightly denoised
    with the prompt, so the model adds detail without changing the picture."""
    one = replace(request, seeds=request.seeds[:1] or (0,))
    body = generation_body(one, options, model_name)
    body.update(
        init_images=[b64(enlarged)],
        denoising_strength=options.creative_strength,
        resize_mode=0,
    )
    return {**body, **options.payload}


def interrogate_body(request: GenerationRequest, options: Options) -> dict[str, Any]:
    return {"image": b64(source(request)), "model": options.interrogator}


def suggestions(caption: str) -> tuple[str, ...]:
    """Four prompts from the interrogator's one caption, best first: the caption; its
    subject (the words before the first comma); the subject with the descriptors in
    reverse order (the WebUI weighs earlier words more); the subject emphasised with
    the WebUI's ``(words:1.2)``; then stronger emphases until there are four."""
    parts = [" ".join(part.split()) for part in re.split(r"[,\n]", caption)]
    parts = [part for part in parts if part]
    if not parts:
        return ()
    subject, details = parts[0], parts[1:]
    candidates = [
        ", ".join(parts),
        subject,
        ", ".join([subject, *reversed(details)]),
        ", ".join([f"({subject}:1.2)", *details]),
    ]
    weight = 1.3
    while len(dict.fromkeys(candidates)) < SUGGESTIONS:
        candidates.append(", ".join([f"({subject}:{weight:.1f})", *details]))
        weight += 0.1
    return tuple(dict.fromkeys(candidates))[:SUGGESTIONS]


def styled(request: GenerationRequest) -> str:
    """The WebUI's own styles are per-installation; a style is said in words."""
    if request.style in ("", "none"):
        return request.prompt
    return f"{request.prompt}, {request.style} style"


def multiple_of_8(side: int) -> int:
    """The WebUI works in a latent space 1/8 the size and floors other sides to a
    multiple of 8; snapping to the nearest multiple (halves up) loses less."""
    return max(64, (side + 4) // 8 * 8)


def source(request: GenerationRequest) -> bytes:
    if not request.source_image:
        raise PermanentProviderError(f"a1111: {request.action} needs a source image")
    return request.source_image


def region_mask(request: GenerationRequest) -> bytes:
    """The vary_region mask, checked against the source: the WebUI would stretch a
    mask of another size over the image and repaint the wrong pixels."""
    if not request.mask:
        raise PermanentProviderError("a1111: vary_region needs a mask")
    try:
        with open_image(source(request)) as image, open_image(request.mask) as mask:
            image_size, mask_size = image.size, mask.size
    except (OSError, ValueError) as error:
        raise PermanentProviderError(f"a1111: unreadable source or mask: {error}") from error
    if image_size != mask_size:
        raise PermanentProviderError(
            f"a1111: the mask is {mask_size[0]}x{mask_size[1]}, the source "
            f"{image_size[0]}x{image_size[1]}: they must be the same size"
        )
    return request.mask


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()
