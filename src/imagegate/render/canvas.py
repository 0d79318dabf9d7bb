"""The working surface: a float RGB array at the internal resolution, with coordinates
measured in image heights (y 0..1 down, x 0..aspect across) so shapes keep their
proportions at every aspect ratio.

Colour is stored planar, shape (3, h, w): a (h, w) mask then broadcasts over long
contiguous rows, about ten times faster in numpy than over a trailing axis of three."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from imagegate.render.noise import Array
from imagegate.render.palette import RGB

Colour = RGB | Array


class Canvas:
    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.aspect = width / height
        # Broadcastable axes rather than full grids: half the memory traffic.
        self.x: Array = ((np.arange(width, dtype=np.float32) + 0.5) / height)[None, :]
        self.y: Array = ((np.arange(height, dtype=np.float32) + 0.5) / height)[:, None]
        self.u: Array = self.x[0] / np.float32(self.aspect)  # 0..1 across, for 1-D noise
        self.img: Array = np.zeros((3, height, width), dtype=np.float32)
        # The top of the front-most surface per column, so subjects can stand on it.
        self.ground: Array = np.ones(width, dtype=np.float32)
        # Textures several layers share (rock), made once per image.
        self.textures: dict[str, Array] = {}

    def paint(self, mask: Array, colour: Colour) -> None:
        """Alpha-blend ``colour`` (an RGB tuple or a (3, h, w) field) where ``mask`` is set."""
        rows, m, col = self._span(mask, _as_colour(colour))
        view = self.img[:, rows]
        view += (col - view) * m

    def add(self, mask: Array, colour: Colour) -> None:
        """Add light: glows, stars, bokeh."""
        rows, m, col = self._span(mask, _as_colour(colour))
        self.img[:, rows] += col * m

    def _span(self, mask: Array, colour: Array) -> tuple[slice, Array, Array]:
        # Most masks cover a band of rows (a range, a subject, the sky): work on that
        # band only. Finding it costs one pass over the mask, not three over the image.
        if mask.ndim != 2 or mask.shape[0] != self.h:
            return slice(None), mask, colour
        used = np.flatnonzero(mask.max(axis=1) > 0.0)
        if used.size == 0:
            return slice(0, 0), mask[0:0], colour[:, 0:0] if colour.shape[1] > 1 else colour
        rows = slice(int(used[0]), int(used[-1]) + 1)
        return rows, mask[rows], colour[:, rows] if colour.shape[1] > 1 else colour

    def below(
        self, profile: Array, soft: float = 1.0, steep: bool = True, first_row: int = 0
    ) -> Array:
        """Anti-aliased mask of everything under a per-column line (in heights).

        With ``steep``, the vertical distance to the line is divided by the line's
        slope, approximating the true distance, so steep flanks (tree sides) come out
        smooth instead of stair-stepped. Leave it off for deliberate vertical steps.
        ``first_row`` returns only the rows from there down.
        """
        scale: Array = np.full(profile.shape, self.h / soft, dtype=np.float32)
        if steep:
            slope = np.gradient(profile) * np.float32(self.h)
            # Capped: at a spike the slope is huge and the column would turn see-through.
            scale = scale / np.minimum(np.sqrt(1.0 + slope * slope), 3.0)
        return np.clip((self.y[first_row:] - profile[None, :]) * scale[None, :] + 0.5, 0.0, 1.0)

    def disc(self, cx: float, cy: float, r: float, soft: float = 1.0) -> Array:
        d = np.sqrt((self.x - cx) ** 2 + (self.y - cy) ** 2)
        return np.clip((r - d) * (self.h / soft) + 0.5, 0.0, 1.0)

    def distance(self, cx: float, cy: float) -> Array:
        return np.asarray(np.sqrt((self.x - cx) ** 2 + (self.y - cy) ** 2), dtype=np.float32)

    def vertical(self, stops: list[tuple[float, RGB]]) -> Array:
        """A (3, h, 1) gradient through ``stops`` (y, colour), for broadcasting."""
        ys = np.array([s[0] for s in stops], dtype=np.float32)
        cols = np.array([s[1] for s in stops], dtype=np.float32)
        y = self.y[:, 0]
        out = np.stack([np.interp(y, ys, cols[:, c]) for c in range(3)])
        return out[:, :, None].astype(np.float32)

    def shape(self, draw: Callable[[ImageDraw.ImageDraw, float], None]) -> Array:
        """A mask from Pillow drawing calls, drawn at twice the size and box-reduced so
        polygon edges come out anti-aliased. ``draw`` gets the pixels per height unit."""
        mask = Image.new("L", (self.w * 2, self.h * 2), 0)
        draw(ImageDraw.Draw(mask), float(self.h * 2))
        return np.asarray(mask.reduce(2), dtype=np.float32) / np.float32(255.0)

    def column(self, x: float) -> int:
        return int(np.clip(x * self.h, 0, self.w - 1))


def _as_colour(colour: Colour) -> NDArray[np.float32]:
    return rgb(colour) if isinstance(colour, tuple) else colour


def rgb(colour: RGB) -> Array:
    """A colour shaped (3, 1, 1), to broadcast against planar images."""
    return np.array(colour, dtype=np.float32).reshape(3, 1, 1)


def smoothstep(edge0: float, edge1: float, x: Array) -> Array:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return np.asarray(t * t * (3.0 - 2.0 * t), dtype=np.float32)
