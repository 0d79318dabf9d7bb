"""Colour analysis and transfer on decoded images: the statistics of an image's
palette, moving another image's palette onto them (how a render takes on a source's or
a style reference's colours), pulling an image's broad colour toward a guide, and the
named dominant colours ``describe`` reports.

Statistics are taken on a thumbnail, so they cost the same at every size; the transfer
itself is one lookup table per channel, applied by Pillow."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops

# The side analysis works at: enough for means, spreads and a palette.
THUMB_SIDE = 96
# A transfer never stretches or squeezes a channel's spread beyond this (a flat
# source would otherwise blow a render's contrast up to noise).
_MAX_SCALE = 2.5


@dataclass(frozen=True)
class ColourStats:
    """Mean and spread of each YCbCr channel, 0..255: brightness and the two colour
    axes, which behave far more independently than R, G and B do."""

    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def thumbnail(image: Image.Image, side: int = THUMB_SIDE) -> Image.Image:
    """An RGB copy whose longer side is at most ``side``, aspect kept."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    scale = side / max(rgb.size)
    if scale >= 1.0:
        return rgb
    size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
    return rgb.resize(size, Image.Resampling.BOX)


def colour_stats(image: Image.Image, keep: Image.Image | None = None) -> ColourStats:
    """The statistics of ``image``, or of the pixels where the "L" mask ``keep`` is
    black (the part a repaint leaves alone) when enough of them are."""
    small = thumbnail(image)
    ycc = np.asarray(small.convert("YCbCr"), dtype=np.float32).reshape(-1, 3)
    if keep is not None:
        kept = np.asarray(keep.convert("L").resize(small.size, Image.Resampling.NEAREST)) < 128
        if int(kept.sum()) >= 16:
            ycc = ycc[kept.ravel()]
    mean, std = ycc.mean(axis=0), ycc.std(axis=0)
    return ColourStats(
        (float(mean[0]), float(mean[1]), float(mean[2])),
        (float(std[0]), float(std[1]), float(std[2])),
    )


def match_colours(image: Image.Image, target: ColourStats, amount: float) -> Image.Image:
    """``image`` with its palette moved ``amount`` (0..1) of the way onto ``target``:
    each YCbCr channel shifted and scaled to the target's mean and spread (Reinhard's
    transfer), so a render keeps its shapes and takes on the other image's colours."""
    if amount <= 0.0:
        return image.convert("RGB")
    own = colour_stats(image)
    x = np.arange(256, dtype=np.float32)
    tables: list[int] = []
    for channel in range(3):
        scale = target.std[channel] / max(own.std[channel], 1.0)
        scale = min(_MAX_SCALE, max(1.0 / _MAX_SCALE, scale))
        moved = (x - own.mean[channel]) * scale + target.mean[channel]
        out = x + (moved - x) * np.float32(amount)
        tables.extend(np.clip(np.rint(out), 0, 255).astype(int).tolist())
    return image.convert("YCbCr").point(tables).convert("RGB")


def harmonise(image: Image.Image, guide: Image.Image, amount: float, side: int = 48) -> Image.Image:
    """``image`` with its broad colour (what survives a shrink to ``side`` pixels)
    moved ``amount`` of the way toward ``guide``'s, its detail kept: a render laid
    next to a source then continues the source's colours region by region."""
    if amount <= 0.0:
        return image
    small = (max(1, round(image.width * side / max(image.size))),
             max(1, round(image.height * side / max(image.size))))  # fmt: skip
    own = np.asarray(image.resize(small, Image.Resampling.BOX), dtype=np.float32)
    wanted = np.asarray(guide.convert("RGB").resize(small, Image.Resampling.BOX), np.float32)
    offset = np.clip((wanted - own) * np.float32(amount) + 128.0, 0.0, 255.0).astype(np.uint8)
    field = Image.fromarray(offset).resize(image.size, Image.Resampling.BICUBIC)
    return ImageChops.add(image, field, 1.0, -128)


@dataclass(frozen=True)
class NamedColour:
    name: str
    rgb: tuple[int, int, int]
    share: float  # of the image's pixels, 0..1


def dominant_colours(image: Image.Image, count: int = 6) -> list[NamedColour]:
    """The image's main colours, most area first, each with a name from the
    renderer's own colour words (so a description renders back in its colours).
    Clusters that get the same name are merged."""
    small = thumbnail(image, 64)
    quantised = small.quantize(colors=count, method=Image.Quantize.MEDIANCUT)
    palette = quantised.getpalette() or []
    total = small.width * small.height
    merged: dict[str, tuple[float, np.ndarray]] = {}
    for index, pixels in enumerate(quantised.histogram()[:count]):
        if not pixels:
            continue
        rgb = np.array(palette[3 * index : 3 * index + 3], dtype=np.float64)
        name = colour_name((int(rgb[0]), int(rgb[1]), int(rgb[2])))
        share, mean = merged.get(name, (0.0, np.zeros(3)))
        weight = pixels / total
        merged[name] = (share + weight, mean + rgb * weight)
    found = [
        NamedColour(name, _rgb_tuple(total_rgb / share), share)
        for name, (share, total_rgb) in merged.items()
    ]
    return sorted(found, key=lambda c: (-c.share, c.name))


def _rgb_tuple(rgb: np.ndarray) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in np.rint(rgb))
    return r, g, b


# Hue sectors (upper bound in degrees) and their names, from red round to red.
_HUES = ((15, "red"), (40, "orange"), (66, "yellow"), (160, "green"), (195, "teal"),
         (252, "blue"), (290, "purple"), (335, "pink"), (360, "red"))  # fmt: skip


def colour_name(rgb: tuple[int, int, int]) -> str:
    """A plain name for an 8-bit colour: black, white, grey, or its hue's name, with
    the dark oranges called brown, dark blues navy and bright light oranges gold."""
    h, s, v = colorsys.rgb_to_hsv(rgb[0] / 255, rgb[1] / 255, rgb[2] / 255)
    if v < 0.16:
        return "black"
    if s < 0.18:
        return "white" if v > 0.85 else "grey"
    degrees = h * 360.0
    name = next(label for bound, label in _HUES if degrees < bound)
    if name in ("orange", "red") and v < 0.5 and 8 <= degrees < 40:
        return "brown"
    if name == "blue" and v < 0.4:
        return "navy"
    if name == "yellow" and s < 0.7 and degrees < 52:
        return "gold"
    return name


def luma(image: Image.Image) -> np.ndarray:
    """The thumbnail's brightness, 0..1, shaped (h, w)."""
    return np.asarray(thumbnail(image).convert("L"), dtype=np.float32) / np.float32(255.0)
