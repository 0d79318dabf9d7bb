"""The foreground subject: one simple silhouette (figure, tree, cabin, boat, lighthouse,
castle) drawn with Pillow polygons and rim-lit from the side of the sun."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import ImageDraw

from imagegate.render.canvas import Canvas
from imagegate.render.layout import Layout
from imagegate.render.noise import Array
from imagegate.render.palette import mix
from imagegate.render.plan import Plan

Pen = Callable[[float, float], tuple[float, float]]
Shape = Callable[[ImageDraw.ImageDraw, Pen], None]
_ON_LAND = ("figure", "tree", "cabin", "castle", "lighthouse", "animal")


def paint_subject(c: Canvas, plan: Plan, lay: Layout) -> None:
    rng = plan.rng("subject")
    choices = ("figure",) if "city" in plan.themes else _ON_LAND
    kind = plan.subject or str(rng.choice(choices + (("boat",) if plan.has("water") else ())))
    x = lay.subject_x
    col = c.column(x)
    if plan.has("water"):
        land = np.flatnonzero(c.ground < 0.97)
        if kind != "boat" and land.size:
            col = int(land[np.argmin(np.abs(land - col))])
            x = (col + 0.5) / c.h
        elif kind != "boat":
            kind = "boat"
    if kind == "boat":
        y = lay.horizon + (1.0 - lay.horizon) * float(rng.uniform(0.15, 0.4))
    else:
        y = float(c.ground[col]) + 0.015
    size = (0.12 + 0.5 * max(0.0, y - lay.horizon)) * lay.subject_scale
    size *= max(1.0, 1.0 / c.aspect) ** 0.5  # a tall frame has room for a taller subject
    mask = c.shape(_placed(_SHAPES[kind], x, y, size))
    p = plan.palette
    body = mix(mix(p.near, p.ground, 0.7), (0.0, 0.0, 0.0), 0.35)
    if plan.colour:  # 'a red fox': the subject, more than the sky, wears the colour
        body = mix(body, plan.colour, 0.55)
    c.paint(mask, body)
    _rim(c, mask, lay, p.light)
    if kind in ("cabin", "lighthouse", "castle"):
        glow_y = y - size * (0.25 if kind == "cabin" else 0.8)
        d = c.distance(x, glow_y)
        c.add(np.exp(-d / (size * 0.12)) * np.float32(0.5), mix(p.accent, (1.0, 0.85, 0.5), 0.7))


def _placed(
    shape: Shape, x: float, y: float, h: float
) -> Callable[[ImageDraw.ImageDraw, float], None]:
    """``shape`` drawn in its own units (0..1 up from its base at x, y), scaled by ``h``."""

    def draw(d: ImageDraw.ImageDraw, s: float) -> None:
        def pen(dx: float, dy: float) -> tuple[float, float]:
            return ((x + dx * h) * s, (y - dy * h) * s)

        shape(d, pen)

    return draw


def _rim(c: Canvas, mask: Array, lay: Layout, light: tuple[float, float, float]) -> None:
    shift = 1 if lay.light_dir > 0 else -1
    edge = np.clip(mask - np.roll(mask, shift, axis=1), 0.0, 1.0)
    edge = np.maximum(edge, np.clip(mask - np.roll(mask, 1, axis=0), 0.0, 1.0) * 0.6)
    c.add(edge * np.float32(0.45), light)


def _figure(d: ImageDraw.ImageDraw, pt: Pen) -> None:
    head = 0.075
    d.ellipse([pt(-head, 0.98), pt(head, 0.83)], fill=255)
    d.polygon([pt(-0.12, 0.8), pt(0.12, 0.8), pt(0.17, 0.32), pt(-0.17, 0.32)], fill=255)
    d.polygon([pt(-0.1, 0.34), pt(-0.02, 0.34), pt(-0.04, 0.0), pt(-0.1, 0.0)], fill=255)
    d.polygon([pt(0.02, 0.34), pt(0.1, 0.34), pt(0.1, 0.0), pt(0.04, 0.0)], fill=255)


def _tree(d: ImageDraw.ImageDraw, pt: Pen) -> None:
    d.polygon([pt(-0.06, 0.0), pt(0.06, 0.0), pt(0.03, 0.6), pt(-0.03, 0.6)], fill=255)
    for dx, dy, r in ((0, 0.72, 0.3), (-0.25, 0.6, 0.22), (0.25, 0.62, 0.24), (0.05, 0.92, 0.2)):
        d.ellipse([pt(dx - r, dy + r * 0.8), pt(dx + r, dy - r * 0.8)], fill=255)


def _cabin(d: ImageDraw.ImageDraw, pt: Pen) -> None:
    d.rectangle([pt(-0.45, 0.5), pt(0.45, 0.0)], fill=255)
    d.polygon([pt(-0.55, 0.48), pt(0.0, 0.9), pt(0.55, 0.48)], fill=255)
    d.rectangle([pt(0.22, 0.9), pt(0.32, 0.6)], fill=255)


def _boat(d: ImageDraw.ImageDraw, pt: Pen) -> None:
    d.polygon([pt(-0.6, 0.18), pt(0.6, 0.18), pt(0.45, 0.0), pt(-0.4, 0.0)], fill=255)
    d.polygon([pt(0.0, 1.0), pt(0.0, 0.24), pt(0.48, 0.24)], fill=255)
    d.polygon([pt(-0.04, 0.9), pt(-0.04, 0.24), pt(-0.4, 0.24)], fill=255)


def _lighthouse(d: ImageDraw.ImageDraw, pt: Pen) -> None:
    d.polygon([pt(-0.13, 0.0), pt(0.13, 0.0), pt(0.08, 0.72), pt(-0.08, 0.72)], fill=255)
    d.rectangle([pt(-0.07, 0.86), pt(0.07, 0.72)], fill=255)
    d.polygon([pt(-0.1, 0.86), pt(0.0, 1.0), pt(0.1, 0.86)], fill=255)


def _castle(d: ImageDraw.ImageDraw, pt: Pen) -> None:
    d.rectangle([pt(-0.5, 0.45), pt(0.5, 0.0)], fill=255)
    for i in range(-5, 5):
        d.rectangle([pt(0.1 * i + 0.02, 0.5), pt(0.1 * i + 0.07, 0.44)], fill=255)
    for dx, top in ((-0.5, 0.8), (0.5, 0.75), (0.0, 1.0)):
        d.rectangle([pt(dx - 0.1, top - 0.1), pt(dx + 0.1, 0.0)], fill=255)
        d.polygon(
            [pt(dx - 0.13, top - 0.1), pt(dx, top + 0.12), pt(dx + 0.13, top - 0.1)], fill=255
        )


def _animal(d: ImageDraw.ImageDraw, pt: Pen) -> None:
    # A four-legged side view: fox, dog, deer alike at silhouette scale.
    d.ellipse([pt(-0.45, 0.62), pt(0.3, 0.3)], fill=255)
    d.polygon(
        [pt(0.18, 0.55), pt(0.3, 0.82), pt(0.42, 0.84), pt(0.55, 0.7), pt(0.36, 0.5)], fill=255
    )
    d.polygon([pt(0.3, 0.82), pt(0.32, 0.98), pt(0.38, 0.84)], fill=255)
    d.polygon([pt(0.38, 0.84), pt(0.44, 0.97), pt(0.45, 0.8)], fill=255)
    for x in (-0.38, -0.28, 0.12, 0.22):
        d.polygon([pt(x, 0.4), pt(x + 0.07, 0.4), pt(x + 0.06, 0.0), pt(x + 0.01, 0.0)], fill=255)
    d.polygon(
        [pt(-0.42, 0.55), pt(-0.75, 0.45), pt(-0.8, 0.3), pt(-0.6, 0.38), pt(-0.4, 0.42)], fill=255
    )


_SHAPES: dict[str, Shape] = {
    "animal": _animal,
    "figure": _figure,
    "tree": _tree,
    "cabin": _cabin,
    "boat": _boat,
    "lighthouse": _lighthouse,
    "castle": _castle,
}
