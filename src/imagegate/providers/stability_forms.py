"""The multipart forms the Stability adapter sends, one builder per endpoint family:
generate (text-to-image, image-to-image), edit (outpaint, inpaint) and upscale (fast,
conservative, creative). Pure: request in, ``(path, fields, files)`` out; the image
work (resizing a source to the box it fills) is done here too, so call them off the
event loop."""

from __future__ import annotations

import math
from typing import Any

from imagegate.domain.actions import UpscaleMode
from imagegate.domain.params import OutputFormat
from imagegate.imaging.masks import open_image
from imagegate.providers.base import Action, GenerationRequest
from imagegate.providers.errors import PermanentProviderError
from imagegate.providers.exact_size import stretched_png

ASPECT_RATIOS = ("1:1", "16:9", "9:16", "21:9", "9:21", "3:2", "2:3", "5:4", "4:5")
SD3_MODELS = ("sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash")
UPSCALERS = {
    "upscale-fast": "fast",
    "upscale-conservative": "conservative",
    "upscale-creative": "creative",
}
# Our style names that have an obvious Stability preset; the others send none.
STYLE_PRESETS = {
    "cinematic": "cinematic",
    "photographic": "photographic",
    "anime": "anime",
    "fantasy": "fantasy-art",
    "neon": "neon-punk",
    "vintage": "analog-film",
}
# The turbo and flash models are distilled without a negative branch: they take none.
_NO_NEGATIVE_PROMPT = frozenset({"sd3.5-large-turbo", "sd3.5-flash"})
# Models that accept ``image`` + ``strength`` (image-to-image): core does not.
VARIES = frozenset({"ultra", *SD3_MODELS})
_DEFAULT_STRENGTH = 0.5
# The documented limits: outpaint adds at most 2000 pixels a side; the fast upscaler
# takes 32..1536 pixels a side and at most a megapixel (and makes 4x); the creative one
# at most a megapixel.
MAX_OUTPAINT = 2000
_FAST_MAX_SIDE, ONE_MEGAPIXEL = 1536, 1_048_576
# Conservative and creative upscales want a prompt; an upscale job may have none.
_UPSCALE_PROMPT = "the same image, sharp and detailed"
Form = tuple[str, dict[str, str], dict[str, Any]]


def aspect_ratio(width: int, height: int) -> str:
    """Stability takes an aspect ratio, not a size: the allowed ratio nearest to
    ``width:height`` on a log scale (so 2:1 and 1:2 are equally far from 1:1). The API
    then picks the pixel size (about one megapixel), which the result reports."""
    target = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - target)

    return min(ASPECT_RATIOS, key=distance)


def generation_form(request: GenerationRequest, model: str) -> Form:
    """generate/{ultra|core|sd3}: text-to-image, or (img2img, variation) the source
    with ``strength``."""
    if model in ("ultra", "core"):
        path, fields = f"/v2beta/stable-image/generate/{model}", {}
    elif model in SD3_MODELS:
        path, fields = "/v2beta/stable-image/generate/sd3", {"model": model}
    elif model in UPSCALERS:
        raise PermanentProviderError(
            f"stability: {model} only upscales; it cannot {request.action}"
        )
    else:
        raise PermanentProviderError(f"stability: unknown model {model!r}")
    fields |= _common(request, model)
    if request.action is Action.IMAGINE:
        fields["aspect_ratio"] = aspect_ratio(request.width, request.height)
        if model in SD3_MODELS:
            fields["mode"] = "text-to-image"
        # An empty file part makes httpx send multipart/form-data, which the API requires.
        return path, fields, {"none": ("", b"")}
    if model not in VARIES:
        raise PermanentProviderError(
            f"stability: {model} makes images from text only; {request.action} needs ultra or sd3.5"
        )
    strength = request.strength if request.strength is not None else _DEFAULT_STRENGTH
    fields["strength"] = f"{strength:g}"
    if model in SD3_MODELS:
        fields["mode"] = "image-to-image"
    return path, fields, {"image": ("source", _source(request))}


