"""A fresh render of a prompt as the actions use it: the renderer's picture, bent by
the Midjourney knobs the built-in provider maps and by a style reference's palette.

The knobs, each applied only when the job sets it (so a plain job renders exactly as
:func:`imagegate.render.render_image` does):

- ``stylize`` (0-1000, 100 the default): how strongly the style preset applies. Below
  100 the styled render is mixed back toward an unstyled one, above it the difference
  is extrapolated, with saturation and contrast following.
- ``chaos`` (0-100): spread between seeds. Each seed turns the hues (up to 0.3 of
  the wheel at 100), moves the exposure, reframes (a seeded window of up to 1/1.4 of
  the picture) and may mirror the composition.
- ``weird`` (0-3000): a seeded mix of the colour channels, from nothing to most of the
  way to a channel swap: palettes no prompt word would give.
- ``tile``: the picture made seamless when repeated, by wrap-around blending.
- a style reference (``--sref``): its palette moved onto the render, by ``--sw``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageChops, ImageEnhance

from imagegate.render.colour import ColourStats, colour_stats, match_colours
from imagegate.render.compose import render_image
from imagegate.render.pixels import Size, hue_matrix, mask_image, recolour, seeded

# The GenerationRequest.tuning keys this module gives a meaning to.
TUNING_KEYS = frozenset({"stylize", "chaos", "weird", "tile"})
DEFAULT_STYLIZE = 100.0
DEFAULT_STYLE_WEIGHT = 100
# A tiled picture blends with its half-turned copy over this share of each side.
_TILE_BAND = 0.25


@dataclass(frozen=True)
class Look:
    """How a fresh render is bent; the defaults change nothing."""

    stylize: float = DEFAULT_STYLIZE
    chaos: float = 0.0
    weird: float = 0.0
    tile: bool = False
    style: ColourStats | None = None  # a style reference's palette
    style_amount: float = 0.0

    @classmethod
    def of(
        cls,
        tuning: Mapping[str, Any],
        style_image: Image.Image | None = None,
        style_weight: int | None = None,
    ) -> Look:
        """The look of a request's ``tuning`` and style reference. Values were checked
        when the job was created; here they are only clamped to their ranges."""
        weight = DEFAULT_STYLE_WEIGHT if style_weight is None else style_weight
        return cls(
            stylize=_number(tuning, "stylize", DEFAULT_STYLIZE, 1000.0),
            chaos=_number(tuning, "chaos", 0.0, 100.0),
            weird=_number(tuning, "weird", 0.0, 3000.0),
            tile=tuning.get("tile") in (True, 1, "true"),
            style=colour_stats(style_image) if style_image is not None else None,
            # --sw 100 (the default) moves the palette most of the way; 0 not at all.
            style_amount=min(1.0, 0.75 * max(0, weight) / DEFAULT_STYLE_WEIGHT),
        )

    @property
    def spread(self) -> float:
        """How much further than usual seeds should scatter: 1 without chaos, 3 at 100."""
        return 1.0 + self.chaos / 50.0


def _number(tuning: Mapping[str, Any], key: str, default: float, top: float) -> float:
    value = tuning.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return min(top, max(0.0, float(value)))


def render_scene(
    prompt: str, negative: str | None, style: str, seed: int, size: Size, look: Look
) -> Image.Image:
    """A render of ``prompt`` at ``size`` with ``look`` applied (tiling excepted: it
    belongs to the finished picture, see :func:`make_tileable`)."""
    image = render_image(prompt, negative, style, seed, *size)
    if look.stylize != DEFAULT_STYLIZE:
        image = _stylize(image, prompt, negative, style, seed, look.stylize)
    if look.chaos > 0:
        image = _scatter(image, seed, look.chaos / 100.0)
    if look.weird > 0:
        image = _weird(image, seed, look.weird / 3000.0)
    if look.style is not None and look.style_amount > 0:
        image = match_colours(image, look.style, look.style_amount)
    return image


def _stylize(
    image: Image.Image, prompt: str, negative: str | None, style: str, seed: int, value: float
) -> Image.Image:
    # 0..100 mixes toward the unstyled render, 100..1000 pushes up to 3x past it.
    k = value / DEFAULT_STYLIZE if value <= DEFAULT_STYLIZE else 1.0 + (value - 100.0) / 450.0
    if style != "none":
        plain = render_image(prompt, negative, "none", seed, *image.size)
        image = Image.blend(plain, image, k)  # Pillow extrapolates (and clips) past 1
    image = ImageEnhance.Color(image).enhance(1.0 + 0.35 * (k - 1.0))
    return ImageEnhance.Contrast(image).enhance(1.0 + 0.12 * (k - 1.0))


def _scatter(image: Image.Image, seed: int, amount: float) -> Image.Image:
    rng = seeded(seed, "chaos")
    turn, exposure, zoom, across, down = rng.uniform(-1.0, 1.0, 5)
    mirror = rng.uniform(0.0, 1.0)
    image = recolour(image, hue_matrix(float(turn) * 0.3 * amount))
    image = ImageEnhance.Brightness(image).enhance(1.0 + float(exposure) * 0.3 * amount)
    # Reframed: a seeded window of up to 1/1.4 of the picture, anywhere in it.
    scale = 1.0 + 0.4 * amount * (0.5 + 0.5 * float(zoom))
    width, height = image.size
    w, h = width / scale, height / scale
    left = (width - w) * (0.5 + 0.5 * float(across))
    top = (height - h) * (0.5 + 0.5 * float(down))
    box = (left, top, left + w, top + h)
    image = image.resize(image.size, Image.Resampling.BICUBIC, box=box)
    # From chaos 25 up, a growing share of seeds mirror the composition (half at 100).
    if mirror < 0.5 * max(0.0, amount - 0.25) / 0.75:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def _weird(image: Image.Image, seed: int, amount: float) -> Image.Image:
    # Each output channel takes a seeded mix of the three: rows sum to one, so white
    # stays white and the picture's light holds while its colours go strange.
    mix = seeded(seed, "weird").dirichlet(np.ones(3) * 0.6, size=3)
    matrix = np.eye(3) + (mix - np.eye(3)) * (0.85 * amount)
    image = recolour(image, tuple(v for row in matrix for v in (*row, 0.0)))
    return ImageEnhance.Color(image).enhance(1.0 + 0.6 * amount)


def make_tileable(image: Image.Image) -> Image.Image:
    """``image`` made seamless when repeated: near each edge it blends into a copy
    turned half a side around, whose pixels there continue across the wrap. Done one
    axis at a time, since the second pass keeps the first one's wrap."""
    out = image.convert("RGB")
    for axis in (0, 1):
        side = out.size[axis]
        shifted = ImageChops.offset(out, side // 2 if axis == 0 else 0, side // 2 if axis else 0)
        edge = np.minimum(np.arange(side), side - 1 - np.arange(side)) / (side * _TILE_BAND)
        t = np.clip(edge, 0.0, 1.0)
        ramp = (t * t * (3.0 - 2.0 * t)).astype(np.float32)
        weights = np.broadcast_to(ramp[None, :] if axis == 0 else ramp[:, None], out.size[::-1])
        out = Image.composite(out, shifted, mask_image(weights))
    return out
