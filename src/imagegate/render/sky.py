"""Everything above the horizon: gradient, sun or moon with its glow, clouds, stars and
nebulae."""

from __future__ import annotations

import numpy as np

from imagegate.render.canvas import Canvas, rgb, smoothstep
from imagegate.render.layout import Layout
from imagegate.render.noise import fbm2d
from imagegate.render.palette import Palette, mix, shift_hue
from imagegate.render.plan import Plan


def paint_sky(c: Canvas, plan: Plan, lay: Layout) -> None:
    p = plan.palette
    c.img[:] = c.vertical(
        [
            (0.0, p.sky_top),
            (lay.horizon * 0.55, p.sky_mid),
            (lay.horizon, p.horizon),
            (1.0, p.horizon),
        ]
    )
    d = c.distance(lay.sun_x, lay.sun_y)
    warm = bool(plan.themes & {"sunset", "dawn", "fire"})
    strength = 0.55 if warm else 0.3
    if plan.has("moon"):
        strength = 0.18
    glow = np.exp(-d / 0.3) * 0.6 + np.exp(-d / 0.08) * 0.4
    c.add(glow * np.float32(strength), p.light)


def paint_sun(c: Canvas, plan: Plan, lay: Layout) -> None:
    p = plan.palette
    disc = c.disc(lay.sun_x, lay.sun_y, lay.sun_r, soft=1.5)
    if plan.has("moon"):
        r = lay.sun_r * 0.75
        disc = c.disc(lay.sun_x, lay.sun_y, r, soft=1.5)
        craters = fbm2d(plan.rng("moon"), (c.w, c.h), (c.aspect / r / 4, 1 / r / 4), 3)
        colour = mix(p.light, (1.0, 1.0, 1.0), 0.4)
        c.paint(disc, rgb(colour) * (0.88 + 0.12 * craters))
    else:
        c.paint(disc, mix(p.light, (1.0, 1.0, 0.95), 0.6))


def paint_clouds(c: Canvas, plan: Plan, lay: Layout) -> None:
    p, rng = plan.palette, plan.rng("clouds")
    rows = min(c.h, int(lay.horizon * c.h) + 1)  # clouds end at the horizon: paint above it
    n = fbm2d(rng, (c.w, rows), (1.6 * c.aspect, 5.0 * rows / c.h), 5)
    cover = float(rng.uniform(0.0, 0.3))
    y = c.y[:rows]
    band = smoothstep(0.0, 0.08, y) * (1.0 - smoothstep(lay.horizon * 0.55, lay.horizon, y))
    density = smoothstep(cover, cover + 0.35, n) * band
    # Light from the sun's side: compare each pixel with the one toward the sun.
    step = 2 if lay.sun_y < lay.horizon else -2
    lit = np.clip(0.5 + 6.0 * (np.roll(n, step, axis=0) - n), 0.0, 1.0)
    bright = rgb(mix(p.horizon, p.light, 0.6))
    dim = rgb(mix(p.sky_top, p.sky_mid, 0.6))
    if plan.has("moon"):
        bright = bright * np.float32(0.4)
    view = c.img[:, :rows]
    view += (dim + (bright - dim) * lit - view) * (density * np.float32(0.85))


def paint_stars(c: Canvas, plan: Plan, lay: Layout) -> None:
    rng = plan.rng("stars")
    count = int(260 * c.aspect)
    xs = rng.uniform(0.0, 1.0, count)
    ys = rng.uniform(0.0, 1.0, count) ** 1.4 * lay.horizon
    brightness = rng.uniform(0.2, 1.0, count) ** 3
    ix = np.clip((xs * c.w).astype(np.intp), 0, c.w - 1)
    iy = np.clip((ys * c.h).astype(np.intp), 0, c.h - 1)
    fade = 1.0 - smoothstep(0.5 * lay.horizon, lay.horizon, ys.astype(np.float32))
    for ch, k in enumerate((0.9, 0.93, 1.0)):
        np.add.at(c.img[ch], (iy, ix), brightness * fade * k)


def paint_nebula(c: Canvas, plan: Plan, lay: Layout, p: Palette) -> None:
    rng = plan.rng("nebula")
    for i, turn in enumerate((0.0, 0.12)):
        n = fbm2d(rng, (c.w, c.h), (1.2 * c.aspect, 1.5), 5)
        strength = smoothstep(0.0, 0.7, n) * np.float32(0.55 - 0.2 * i)
        c.add(strength, shift_hue(p.accent, turn))
