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
from imagegate.sandbox.stability_forms import ASPECT_SIZES, Spec, Upscale

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


async def blur(data: bytes, fmt: OutputFormat) -> bytes:
    """What the output filter returns in place of the image it withheld."""

    def run() -> bytes:
        with Image.open(io.BytesIO(data)) as image:
            return encode(image.convert("RGB").filter(ImageFilter.GaussianBlur(24)), fmt)

    return await asyncio.to_thread(run)
