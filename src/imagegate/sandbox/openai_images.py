"""The pictures the OpenAI emulator answers edits and variations with: the input
image(s) at the size asked for, repainted where the mask (or the image itself) is
transparent, or redrawn whole when there is no transparency to follow. Real image
bytes, made off the event loop."""

from __future__ import annotations

import asyncio

from PIL import Image

from imagegate.domain.params import OutputFormat
from imagegate.imaging import encode
from imagegate.render import render_image
from imagegate.sandbox.openai_requests import Inputs

# How much of a redrawn picture (no mask) is new: a variation stays near its source.
_REDRAW = {"edits": 0.5, "variations": 0.4}


async def edited(
    inputs: Inputs, endpoint: str, prompt: str, size: tuple[int, int], seed: int,
    fmt: OutputFormat,
) -> bytes:  # fmt: skip
    return await asyncio.to_thread(_edited, inputs, endpoint, prompt, size, seed, fmt)


def _edited(
    inputs: Inputs, endpoint: str, prompt: str, size: tuple[int, int], seed: int,
    fmt: OutputFormat,
) -> bytes:  # fmt: skip
    base = _blended(inputs.images, size)
    new = render_image(prompt, None, "none", seed, *size).convert("RGBA")
    alpha = (inputs.mask or inputs.images[0]).convert("RGBA").getchannel("A")
    if inputs.mask is not None or alpha.getextrema()[0] == 0:
        # Fully transparent pixels are the ones to paint; the rest is kept.
        keep = alpha.resize(size, Image.Resampling.NEAREST).point(lambda a: 255 if a else 0)
        result = Image.composite(base, new, keep)
    else:
        result = Image.blend(base, new, _REDRAW[endpoint])
    return encode(result.convert("RGB"), fmt)


def _blended(images: tuple[Image.Image, ...], size: tuple[int, int]) -> Image.Image:
    """The inputs at ``size``, averaged (a blend of several references)."""
    base = images[0].convert("RGBA").resize(size, Image.Resampling.LANCZOS)
    for count, image in enumerate(images[1:], start=2):
        other = image.convert("RGBA").resize(size, Image.Resampling.LANCZOS)
        base = Image.blend(base, other, 1 / count)
    return base
