"""The visible mark a free plan's images carry (``[plans.<name>] watermark``): a
translucent band across the bottom-right corner with the words ``made with
imagegate``, sized to the image, so that a shared draft says where it came from."""

from __future__ import annotations

from PIL import Image, ImageDraw, ImageFont

TEXT = "made with imagegate"


def watermarked(image: Image.Image) -> Image.Image:
    """A copy of ``image`` (RGB or RGBA) with the mark drawn in."""
    base = image.convert("RGBA")
    side = min(base.size)
    size = max(10, side // 28)
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(base)
    left, top, right, bottom = draw.textbbox((0, 0), TEXT, font=font)
    pad = max(4, size // 2)
    width, height = right - left + 2 * pad, bottom - top + 2 * pad
    x0, y0 = base.width - width - pad, base.height - height - pad
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    marks = ImageDraw.Draw(overlay)
    marks.rounded_rectangle((x0, y0, x0 + width, y0 + height), radius=pad, fill=(0, 0, 0, 140))
    marks.text((x0 + pad - left, y0 + pad - top), TEXT, font=font, fill=(255, 255, 255, 230))
    merged = Image.alpha_composite(base, overlay)
    return merged if image.mode == "RGBA" else merged.convert("RGB")
