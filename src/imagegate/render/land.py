"""Silhouettes that stand on the horizon: mountain ranges, hills or river banks, dunes,
tree lines and a city skyline. Each is a 1-D profile (the top edge per column) filled
downward, which is cheap and gives clean, anti-aliased edges."""

from __future__ import annotations

import numpy as np

from imagegate.render.canvas import Canvas, rgb, smoothstep
from imagegate.render.layout import Layout
from imagegate.render.noise import Array, blur_rgb, fbm1d, fbm2d
from imagegate.render.palette import RGB, mix, shift_hue
from imagegate.render.plan import Plan


def paint_range(
    c: Canvas, profile: Array, colour: RGB, haze: float, plan: Plan, lay: Layout
) -> None:
    """Fill under ``profile`` with ``colour``: faces toward the light brighter, the foot
    fading into the horizon colour (aerial perspective)."""
    top = float(profile.min())
    r0 = min(c.h, max(0, int(top * c.h) - 1))  # nothing above the crest: skip those rows
    y = c.y[r0:]
    lit = np.tanh(-_slope(c, profile) * lay.light_dir * 1.5)[None, :]
    depth = np.maximum(y - profile[None, :], 0.0)
    # Per-column light only in a thin band under the crest: carried further down, the
    # column-wise shading reads as vertical curtains. Below it, rock texture takes over.
    if "rock" not in c.textures:
        c.textures["rock"] = fbm2d(plan.rng("rock"), (c.w, c.h), (5.0 * c.aspect, 3.0), 3)
    crest = np.maximum(1.0 - depth * 15.0, 0.0)
    face = 1.0 + 0.22 * lit * crest * crest + 0.06 * c.textures["rock"][r0:] - 0.25 * depth
    fog = smoothstep(top, max(top + 0.05, lay.horizon + 0.02), y) * haze
    body = rgb(colour) * (face * (1.0 - fog)) + rgb(plan.palette.horizon) * fog
    # A thin rim of sky light along the crest separates dark layers from one another.
    body += rgb(plan.palette.light) * (crest**6 * 0.12)
    mask = c.below(profile, first_row=r0)
    view = c.img[:, r0:]
    view += (body - view) * mask


