"""A studio product shot: seamless backdrop, spotlight, the object on a pedestal (or on
a wet, reflective floor), with a soft contact shadow."""

from __future__ import annotations

import numpy as np

from imagegate.providers.render import effects
from imagegate.providers.render.canvas import Canvas, rgb, smoothstep
from imagegate.providers.render.layout import make_layout
from imagegate.providers.render.noise import blur, fbm2d
from imagegate.providers.render.palette import RGB, luminance, mix, shift_hue
from imagegate.providers.render.plan import Plan
from imagegate.providers.render.product_shapes import SHAPES, Part

_WET = frozenset({"water", "rain"})
_LIT_STYLES = frozenset({"fantasy", "neon", "cinematic"})


def paint_product(c: Canvas, plan: Plan) -> None:
    rng = plan.rng("product")
    wet = bool(plan.themes & _WET)
    floor = 0.70 + 0.06 * float(rng.uniform()) if not wet else 0.66 + 0.06 * float(rng.uniform())
    _backdrop(c, plan, floor)
    if plan.has("bokeh") and (plan.themes & {"night", "city"} or plan.style in _LIT_STYLES):
        effects.paint_bokeh(c, plan, make_layout(plan, c.aspect))
    cx = c.aspect / 2 + (float(rng.uniform()) - 0.5) * 0.06 * c.aspect
    size = min(0.62, 0.5 * c.aspect) * float(rng.uniform(0.9, 1.05))
    base = floor + 0.02
    if not wet:
        base = _pedestal(c, plan, cx, floor, size)
    facing = 1.0 if rng.uniform() < 0.5 else -1.0
    parts = SHAPES[plan.product or "box"](c, cx, base, size, facing)
    _shadow(c, cx, base, size)
    _paint_parts(c, plan, parts)
    if wet:
        _wet_floor(c, plan, floor + 0.02)


def _backdrop(c: Canvas, plan: Plan, floor: float) -> None:
    p = plan.palette
    neutral = (0.55, 0.55, 0.57)
    wall = mix(p.sky_mid, neutral, 0.55)
    if "mood" in plan.themes:  # a darker set, lit only by the key light
        wall = mix(wall, (0.05, 0.05, 0.06), 0.55)
    c.img[:] = c.vertical(
        [
            (0.0, mix(wall, (0.0, 0.0, 0.0), 0.55)),
            (floor, mix(wall, (1.0, 1.0, 1.0), 0.15)),
            (floor + 0.05, mix(wall, neutral, 0.5)),
            (1.0, mix(wall, (0.0, 0.0, 0.0), 0.45)),
        ]
    )
    # The key light: an ellipse of light on the wall behind the subject.
    spot = np.exp(-(((c.x - c.aspect / 2) / 0.55) ** 2 + ((c.y - floor * 0.6) / 0.45) ** 2))
    c.add(spot * np.float32(0.35), mix(p.light, (1.0, 1.0, 1.0), 0.5))


def _pedestal(c: Canvas, plan: Plan, cx: float, floor: float, size: float) -> float:
    """A cylinder; returns the y of its top face, where the object stands."""
    width = size * 0.62
    top = floor - 0.12
    ry = width * 0.16
    body = (np.abs(c.x - cx) < width) & (c.y > top) & (c.y < floor + 0.04)
    rel = (c.x - cx) / width
    bottom = np.clip((1.0 - rel**2 - ((c.y - floor - 0.04) / ry) ** 2) * 40, 0.0, 1.0)
    cap = np.clip((1.0 - rel**2 - ((c.y - top) / ry) ** 2) * 40, 0.0, 1.0)
    side = np.clip(body.astype(np.float32) + bottom, 0.0, 1.0)
    tone = rgb(mix(plan.palette.horizon, (0.92, 0.92, 0.92), 0.6))
    roll = 0.62 + 0.38 * np.cos(np.clip(rel - 0.35, -1.5, 1.5) * 1.2)
    c.paint(side * (np.abs(rel) <= 1.0), tone * roll)
    c.paint(cap, tone * np.float32(1.05))
    return top


def _shadow(c: Canvas, cx: float, base: float, size: float) -> None:
    rx, ry = size * 0.5, size * 0.06
    d = ((c.x - cx) / rx) ** 2 + ((c.y - base) / ry) ** 2
    c.img *= 1.0 - 0.55 * np.exp(-d * 2.0)


def _paint_parts(c: Canvas, plan: Plan, parts: list[Part]) -> None:
    whole = np.clip(sum((p.mask for p in parts), np.zeros((c.h, c.w), np.float32)), 0.0, 1.0)
    volume = blur(whole, c.h * 0.04)
    # Light from the upper left: the volume rises toward the lit edge.
    lit = np.clip((volume - np.roll(volume, (3, 3), axis=(0, 1))) * 6.0, -1.0, 1.0)
    base_colour = plan.colour or plan.palette.accent
    for part in parts:
        colour = _part_colour(part.role, base_colour)
        body = rgb(colour) * (0.6 + 0.45 * volume)
        body += np.maximum(lit, 0.0) * part.gloss
        body *= 1.0 + 0.35 * np.minimum(lit, 0.0)
        c.paint(part.mask, body)


def _part_colour(role: str, base: RGB) -> RGB:
    if role == "main":
        return base
    if role == "contrast":
        return (0.12, 0.12, 0.13) if luminance(base) > 0.45 else (0.95, 0.95, 0.95)
    if role == "light":
        return (0.93, 0.93, 0.92)
    if role == "dark":
        return (0.07, 0.07, 0.08)
    if role == "metal":
        return (0.78, 0.76, 0.72)
    return shift_hue(base, 0.5)


def _wet_floor(c: Canvas, plan: Plan, floor: float) -> None:
    top = int(floor * c.h)
    rows = c.h - top
    if rows <= 0 or top <= 0:
        return
    rng = plan.rng("floor")
    ripple = fbm2d(rng, (c.w, rows), (3.0 * c.aspect, 6.0), 3)
    shift = (ripple * 0.012 * c.h).astype(np.intp)
    src_y = np.clip(top - 1 - np.arange(rows)[:, None] + shift, 0, top - 1)
    src_x = np.clip(np.arange(c.w)[None, :] + shift, 0, c.w - 1)
    mirror = c.img[:, src_y, src_x]
    asphalt = rgb(mix(plan.palette.ground, (0.07, 0.075, 0.085), 0.7))
    grit = fbm2d(rng, (c.w, rows), (40.0 * c.aspect, 40.0), 2)
    puddles = smoothstep(-0.1, 0.3, fbm2d(rng, (c.w, rows), (2.0 * c.aspect, 3.0), 3))
    depth = (np.arange(rows, dtype=np.float32) / rows)[:, None]
    shine = (0.35 + 0.5 * puddles) * (1.0 - 0.5 * depth)
    ground = asphalt * (1.0 + 0.35 * grit)
    c.img[:, top:] = ground + (mirror * np.float32(0.85) - ground) * shine
