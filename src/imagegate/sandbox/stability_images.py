"""The pictures the Stability emulator answers with: generations at the API's output
size for each aspect ratio, image-to-image blends, upscales and filtered (blurred)
outputs. Real image bytes; all the work runs off the event loop."""

from __future__ import annotations

import asyncio
import io
import math

from PIL import Image, ImageFilter

from imagegate.domain.params import OutputFormat
from imagegate.imaging import encode
from imagegate.render import render_image
from imagegate.sandbox.stability_forms import ASPECT_SIZES, Edit, Spec, Upscale

# The conservative and creative upscalers aim at "4K": about four megapixels here.
_UPSCALE_TARGET_PIXELS = 4 * 1024 * 1024
_FAST_FACTOR = 4


def nearest_ratio(width: int, height: int) -> str:
    """The API's aspect ratio closest to ``width:height`` (compared on a log scale, so
    2:1 is as far from 1:1 as 1:2 is)."""
    target = math.log(width / height)
    return min(ASPECT_SIZES, key=lambda r: abs(math.log(_value(r)) - target))


def _value(ratio: str) -> float:
    w, h = ratio.split(":")
    return int(w) / int(h)


async def generate(spec: Spec, seed: int) -> bytes:
    return await asyncio.to_thread(_generate, spec, seed)


def _generate(spec: Spec, seed: int) -> bytes:
    if spec.image is None:
        width, height = ASPECT_SIZES[spec.aspect_ratio]
        return encode(render_image(spec.prompt, None, "none", seed, width, height), spec.fmt)
    # Image-to-image keeps the input's shape: the output takes the nearest ratio, and
    # ``strength`` says how much of the new picture replaces the old one.
    with Image.open(io.BytesIO(spec.image)) as source:
        width, height = ASPECT_SIZES[nearest_ratio(*source.size)]
        old = source.convert("RGB").resize((width, height), Image.Resampling.LANCZOS)
    new = render_image(spec.prompt, None, "none", seed, width, height).convert("RGB")
    return encode(Image.blend(old, new, spec.strength), spec.fmt)


async def upscale(spec: Upscale) -> bytes:
    return await asyncio.to_thread(_upscale, spec)


def _upscale(spec: Upscale) -> bytes:
    width, height = spec.size
    if spec.kind == "fast":
        factor = float(_FAST_FACTOR)
    else:
        factor = max(1.0, math.floor(math.sqrt(_UPSCALE_TARGET_PIXELS / (width * height))))
    with Image.open(io.BytesIO(spec.image)) as source:
        size = (round(width * factor), round(height * factor))
        bigger = source.convert("RGB").resize(size, Image.Resampling.LANCZOS)
    return encode(bigger, spec.fmt)


async def edit(spec: Edit) -> bytes:
    return await asyncio.to_thread(_edit, spec)


def _edit(spec: Edit) -> bytes:
    """Outpaint: the image on a canvas grown by the pads, the new border painted.
    Inpaint: the image, repainted where the mask is white (or the image transparent)."""
    left, up, right, down = spec.pads
    width, height = spec.size[0] + left + right, spec.size[1] + up + down
    new = render_image(spec.prompt or "a wider scene", None, "none", spec.seed, width, height)
    with Image.open(io.BytesIO(spec.image)) as source:
        rgba = source.convert("RGBA")
    if spec.kind == "outpaint":
        keep = Image.new("L", (width, height), 0)
        keep.paste(255, (left, up, left + spec.size[0], up + spec.size[1]))
        placed = Image.new("RGBA", (width, height))
        placed.paste(rgba, (left, up))
    else:
        placed = rgba
        if spec.mask is None:
            keep = rgba.getchannel("A").point(lambda a: 255 if a else 0)
        else:
            with Image.open(io.BytesIO(spec.mask)) as mask:
                # A mask of another size is scaled to the image's, as the API does.
                grey = mask.convert("L").resize(spec.size, Image.Resampling.NEAREST)
            keep = grey.point(lambda v: 0 if v >= 128 else 255)
    result = Image.composite(placed, new.convert("RGBA"), keep)
    return encode(result.convert("RGB"), spec.fmt)


async def blur(data: bytes, fmt: OutputFormat) -> bytes:
    """What the output filter returns in place of the image it withheld."""

    def run() -> bytes:
        with Image.open(io.BytesIO(data)) as image:
            return encode(image.convert("RGB").filter(ImageFilter.GaussianBlur(24)), fmt)

    return await asyncio.to_thread(run)
