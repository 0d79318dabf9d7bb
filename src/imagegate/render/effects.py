"""Atmosphere laid over a finished scene: fog, rain, snowfall, fire and bokeh lights."""

from __future__ import annotations

import numpy as np

from imagegate.render.canvas import Canvas, rgb, smoothstep
from imagegate.render.layout import Layout
from imagegate.render.noise import fbm2d
from imagegate.render.palette import RGB, mix, shift_hue
from imagegate.render.plan import Plan


def paint_fog(c: Canvas, plan: Plan, lay: Layout) -> None:
    n = fbm2d(plan.rng("fog"), (c.w, c.h), (1.0 * c.aspect, 5.0), 4)
    band = np.exp(-(((c.y - lay.horizon) / 0.16) ** 2))
    c.paint(np.clip(0.35 + 0.6 * n, 0.0, 1.0) * band * np.float32(0.7), plan.palette.horizon)


def paint_rain(c: Canvas, plan: Plan) -> None:
    # Noise with many columns and few rows stretches into vertical streaks.
    n = fbm2d(plan.rng("rain"), (c.w, c.h), (70.0 * c.aspect, 3.0), 2)
    streaks = smoothstep(0.35, 0.8, n) * np.float32(0.22)
    c.paint(streaks, mix(plan.palette.horizon, (0.85, 0.9, 1.0), 0.5))
    c.img *= np.float32(0.9)


def paint_snowfall(c: Canvas, plan: Plan) -> None:
    rng = plan.rng("snowfall")
    count = int(500 * c.aspect)
    ix = rng.integers(0, c.w, count)
    iy = rng.integers(0, c.h, count)
    weight = rng.uniform(0.3, 0.9, count) * 0.9
    for ch in range(3):
        np.add.at(c.img[ch], (iy, ix), weight * (1.0 - c.img[ch, iy, ix]))


def paint_fire(c: Canvas, plan: Plan, lay: Layout) -> None:
    rng = plan.rng("fire")
    tongues = fbm2d(rng, (c.w, c.h), (9.0 * c.aspect, 2.5), 4)
    height = 1.0 - c.y  # 0 at the bottom
    flame = smoothstep(0.0, 0.25, tongues * 0.45 + 0.38 - height)
    heat = np.clip(1.0 - height * 2.5, 0.0, 1.0)
    colour = rgb((1.0, 0.25, 0.03)) + heat * rgb((0.0, 0.65, 0.4))
    c.add(flame * np.float32(0.9), colour)
    c.add(np.exp(-height / 0.25) * np.float32(0.25), (1.0, 0.45, 0.1))
    _embers(c, rng)


def _embers(c: Canvas, rng: np.random.Generator) -> None:
    count = int(120 * c.aspect)
    ix = rng.integers(0, c.w, count)
    iy = (c.h * (1.0 - rng.uniform(0.0, 1.0, count) ** 2)).astype(np.intp).clip(0, c.h - 1)
    glow = rng.uniform(0.3, 1.0, count)
    for ch, k in enumerate((1.0, 0.6, 0.2)):
        np.add.at(c.img[ch], (iy, ix), glow * k)


def paint_bokeh(c: Canvas, plan: Plan, lay: Layout) -> None:
    """Out-of-focus lights: soft discs with a brighter rim, in the accent colour."""
    rng = plan.rng("bokeh")
    count = int((18 if "city" in plan.themes else 12) * c.aspect)
    hues = rng.uniform(-0.08, 0.08, count)
    for i in range(count):
        r = float(rng.uniform(0.01, 0.04))
        cx = float(rng.uniform(0.0, c.aspect))
        cy = float(lay.horizon + rng.normal(0.0, 0.18))
        strength = float(rng.uniform(0.12, 0.35))
        colour: RGB = shift_hue(plan.palette.accent, float(hues[i]))
        if plan.style == "fantasy":
            colour = mix(colour, (1.0, 0.82, 0.45), 0.5)
        _bokeh_disc(c, cx, cy, r, strength, colour)


def _bokeh_disc(c: Canvas, cx: float, cy: float, r: float, strength: float, colour: RGB) -> None:
    # Work on the bounding box only: the loop runs a few dozen times per image.
    x0, x1 = max(0, int((cx - r) * c.h) - 2), min(c.w, int((cx + r) * c.h) + 3)
    y0, y1 = max(0, int((cy - r) * c.h) - 2), min(c.h, int((cy + r) * c.h) + 3)
    if x0 >= x1 or y0 >= y1:
        return
    d = np.sqrt((c.x[:, x0:x1] - cx) ** 2 + (c.y[y0:y1] - cy) ** 2) / r
    body = np.clip((1.0 - d) * r * c.h / 1.5, 0.0, 1.0)
    rim = 0.6 + 0.4 * smoothstep(0.6, 1.0, d)
    c.img[:, y0:y1, x0:x1] += (body * rim * strength) * rgb(colour)