def outpaint_form(request: GenerationRequest) -> Form:
    """edit/outpaint: the source at the size of its box on the canvas, and the pixels
    to add on each side (``Canvas.padding``)."""
    canvas = request.canvas
    if canvas is None:
        raise PermanentProviderError(f"stability: {request.action} needs a canvas")
    left, top, right, bottom = canvas.padding()
    if max(left, top, right, bottom) > MAX_OUTPAINT:
        raise PermanentProviderError(
            f"stability: outpaint adds at most {MAX_OUTPAINT} pixels a side; this canvas "
            f"adds {max(left, top, right, bottom)}"
        )
    fields = _common(request, "")
    fields.pop("negative_prompt", None)  # outpaint takes none
    if not request.prompt.strip():
        fields.pop("prompt")  # optional here: the model continues the scene
    fields |= {"left": str(left), "right": str(right), "up": str(top), "down": str(bottom)}
    box = canvas.source
    image = stretched_png(_source(request), box.width, box.height, "RGB")
    return "/v2beta/stable-image/edit/outpaint", fields, {"image": ("source.png", image)}


def inpaint_form(request: GenerationRequest) -> Form:
    """edit/inpaint: the source and its mask (white = repaint, Stability's convention
    too)."""
    if not request.mask:
        raise PermanentProviderError("stability: vary_region needs a mask")
    if not request.prompt.strip():
        raise PermanentProviderError("stability: inpaint needs a prompt")
    files = {"image": ("source", _source(request)), "mask": ("mask.png", request.mask)}
    return "/v2beta/stable-image/edit/inpaint", _common(request, ""), files


def upscale_kind(request: GenerationRequest, subtle: str) -> str:
    """The upscaler: ``creative`` for a creative upscale; for a subtle one ``subtle``
    (the ``upscaler`` option), except that fast makes exactly 4x from at most a
    megapixel, so anything else goes to conservative. A job without a mode names its
    upscaler by model (``upscale-fast`` …)."""
    if request.upscale_mode is UpscaleMode.CREATIVE:
        return "creative"
    kind = subtle
    if request.upscale_mode is None and request.model in UPSCALERS:
        kind = UPSCALERS[request.model]
    if kind == "fast" and not _fits_fast(request):
        return "conservative"
    return kind


def _fits_fast(request: GenerationRequest) -> bool:
    if request.source_image is None:
        return True  # refused with its own message by upscale_form
    if request.upscale_factor not in (None, 4):
        return False
    with open_image(request.source_image) as image:
        width, height = image.size
    return max(width, height) <= _FAST_MAX_SIDE and width * height <= ONE_MEGAPIXEL


def upscale_form(kind: str, request: GenerationRequest) -> tuple[dict[str, str], dict[str, Any]]:
    if request.source_image is None:
        raise PermanentProviderError("stability: upscale needs a source image")
    if len(request.seeds) > 1:
        raise PermanentProviderError("stability: an upscale makes one image; ask for one")
    fields = {"output_format": request.output_format.value}
    source = request.source_image
    if kind != "fast":  # the fast upscaler takes the image alone
        fields["prompt"] = request.prompt if request.prompt.strip() else _UPSCALE_PROMPT
        fields["seed"] = str(request.seeds[0] if request.seeds else 0)
        if request.negative_prompt:
            fields["negative_prompt"] = request.negative_prompt
    if kind == "creative":
        source = _at_most(source, ONE_MEGAPIXEL)
    return fields, {"image": ("source", source)}


def _common(request: GenerationRequest, model: str) -> dict[str, str]:
    """prompt, negative prompt, output format and style preset, as the endpoint takes them."""
    fields = {"prompt": request.prompt, "output_format": output_format(model, request)}
    if request.negative_prompt and model not in _NO_NEGATIVE_PROMPT:
        fields["negative_prompt"] = request.negative_prompt
    preset = STYLE_PRESETS.get(request.style)
    if preset and model not in SD3_MODELS:  # sd3 takes no style preset
        fields["style_preset"] = preset
    return fields


def output_format(model: str, request: GenerationRequest) -> str:
    # The sd3 endpoint encodes PNG and JPEG only; a WebP request gets PNG.
    if model in SD3_MODELS and request.output_format is OutputFormat.WEBP:
        return OutputFormat.PNG.value
    return request.output_format.value


def _source(request: GenerationRequest) -> bytes:
    if not request.source_image:
        raise PermanentProviderError(f"stability: {request.action} needs a source image")
    return request.source_image


def _at_most(data: bytes, pixels: int) -> bytes:
    """The image scaled down (aspect kept) to at most ``pixels``; as it is if it fits.
    The upscale's answer is resized to the exact size asked for anyway."""
    with open_image(data) as image:
        width, height = image.size
    if width * height <= pixels:
        return data
    scale = math.sqrt(pixels / (width * height))
    return stretched_png(data, max(1, int(width * scale)), max(1, int(height * scale)), "RGB")
