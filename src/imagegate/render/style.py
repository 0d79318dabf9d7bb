"""Style presets, in two passes: ``grade`` works on the small float canvas (colour,
contrast, glow, outlines: anything that is smooth), ``finish`` on the full-size image
(grain, paper: anything that must stay crisp)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageChops

from imagegate.render.canvas import Canvas, rgb, smoothstep
from imagegate.render.layout import make_layout
from imagegate.render.noise import Array, blur, blur_rgb, fbm2d
from imagegate.render.palette import RGB
from imagegate.render.plan import Plan

Grade = Callable[[Canvas, Plan, Array], Array]

_VIGNETTE = {"cinematic": 0.55, "noir": 0.6, "vintage": 0.5, "minimal": 0.0, "studio": 0.0}
# Film grain only where it is part of the look: noise triples the PNG's size and
# doubles its encoding time (measured: 374 KiB / 31 ms clean, 1 MiB / 54 ms grainy at 1 MP).
_GRAIN = {"vintage": 6.0, "noir": 5.5, "cinematic": 3.5, "photographic": 2.5}


def grade(c: Canvas, plan: Plan) -> None:
    img = _GRADES.get(plan.style, _none)(c, plan, c.img)
    strength = _VIGNETTE.get(plan.style, 0.3)
    if plan.has("vignette") and strength:
        r2 = ((c.x - c.aspect / 2) / c.aspect) ** 2 + (c.y - 0.5) ** 2
        img = img * (1.0 - strength * smoothstep(0.1, 0.55, r2))
    c.img = np.clip(img, 0.0, 1.0).astype(np.float32)


def finish(image: Image.Image, plan: Plan) -> Image.Image:
    if plan.style == "watercolor":
        image = ImageChops.multiply(image, _tiled(plan, image.size, 5.0, 244.0))
    amount = _GRAIN.get(plan.style, 0.0) if plan.has("grain") else 0.0
    if amount > 0:
        image = ImageChops.add(image, _tiled(plan, image.size, amount, 128.0), 1.0, -128)
    return image


def _tiled(plan: Plan, size: tuple[int, int], sigma: float, mean: float) -> Image.Image:
    """A full-size texture from a small random tile: generating full-resolution noise
    would cost more than the whole rest of the render."""
    rng = plan.rng("grain")
    tile = np.clip(rng.normal(mean, sigma, (128, 128)), 0, 255).astype(np.uint8)
    reps = (size[1] // 128 + 1, size[0] // 128 + 1)
    full = np.tile(tile, reps)[: size[1], : size[0]]
    return Image.fromarray(full).convert("RGB")


def _none(c: Canvas, plan: Plan, img: Array) -> Array:
    return img


def _photographic(c: Canvas, plan: Plan, img: Array) -> Array:
    return _contrast(img, 1.08)


def _studio(c: Canvas, plan: Plan, img: Array) -> Array:
    glow = np.exp(-(((c.x - c.aspect / 2) / 0.7) ** 2 + ((c.y - 0.45) / 0.6) ** 2))
    return img * 0.85 + 0.15 + glow * 0.12


def _cinematic(c: Canvas, plan: Plan, img: Array) -> Array:
    img = _split_tone(_contrast(img, 1.25), (0.0, 0.42, 0.48), (1.0, 0.62, 0.32), 0.3)
    band = smoothstep(0.0, 0.09, np.minimum(c.y, 1.0 - c.y))  # letterbox-ish fall-off
    return img * (0.25 + 0.75 * band)


def _anime(c: Canvas, plan: Plan, img: Array) -> Array:
    edges = _edges(img, c.h * 0.006)
    luma = _luma(img)
    img = _cel(np.clip((img - luma) * 1.3 + luma, 0.0, 1.0), c.h * 0.008)
    return img * (1.0 - smoothstep(0.05, 0.12, edges) * 0.8)


def _watercolor(c: Canvas, plan: Plan, img: Array) -> Array:
    rng = plan.rng("watercolor")
    warp = (fbm2d(rng, (c.w, c.h), (4.0 * c.aspect, 4.0), 3) * (c.h * 0.012)).astype(np.intp)
    ys = np.clip(np.arange(c.h)[:, None] + warp, 0, c.h - 1)
    xs = np.clip(np.arange(c.w)[None, :] + warp, 0, c.w - 1)
    soft = blur_rgb(img[:, ys, xs], c.h * 0.008)
    # Pigment pools at the edges of a wash: darken a little where the blur differs most.
    pool = np.abs(soft - blur_rgb(soft, c.h * 0.025)).sum(axis=0)
    vivid = _luma(soft) + (soft - _luma(soft)) * 1.25
    washed = 1.0 - (1.0 - vivid) * 0.7  # thin paint lets the paper through
    return np.asarray(washed * (1.0 - np.clip(pool * 1.2, 0.0, 0.15)), dtype=np.float32)


def _neon(c: Canvas, plan: Plan, img: Array) -> Array:
    edges = _edges(img, c.h * 0.006)
    horizon = make_layout(plan, c.aspect).horizon
    line = np.maximum(smoothstep(0.03, 0.12, edges), _grid(c, horizon))
    hue = np.clip(c.y, 0.0, 1.0)
    colour = np.stack([1.0 - 0.9 * hue, 0.2 + 1.2 * hue * (1 - hue), 0.6 + 0.4 * hue])
    glow = blur(line, c.h * 0.02) * 1.8
    dusk = np.exp(-np.abs(c.y - horizon) / 0.12) * rgb((0.55, 0.08, 0.45))  # synthwave sky
    return np.asarray(img * 0.22 + dusk + colour * (line + glow), dtype=np.float32)


def _vintage(c: Canvas, plan: Plan, img: Array) -> Array:
    sepia = _luma(img) * rgb((1.07, 0.86, 0.62))
    return (img * 0.35 + sepia * 0.65) * 0.82 + 0.1


def _minimal(c: Canvas, plan: Plan, img: Array) -> Array:
    luma = _luma(img)
    return luma + (img - luma) * 0.8


def _fantasy(c: Canvas, plan: Plan, img: Array) -> Array:
    bloom = blur_rgb(np.maximum(img - 0.55, 0.0), c.h * 0.05)
    return _split_tone(img, (0.35, 0.12, 0.55), (1.0, 0.8, 0.4), 0.35) + bloom * 1.6


def _noir(c: Canvas, plan: Plan, img: Array) -> Array:
    return np.repeat(_contrast(_luma(img), 1.6), 3, axis=0)


_GRADES: dict[str, Grade] = {
    "photographic": _photographic,
    "studio": _studio,
    "cinematic": _cinematic,
    "anime": _anime,
    "watercolor": _watercolor,
    "neon": _neon,
    "vintage": _vintage,
    "minimal": _minimal,
    "fantasy": _fantasy,
    "noir": _noir,
}


def _luma(img: Array) -> Array:
    """Luminance, shaped (1, h, w) to broadcast against the image."""
    return np.asarray(0.299 * img[0:1] + 0.587 * img[1:2] + 0.114 * img[2:3], dtype=np.float32)


def _contrast(img: Array, k: float) -> Array:
    return np.asarray(np.clip((img - 0.5) * k + 0.5, 0.0, 1.0), dtype=np.float32)


def _split_tone(img: Array, shadows: RGB, highs: RGB, k: float) -> Array:
    luma = _luma(img)
    low, high = rgb(shadows) - 0.5, rgb(highs) - 0.5
    return np.asarray(img + (low * (1 - luma) + high * luma) * k, dtype=np.float32)


def _cel(img: Array, radius: float, levels: int = 5) -> Array:
    """Cel shading: brightness in a few flat bands. Each step is a narrow smooth ramp
    rather than a hard cut, so the bands keep clean edges once upscaled (a hard
    quantisation at the painting resolution turns into stair-steps)."""
    soft = blur_rgb(img, radius)
    luma = np.maximum(_luma(soft), 1e-3)
    scaled = luma * levels
    steps = np.floor(scaled) + smoothstep(0.42, 0.58, scaled - np.floor(scaled))
    return np.asarray(soft * (steps / levels + 0.08) / luma, dtype=np.float32)


def _edges(img: Array, radius: float) -> Array:
    """Gradient magnitude of the softened luminance: silhouettes, not texture."""
    luma = blur(_luma(img)[0], radius)
    gy, gx = np.gradient(luma)
    return np.asarray(np.sqrt(gx * gx + gy * gy), dtype=np.float32)


def _grid(c: Canvas, horizon: float) -> Array:
    """A synthwave floor: lines converging on the horizon's centre."""
    below = np.maximum(c.y - horizon, 1e-3)
    depth = 0.08 / below  # distance into the scene of each row
    rows = np.abs(((depth + 0.5) % 1.0) - 0.5) / (depth * depth * 12.5 / c.h + 1e-6)
    across = (c.x - c.aspect / 2) / below
    cols = np.abs(((across * 2.0 + 0.5) % 1.0) - 0.5) * below * c.h / 2.0
    line = np.maximum(np.clip(1.0 - rows, 0.0, 1.0), np.clip(1.0 - cols, 0.0, 1.0))
    # Near the horizon the lines crowd closer than a pixel: fade them out before that.
    return np.asarray(line * smoothstep(horizon + 0.02, horizon + 0.15, c.y), np.float32)
