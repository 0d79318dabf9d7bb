"""Water below the horizon: a rippled mirror of what is already painted above it."""

from __future__ import annotations

import numpy as np

from imagegate.render.canvas import Canvas, rgb
from imagegate.render.layout import Layout
from imagegate.render.noise import fbm2d
from imagegate.render.plan import Plan


def paint_water(c: Canvas, plan: Plan, lay: Layout) -> None:
    p, rng = plan.palette, plan.rng("water")
    top = int(lay.horizon * c.h)
    rows = c.h - top
    if rows <= 0 or top <= 0:
        return
    depth = (np.arange(rows, dtype=np.float32) / max(1, rows))[:, None]  # 0 at the horizon
    ripple = fbm2d(rng, (c.w, rows), (2.5 * c.aspect, 9.0), 3)
    # Ripples grow toward the viewer; in pixels so they look alike at every size.
    shift = ripple * (0.004 + 0.03 * depth) * c.h
    src_x = np.clip(np.arange(c.w)[None, :] + shift.astype(np.intp), 0, c.w - 1)
    src_y = np.clip(top - 1 - np.arange(rows)[:, None] - (shift * 0.3).astype(np.intp), 0, top - 1)
    mirror = c.img[:, src_y, src_x]
    water = rgb(p.water)
    tint = 0.25 + 0.45 * depth
    surface = mirror * np.float32(0.82) + (water - mirror * np.float32(0.82)) * tint
    if plan.has("sun") or plan.has("moon"):
        spread = 0.04 + 0.25 * depth
        path = np.exp(-(((c.x - lay.sun_x) / spread) ** 2))
        glitter = np.clip((ripple - 0.15) * 4.0, 0.0, 1.0) * path * np.float32(0.7)
        surface += glitter * rgb(p.light)
    c.img[:, top:] = surface
    c.img[:, top : top + 1] += np.float32(0.06)  # the bright line where water meets land
    c.ground = np.full(c.w, 1.0, dtype=np.float32)
