"""The pictures the BFL emulator delivers: drawn from the prompt (text-to-image), or
from the task's input images: fill repaints where the mask is white (or the image
transparent), expand paints a border around the image, Kontext redraws its inputs.
Real image bytes, made off the event loop."""

from __future__ import annotations

import asyncio
import base64
import io
from dataclasses import dataclass, field

from PIL import Image

from imagegate.domain.params import OutputFormat
from imagegate.imaging import encode
from imagegate.render import render_image


@dataclass(frozen=True)
class Drawing:
    """What a task makes: ``kind`` is text, fill, expand or kontext; ``images`` its
    base64 inputs; ``pads`` what expand adds (left, top, right, bottom)."""

    kind: str
    prompt: str
    size: tuple[int, int]
    seed: int
    fmt: OutputFormat
    images: tuple[str, ...] = ()
    mask: str | None = None
    pads: tuple[int, int, int, int] = field(default=(0, 0, 0, 0))


def decoded(value: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(value)))
    image.load()
    return image


async def draw(drawing: Drawing) -> bytes:
    return await asyncio.to_thread(_draw, drawing)


def _draw(d: Drawing) -> bytes:
    new = render_image(d.prompt or "a scene", None, "none", d.seed, *d.size).convert("RGBA")
    if d.kind == "text" or not d.images:
        return encode(new.convert("RGB"), d.fmt)
    first = decoded(d.images[0]).convert("RGBA")
    if d.kind == "expand":
        left, top, _, _ = d.pads
        placed = Image.new("RGBA", d.size)
        placed.paste(first, (left, top))
        keep = Image.new("L", d.size, 0)
        keep.paste(255, (left, top, left + first.width, top + first.height))
        result = Image.composite(placed, new, keep)
    elif d.kind == "fill":
        if d.mask is not None:
            grey = decoded(d.mask).convert("L").resize(first.size, Image.Resampling.NEAREST)
            keep = grey.point(lambda v: 0 if v >= 128 else 255)
        else:
            keep = first.getchannel("A").point(lambda a: 255 if a else 0)
        result = Image.composite(first, new, keep)
    else:  # Kontext: every reference, averaged, redrawn half-way toward the prompt
        base = first.resize(d.size, Image.Resampling.LANCZOS)
        for count, value in enumerate(d.images[1:], start=2):
            other = decoded(value).convert("RGBA").resize(d.size, Image.Resampling.LANCZOS)
            base = Image.blend(base, other, 1 / count)
        result = Image.blend(base, new, 0.5)
    return encode(result.convert("RGB"), d.fmt)
