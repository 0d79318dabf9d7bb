"""Product outlines in parts (body, sole, strap...), each a mask with a colour role, so
the studio painter can shade them as one volume and colour them apart."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from PIL import ImageDraw

from imagegate.providers.render.canvas import Canvas
from imagegate.providers.render.noise import Array

Point = tuple[float, float]


@dataclass(frozen=True)
class Part:
    mask: Array
    role: str  # main, contrast, light, dark, metal, accent
    gloss: float = 0.35


class _Pen:
    """Maps shape units (x across from the centre, y up from the base, both in object
    sizes) to canvas pixels; ``facing`` mirrors the shape."""

    def __init__(self, cx: float, base: float, size: float, facing: float) -> None:
        self.cx, self.base, self.size, self.facing = cx, base, size, facing

    def points(self, pts: list[Point], s: float) -> list[Point]:
        return [
            ((self.cx + x * self.size * self.facing) * s, (self.base - y * self.size) * s)
            for x, y in pts
        ]

    def box(self, x0: float, y0: float, x1: float, y1: float, s: float) -> list[float]:
        (ax, ay), (bx, by) = self.points([(x0, y0), (x1, y1)], s)
        return [min(ax, bx), min(ay, by), max(ax, bx), max(ay, by)]


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


def _ellipse(c: Canvas, pen: _Pen, x0: float, y0: float, x1: float, y1: float) -> Array:
    return c.shape(lambda d, s: d.ellipse(pen.box(x0, y0, x1, y1, s), fill=255))


def _rounded(c: Canvas, pen: _Pen, x0: float, y0: float, x1: float, y1: float, r: float) -> Array:
    def draw(d: ImageDraw.ImageDraw, s: float) -> None:
        d.rounded_rectangle(pen.box(x0, y0, x1, y1, s), radius=r * pen.size * s, fill=255)

    return c.shape(draw)


def shoe(c: Canvas, cx: float, base: float, size: float, facing: float) -> list[Part]:
    pen = _Pen(cx, base, size * 1.3, facing)  # long and low: fill the frame's width
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
                width=max(1, int(s * size * 0.018)),
            )

    return [
        Part(_polygon(c, pen, upper, smooth=3), "main", 0.4),
        Part(_polygon(c, pen, stripe, smooth=2), "contrast", 0.3),
        Part(_polygon(c, pen, collar, smooth=2), "dark", 0.1),
        Part(c.shape(laces), "light", 0.2),
        Part(_polygon(c, pen, sole, smooth=2), "light", 0.25),
    ]


def watch(c: Canvas, cx: float, base: float, size: float, facing: float) -> list[Part]:
    pen = _Pen(cx, base, size * 0.8, facing)
    return [
        Part(_rounded(c, pen, -0.15, 0.0, 0.15, 1.0, 0.06), "main", 0.15),
        Part(_rounded(c, pen, 0.26, 0.54, 0.33, 0.46, 0.02), "metal", 0.6),
        Part(_ellipse(c, pen, -0.3, 0.8, 0.3, 0.2), "metal", 0.7),
        Part(_ellipse(c, pen, -0.25, 0.75, 0.25, 0.25), "dark", 0.5),
        Part(
            _polygon(c, pen, [(-0.01, 0.5), (0.01, 0.5), (0.01, 0.7), (-0.01, 0.7)]), "light", 0.2
        ),
        Part(
            _polygon(c, pen, [(0.0, 0.51), (0.0, 0.49), (0.14, 0.45), (0.14, 0.47)]), "light", 0.2
        ),
    ]


def bottle(c: Canvas, cx: float, base: float, size: float, facing: float) -> list[Part]:
    pen = _Pen(cx, base, size, facing)
    return [
        Part(_rounded(c, pen, -0.2, 0.0, 0.2, 0.62, 0.08), "main", 0.6),
        Part(
            _polygon(c, pen, [(-0.2, 0.55), (0.2, 0.55), (0.07, 0.75), (-0.07, 0.75)]), "main", 0.6
        ),
        Part(_rounded(c, pen, -0.07, 0.72, 0.07, 0.9, 0.02), "main", 0.6),
        Part(_rounded(c, pen, -0.08, 0.86, 0.08, 1.0, 0.03), "metal", 0.7),
        Part(_rounded(c, pen, -0.16, 0.12, 0.16, 0.4, 0.02), "light", 0.1),
    ]


def jar(c: Canvas, cx: float, base: float, size: float, facing: float) -> list[Part]:
    pen = _Pen(cx, base, size, facing)
    return [
        Part(_rounded(c, pen, -0.3, 0.0, 0.3, 0.42, 0.06), "main", 0.45),
        Part(_ellipse(c, pen, -0.3, 0.47, 0.3, 0.37), "main", 0.45),
        Part(_rounded(c, pen, -0.31, 0.44, 0.31, 0.58, 0.04), "metal", 0.6),
        Part(_rounded(c, pen, -0.3, 0.12, 0.3, 0.28, 0.0), "contrast", 0.15),
    ]


def box(c: Canvas, cx: float, base: float, size: float, facing: float) -> list[Part]:
    pen = _Pen(cx, base, size, facing)
    front = [(-0.35, 0.0), (0.12, -0.02), (0.12, 0.5), (-0.35, 0.52)]
    side = [(0.12, -0.02), (0.36, 0.06), (0.36, 0.56), (0.12, 0.5)]
    top = [(-0.35, 0.52), (0.12, 0.5), (0.36, 0.56), (-0.11, 0.58)]
    return [
        Part(_polygon(c, pen, front), "main", 0.3),
        Part(_polygon(c, pen, side), "accent", 0.1),
        Part(_polygon(c, pen, top), "light", 0.3),
    ]


SHAPES: dict[str, Callable[[Canvas, float, float, float, float], list[Part]]] = {
    "shoe": shoe,
    "watch": watch,
    "bottle": bottle,
    "jar": jar,
    "box": box,
}