def _slope(c: Canvas, profile: Array) -> Array:
    """Rise per unit run of a profile, smoothed over about 4 % of the width: the raw
    per-column slope of fractal noise flickers and shades the range in vertical stripes."""
    k = max(3, c.w // 25)
    padded = np.pad(profile, k, mode="edge")
    smooth = np.convolve(padded, np.full(k, 1.0 / k, dtype=np.float32), mode="same")[k:-k]
    return np.asarray(np.gradient(smooth) * np.float32(c.h), dtype=np.float32)


def paint_mountains(c: Canvas, plan: Plan, lay: Layout) -> None:
    p, rng = plan.palette, plan.rng("mountains")
    n = lay.ridge_layers
    snowy = "snow" in plan.themes
    for i in range(n):
        t = i / max(1, n - 1)
        height = (0.30 - 0.12 * t) * (1.0 - lay.horizon + 0.45) * lay.ridge_height
        cells = float(rng.uniform(1.2, 2.6))
        detail = 3 if plan.style in ("neon", "minimal", "anime") else 6  # cleaner lines
        shape = 0.5 + 0.5 * fbm1d(rng, c.u, cells, detail, ridged=True)
        profile = np.float32(lay.horizon + 0.01) - np.float32(height) * shape
        colour = mix(mix(p.far, p.near, t * 0.6), p.horizon, 0.35 * (1 - t))
        paint_range(c, profile, colour, 0.55 - 0.3 * t, plan, lay)
        if snowy or (i == 0 and rng.uniform() < 0.35 and "desert" not in plan.themes):
            _snow_caps(c, profile, plan, lay, rng)


def _snow_caps(
    c: Canvas, profile: Array, plan: Plan, lay: Layout, rng: np.random.Generator
) -> None:
    top, foot = float(profile.min()), float(profile.max())
    wiggle = fbm1d(rng, c.u, 8.0, 3)
    line = np.float32(top + (foot - top) * 0.45) + wiggle * np.float32(0.03)
    cap = c.below(profile) * (1.0 - c.below(line))
    lit = (0.8 + 0.2 * np.tanh(-_slope(c, profile) * lay.light_dir * 2.0))[None, :]
    c.paint(cap * np.float32(0.9), rgb(mix(plan.palette.light, (1, 1, 1), 0.5)) * lit)


def hill_profiles(c: Canvas, plan: Plan, lay: Layout) -> list[Array]:
    """Profiles of the nearer land, back to front. Over water they are banks that keep
    to one side, so the water stays open."""
    rng = plan.rng("hills")
    n = lay.hill_layers
    out = []
    for i in range(n):
        top = lay.horizon + (1.0 - lay.horizon) * (0.1 + 0.55 * i / n)
        wave = fbm1d(rng, c.u, float(rng.uniform(0.8, 2.0)), 4)
        profile = np.float32(top) - np.float32(0.07) * (wave + 1.0)
        if plan.has("water"):
            left = rng.uniform() < 0.5
            edge = float(rng.uniform(0.2, 0.4))
            u = (c.u if left else 1.0 - c.u) + 0.06 * wave
            reach = smoothstep(edge, edge * 0.1, u)
            # Banks stay low so the water, not a wall of earth, fills the frame.
            crest = np.maximum(profile, np.float32(lay.horizon + 0.05 + 0.06 * i))
            profile = np.float32(1.02) - (np.float32(1.02) - crest) * reach
        out.append(profile.astype(np.float32))
    if not plan.has("water"):
        # A near rise in one corner frames the view and fills an otherwise empty foreground.
        side = c.u if rng.uniform() < 0.5 else 1.0 - c.u
        rise = smoothstep(0.7, 0.0, side) * np.float32(rng.uniform(0.06, 0.16))
        near = np.float32(0.95) - rise - np.float32(0.02) * fbm1d(rng, c.u, 3.0, 4)
        out.append(np.minimum(near, np.float32(0.99)).astype(np.float32))
    return out


def hill_colour(plan: Plan, i: int, n: int) -> RGB:
    p = plan.palette
    return mix(p.near, p.ground, (i + 1) / n)


def paint_dunes(c: Canvas, plan: Plan, lay: Layout) -> None:
    p, rng = plan.palette, plan.rng("dunes")
    for i in range(3):
        top = lay.horizon + (1.0 - lay.horizon) * 0.25 * i
        crest = 0.5 + 0.5 * fbm1d(rng, c.u, float(rng.uniform(0.8, 1.6)), 3, ridged=True)
        profile = np.float32(top + 0.02) - np.float32(0.10) * crest
        lit = (0.5 + 0.5 * np.tanh(-_slope(c, profile) * lay.light_dir * 3.0))[None, :]
        colour = rgb(mix(p.far, p.ground, i / 2))
        shadow = colour * rgb((0.62, 0.55, 0.62))
        ripples = 1.0 + 0.04 * np.sin((c.y * 180.0 + c.x * 20.0) * (1 + i))
        fog = smoothstep(1.0, lay.horizon, c.y) * np.float32(0.25)
        body = (shadow + (colour - shadow) * lit) * ripples
        body += (rgb(p.horizon) - body) * fog
        c.paint(c.below(profile), body)
        c.ground = profile


def paint_treeline(
    c: Canvas, profile: Array, plan: Plan, colour: RGB, rng: np.random.Generator, dense: bool
) -> None:
    """Trees standing on ``profile``, painted before the land under them so the land
    hides their feet. Pines in forest or snow, round canopies otherwise."""
    count = int((90 if dense else 30) * c.aspect)
    cx = rng.uniform(-0.05, c.aspect + 0.05, count).astype(np.float32)
    if not dense:  # keep trees in clumps: a lone sparse row looks like a fence
        clump = fbm1d(rng, cx / np.float32(c.aspect), 2.0, 2)
        cx = cx[clump > 0.0]
    if not cx.size:
        return
    height = rng.uniform(0.04, 0.11, cx.size).astype(np.float32)
    base = profile[np.clip((cx * c.h).astype(np.intp), 0, c.w - 1)] + np.float32(0.01)
    dx = np.abs(c.x[0][None, :] - cx[:, None])
    pines = bool(plan.themes & {"forest", "snow"}) or rng.uniform() < 0.5
    if pines:
        width = height[:, None] * 0.28
        jag = (dx / width * 3.0) % 1.0 * height[:, None] * 0.08
        top = base[:, None] - height[:, None] + dx / width * height[:, None] + jag
    else:
        r = height[:, None] * 0.45
        top = base[:, None] - height[:, None] * 0.6 - np.sqrt(np.maximum(r * r - dx * dx, 0.0))
        top = np.where(dx < r, top, 2.0)
    line = np.minimum(top.min(axis=0), 2.0).astype(np.float32)
    line = np.minimum(line, profile + np.float32(0.02))
    c.paint(
        c.below(line) * (1.0 - c.below(profile + np.float32(0.03))), mix(colour, (0, 0, 0), 0.25)
    )


def paint_skyline(c: Canvas, plan: Plan, lay: Layout) -> None:
    p, rng = plan.palette, plan.rng("skyline")
    for layer in range(2):
        widths = rng.uniform(0.025, 0.08, 200).astype(np.float32)
        edges = np.cumsum(widths) - np.float32(0.05)
        tall = 0.5 + 0.5 * fbm1d(rng, np.linspace(0, 1, 200, dtype=np.float32), 3.0, 2)
        heights = (0.08 + rng.uniform(0.0, 0.18, 200) * (0.4 + tall)) * (1.3 - 0.3 * layer)
        idx = np.clip(np.searchsorted(edges, c.x[0]), 0, 199)
        profile = (np.float32(lay.horizon + 0.005) - heights[idx]).astype(np.float32)
        colour = mix(p.far, p.ground, 0.4 + 0.6 * layer)
        c.paint(c.below(profile, soft=0.7, steep=False), colour)
        if layer == 1:
            _windows(c, profile, plan, rng)
            _signs(c, profile, plan, lay, rng)


def _windows(c: Canvas, profile: Array, plan: Plan, rng: np.random.Generator) -> None:
    period = max(0.016, 4.5 / c.h)
    gx, gy = np.floor(c.x / period), np.floor(c.y / period)
    cell = np.mod(gx * 7919 + gy * 104729, 4096).astype(np.intp)
    lit_table = rng.uniform(0.0, 1.0, 4096).astype(np.float32)
    pane = ((c.x / period) % 1.0 < 0.55) & ((c.y / period) % 1.0 < 0.5)
    on = (lit_table[cell] < 0.3) & pane
    inside = c.below(profile + np.float32(2 * period)) * (c.y < 0.999)
    warm = rgb(mix(plan.palette.accent, (1.0, 0.85, 0.55), 0.6))
    flicker = lit_table[(cell * 31) % 4096]
    c.paint(on * inside * np.float32(0.85), warm * (0.6 + 0.4 * flicker))


def _signs(c: Canvas, profile: Array, plan: Plan, lay: Layout, rng: np.random.Generator) -> None:
    """Neon signs on the near buildings, each with its own glow."""
    count = int(7 * c.aspect) if plan.themes & {"city", "night"} else 0
    mask = np.zeros((c.h, c.w), dtype=np.float32)
    colours = np.zeros((3, c.h, c.w), dtype=np.float32)
    for _ in range(count):
        x = float(rng.uniform(0.0, c.aspect))
        top = float(profile[c.column(x)]) + 0.03
        if top > lay.horizon - 0.06:
            continue
        w, h, r = rng.uniform(0.008, 0.02), rng.uniform(0.03, 0.09), rng.uniform()
        room = lay.horizon - h - 0.01 - top
        if room <= 0:
            continue
        y = top + room * r
        box = ((c.x > x) & (c.x < x + w) & (c.y > y) & (c.y < y + h)).astype(np.float32)
        hue = float(rng.choice([0.0, 0.3, 0.55, -0.2]))
        mask = np.maximum(mask, box)
        colours += box * rgb(shift_hue(plan.palette.accent, hue))
    if count:
        glow = blur_rgb(colours, c.h * 0.02) * np.float32(2.5)
        c.paint(mask, np.minimum(colours + 0.35, 1.0))
        c.add(np.ones_like(mask), glow)
