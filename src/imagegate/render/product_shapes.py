"""Product outlines in parts (body, sole, strap...), each a mask with a colour role, so
the studio painter can shade them as one volume and colour them apart."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from PIL import ImageDraw

from imagegate.render.canvas import Canvas
from imagegate.render.noise import Array

Point = tuple[float, float]


@dataclass(frozen=True)
class Part:
    mask: Array
    role: str  # main, accent, trim, sole, shade, dark, metal
    gloss: float = 0.35


@dataclass(frozen=True)
class Pose:
    """Where the object stands (``cx``, ``base`` in image heights), how big it is, which
    way it faces (+1 or -1) and its tilt in radians (positive lifts the front)."""

    cx: float
    base: float
    size: float
    facing: float = 1.0
    tilt: float = 0.0


# Shape units the object spans: half its width and its height (in sizes). The painter
# uses them to keep every pose inside the frame.
EXTENT: dict[str, tuple[float, float]] = {
    "shoe": (0.7, 0.56),
    "watch": (0.27, 0.8),
    "bottle": (0.2, 1.0),
    "jar": (0.31, 0.58),
    "box": (0.36, 0.58),
}


class _Pen:
    """Maps shape units (x across from the centre, y up from the base, both in object
    sizes) to canvas pixels; ``facing`` mirrors the shape, ``tilt`` turns it about a
    point a quarter of its height up."""

    def __init__(self, pose: Pose, scale: float, pivot: float = 0.2) -> None:
        self.cx, self.base, self.size = pose.cx, pose.base, pose.size * scale
        self.facing, self.pivot = pose.facing, pivot
        self.cos, self.sin = math.cos(pose.tilt), math.sin(pose.tilt)

    def points(self, pts: list[Point], s: float) -> list[Point]:
        out = []
        for x, y in pts:
            dy = y - self.pivot
            rx, ry = x * self.cos - dy * self.sin, x * self.sin + dy * self.cos + self.pivot
            out.append(
                ((self.cx + rx * self.size * self.facing) * s, (self.base - ry * self.size) * s)
            )
        return out


def _polygon(c: Canvas, pen: _Pen, pts: list[Point], smooth: int = 0) -> Array:
    for _ in range(smooth):
        pts = _chaikin(pts)
    return c.shape(lambda d, s: d.polygon(pen.points(pts, s), fill=255))


def _chaikin(pts: list[Point]) -> list[Point]:
    """One round of corner cutting: a few rounds turn a coarse outline into a curve."""
    out: list[Point] = []
    for (ax, ay), (bx, by) in zip(pts, pts[1:] + pts[:1], strict=True):
        out += [(0.75 * ax + 0.25 * bx, 0.75 * ay + 0.25 * by)]
        out += [(0.25 * ax + 0.75 * bx, 0.25 * ay + 0.75 * by)]
    return out


# Ellipses and rounded boxes as polygons, so they turn with the pose like the rest.
_ROUND = [(math.cos(2 * math.pi * i / 40), math.sin(2 * math.pi * i / 40)) for i in range(40)]


def _ellipse(c: Canvas, pen: _Pen, x0: float, y0: float, x1: float, y1: float) -> Array:
    mx, my, rx, ry = (x0 + x1) / 2, (y0 + y1) / 2, abs(x1 - x0) / 2, abs(y1 - y0) / 2
    return _polygon(c, pen, [(mx + rx * u, my + ry * v) for u, v in _ROUND])


def _rounded(c: Canvas, pen: _Pen, x0: float, y0: float, x1: float, y1: float, r: float) -> Array:
    xa, xb, ya, yb = min(x0, x1), max(x0, x1), min(y0, y1), max(y0, y1)
    r = min(r, (xb - xa) / 2, (yb - ya) / 2)
    pts: list[Point] = []
    for (cx, cy), quarter in (
        ((xb - r, yb - r), 0),
        ((xa + r, yb - r), 1),
        ((xa + r, ya + r), 2),
        ((xb - r, ya + r), 3),
    ):
        for u, v in _ROUND[quarter * 10 : quarter * 10 + 11]:
            pts.append((cx + r * u, cy + r * v))
    return _polygon(c, pen, pts)


def shoe(c: Canvas, pose: Pose) -> list[Part]:
    pen = _Pen(pose, 1.3, pivot=0.1)  # long and low: fill the frame's width
    upper = [
        (-0.48, 0.08), (-0.50, 0.22), (-0.47, 0.36), (-0.38, 0.42), (-0.28, 0.40), (-0.2, 0.34),
        (-0.08, 0.30), (0.05, 0.26), (0.18, 0.21), (0.30, 0.16), (0.42, 0.13), (0.50, 0.09),
        (0.48, 0.06), (-0.48, 0.06),
    ]  # fmt: skip
    sole = [
        (-0.51, 0.12), (-0.15, 0.09), (0.2, 0.08), (0.48, 0.09), (0.53, 0.06), (0.49, 0.0),
        (-0.45, 0.0), (-0.52, 0.04),
    ]  # fmt: skip
    stripe = [(-0.34, 0.13), (-0.1, 0.18), (0.22, 0.26), (-0.02, 0.15), (-0.3, 0.11)]
    collar = [(-0.44, 0.38), (-0.38, 0.41), (-0.29, 0.39), (-0.23, 0.34), (-0.38, 0.35)]

    def laces(d: ImageDraw.ImageDraw, s: float) -> None:
        for i in range(5):
            x, y = -0.16 + i * 0.075, 0.33 - i * 0.028
            d.line(
                pen.points([(x - 0.03, y - 0.035), (x + 0.03, y + 0.01)], s),
                fill=255,
                width=max(1, int(s * pose.size * 0.018)),
            )

    return [
        Part(_polygon(c, pen, upper, smooth=3), "main", 0.4),
        Part(_polygon(c, pen, stripe, smooth=2), "accent", 0.3),
        Part(_polygon(c, pen, collar, smooth=2), "dark", 0.1),
        Part(c.shape(laces), "trim", 0.2),
        Part(_polygon(c, pen, sole, smooth=2), "sole", 0.25),
    ]


def watch(c: Canvas, pose: Pose) -> list[Part]:
    pen = _Pen(pose, 0.8, pivot=0.5)
    return [
        Part(_rounded(c, pen, -0.15, 0.0, 0.15, 1.0, 0.06), "main", 0.15),
        Part(_rounded(c, pen, 0.26, 0.54, 0.33, 0.46, 0.02), "metal", 0.6),
        Part(_ellipse(c, pen, -0.3, 0.8, 0.3, 0.2), "metal", 0.7),
        Part(_ellipse(c, pen, -0.25, 0.75, 0.25, 0.25), "dark", 0.5),
        Part(_polygon(c, pen, [(-0.01, 0.5), (0.01, 0.5), (0.01, 0.7), (-0.01, 0.7)]), "trim", 0.2),
        Part(_polygon(c, pen, [(0.0, 0.51), (0.0, 0.49), (0.14, 0.45), (0.14, 0.47)]), "trim", 0.2),
    ]


def bottle(c: Canvas, pose: Pose) -> list[Part]:
    pen = _Pen(pose, 1.0, pivot=0.5)
    return [
        Part(_rounded(c, pen, -0.2, 0.0, 0.2, 0.62, 0.08), "main", 0.6),
        Part(
            _polygon(c, pen, [(-0.2, 0.55), (0.2, 0.55), (0.07, 0.75), (-0.07, 0.75)]), "main", 0.6
        ),
        Part(_rounded(c, pen, -0.07, 0.72, 0.07, 0.9, 0.02), "main", 0.6),
        Part(_rounded(c, pen, -0.08, 0.86, 0.08, 1.0, 0.03), "metal", 0.7),
        Part(_rounded(c, pen, -0.16, 0.12, 0.16, 0.4, 0.02), "trim", 0.1),
    ]


def jar(c: Canvas, pose: Pose) -> list[Part]:
    pen = _Pen(pose, 1.0, pivot=0.3)
    return [
        Part(_rounded(c, pen, -0.3, 0.0, 0.3, 0.42, 0.06), "main", 0.45),
        Part(_ellipse(c, pen, -0.3, 0.47, 0.3, 0.37), "main", 0.45),
        Part(_rounded(c, pen, -0.31, 0.44, 0.31, 0.58, 0.04), "metal", 0.6),
        Part(_rounded(c, pen, -0.3, 0.12, 0.3, 0.28, 0.0), "accent", 0.15),
    ]


def box(c: Canvas, pose: Pose) -> list[Part]:
    pen = _Pen(pose, 1.0, pivot=0.3)
    front = [(-0.35, 0.0), (0.12, -0.02), (0.12, 0.5), (-0.35, 0.52)]
    side = [(0.12, -0.02), (0.36, 0.06), (0.36, 0.56), (0.12, 0.5)]
    top = [(-0.35, 0.52), (0.12, 0.5), (0.36, 0.56), (-0.11, 0.58)]
    band = [(-0.35, 0.16), (0.12, 0.145), (0.12, 0.235), (-0.35, 0.25)]
    return [
        Part(_polygon(c, pen, front), "main", 0.3),
        Part(_polygon(c, pen, side), "shade", 0.1),
        Part(_polygon(c, pen, top), "trim", 0.3),
        Part(_polygon(c, pen, band), "accent", 0.2),
    ]


SHAPES: dict[str, Callable[[Canvas, Pose], list[Part]]] = {
    "shoe": shoe,
    "watch": watch,
    "bottle": bottle,
    "jar": jar,
    "box": box,
}
