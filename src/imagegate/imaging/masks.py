"""Masks and padded canvases for the actions that repaint part of an image.

Conventions every adapter shares: a mask is an 8-bit greyscale PNG of the image it
applies to, white (255) where the provider paints and black (0) where the pixels are
kept. APIs that want the opposite (OpenAI: transparent = paint) convert from this."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from imagegate.domain.actions import Box, Canvas
from imagegate.imaging.codec import encode_png

# Inputs here were validated and re-encoded when uploaded or stored by us, in these.
_FORMATS = ["PNG", "JPEG", "WEBP"]


def open_image(data: bytes) -> Image.Image:
    """Decode an image we stored (an upload or a job's output), loaded."""
    image = Image.open(io.BytesIO(data), formats=_FORMATS)
    image.load()
    return image


def rectangles_mask(width: int, height: int, boxes: list[Box]) -> bytes:
    """A ``width`` x ``height`` mask, white inside ``boxes``."""
    with Image.new("L", (width, height), 0) as mask:
        draw = ImageDraw.Draw(mask)
        for box in boxes:
            draw.rectangle((box.left, box.top, box.right - 1, box.bottom - 1), fill=255)
        return encode_png(mask)


def normalize_mask(data: bytes, width: int, height: int) -> bytes:
    """An uploaded mask as a strict black-and-white mask of the source's size: its
    luminance (or, for an image with transparency, its transparent pixels) above half
    means paint."""
    with open_image(data) as image:
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            # Transparent = paint, the convention of OpenAI's and others' edit masks.
            alpha = image.convert("RGBA").getchannel("A")
            grey = alpha.point(lambda a: 255 - a)
        else:
            grey = image.convert("L")
        if grey.size != (width, height):
            grey = grey.resize((width, height), Image.Resampling.NEAREST)
        binary = grey.point(lambda v: 255 if v >= 128 else 0)
        return encode_png(binary)


def outpaint_inputs(source: bytes, canvas: Canvas) -> tuple[bytes, bytes]:
    """The padded image and its mask for an outpainting action: the source scaled
    into ``canvas.source`` on a transparent ``canvas`` (RGBA PNG), and the mask, white
    outside the source's box."""
    box = canvas.source
    with open_image(source) as image, image.convert("RGBA") as rgba:
        placed = (
            rgba
            if rgba.size == (box.width, box.height)
            else rgba.resize((box.width, box.height), Image.Resampling.LANCZOS)
        )
        with Image.new("RGBA", (canvas.width, canvas.height), (0, 0, 0, 0)) as padded:
            padded.paste(placed, (box.left, box.top))
            padded_png = encode_png(padded)
    with Image.new("L", (canvas.width, canvas.height), 255) as mask:
        mask.paste(0, (box.left, box.top, box.right, box.bottom))
        return padded_png, encode_png(mask)


def transparent_where_masked(image_data: bytes, mask: bytes) -> bytes:
    """``image_data`` as an RGBA PNG, transparent where ``mask`` is white: the single
    image + mask form of edit APIs that read the paint area from the alpha channel."""
    with open_image(image_data) as image, open_image(mask) as m:
        rgba = image.convert("RGBA")
        alpha = m.convert("L").resize(rgba.size, Image.Resampling.NEAREST).point(lambda v: 255 - v)
        rgba.putalpha(alpha)
        return encode_png(rgba)
