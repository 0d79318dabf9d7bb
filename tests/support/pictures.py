"""Source images and pixel checks for the action tests of the provider emulators."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image, ImageChops

from imagegate.providers.base import GeneratedImage

BLUE, YELLOW = (30, 60, 200), (230, 200, 40)


def scene(width: int, height: int) -> bytes:
    """A PNG whose every pixel differs from its neighbours' (a two-way gradient), so
    that a kept region can be compared pixel for pixel."""
    image = Image.new("RGB", (width, height))
    image.putdata(
        [((x * 7) % 256, (y * 5) % 256, (x + y) % 256) for y in range(height) for x in range(width)]
    )
    return png(image)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def box_mask(width: int, height: int, box: tuple[int, int, int, int]) -> bytes:
    """An "L" mask, white (paint) inside ``box`` (left, top, right, bottom)."""
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, box)
    return png(mask)


def decoded(image: GeneratedImage | bytes) -> Image.Image:
    """The image decoded, as RGB; a generated one must be the size it says it is."""
    data = image.data if isinstance(image, GeneratedImage) else image
    opened = Image.open(io.BytesIO(data))
    opened.load()
    if isinstance(image, GeneratedImage):
        assert opened.size == (image.width, image.height)
    return opened.convert("RGB")


def two_tone(width: int, height: int) -> bytes:
    """Left half blue, right half yellow: where an edit kept or repainted shows."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(YELLOW, (width // 2, 0, width, height))
    return png(image)


def near(pixel: Any, colour: tuple[int, int, int], tolerance: int = 24) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel, colour, strict=True))


def max_difference(a: Image.Image, b: Image.Image) -> int:
    """The largest per-channel difference between two images of one size."""
    assert a.size == b.size, (a.size, b.size)
    extrema = ImageChops.difference(a.convert("RGB"), b.convert("RGB")).getextrema()
    return max(high for _, high in extrema)  # type: ignore[union-attr]
