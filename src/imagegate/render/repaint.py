"""Painting around and inside a source: outpainting (zoom out, pan) and region repaint.

Outpainting places the source, scaled to its box, on the canvas and paints the rest by
extending the scene: the box mirrored outward (so every edge continues its own colours
and lines), blurred more the further it reaches, then handed over within a short
distance to a render of the prompt whose palette and broad colours are the source's.
The box is pasted last, so its pixels are the (resized) source's exactly.

A region repaint fills the mask with a render of the prompt matched to the colours of
the unmasked part, its broad colour pulled toward the surroundings near the mask's
edge; pixels where the mask is 0 are the source's, byte for byte."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageChops, ImageFilter

from imagegate.domain.actions import Canvas
from imagegate.render.colour import colour_stats, harmonise, match_colours
from imagegate.render.noise import blur
from imagegate.render.pixels import fit, mask_image

# Distances from the box, as shares of the box's shorter side: the mirrored extension
# goes from sharp to fully blurred over _BLUR_REACH, and the render takes over between
# _HANDOVER[0] and _HANDOVER[1] (a soft but short seam, all of it outside the box).
_BLUR_REACH = 0.12
_HANDOVER = (0.03, 0.22)
_RENDER_SHARE = 0.85  # the most of the render the far canvas shows; the rest stays extension
_BLUR = (0.006, 0.04)  # near and far blur radii, shares of the box's shorter side
# A region repaint: the blur (share of the shorter side) that spreads the
# surroundings' colours into the hole, and the feather inside the mask's edge.
_FILL_BLUR = 0.06
_FEATHER = 0.012


def outpaint(source: Image.Image, canvas: Canvas, fresh: Image.Image) -> Image.Image:
    """The ``canvas``: ``source`` in its box, the rest painted from ``fresh`` (a
    render of the prompt at the canvas size) and the source's own extension."""
    box = canvas.source
    placed = fit(source, (box.width, box.height))
    extension = _mirrored(placed, canvas)
    short = min(box.width, box.height)
    near = extension.filter(ImageFilter.GaussianBlur(max(1.0, _BLUR[0] * short)))
    far = extension.filter(ImageFilter.GaussianBlur(max(2.0, _BLUR[1] * short)))
    distance = _distance(canvas) / np.float32(short)
    extended = Image.composite(far, near, mask_image(distance / _BLUR_REACH))
    painted = match_colours(fresh, colour_stats(placed), 0.8)
    painted = harmonise(painted, far, 0.7)
    t = np.clip((distance - _HANDOVER[0]) / (_HANDOVER[1] - _HANDOVER[0]), 0.0, 1.0)
    out = Image.composite(painted, extended, mask_image(t * t * (3 - 2 * t) * _RENDER_SHARE))
    out.paste(placed, (box.left, box.top))
    return out


def _mirrored(placed: Image.Image, canvas: Canvas) -> Image.Image:
    """``placed`` extended to the canvas by reflecting it at its edges (again and
    again, where the canvas is more than twice the box)."""
    left, top, right, bottom = canvas.padding()
    pixels = np.asarray(placed)
    padded = np.pad(pixels, ((top, bottom), (left, right), (0, 0)), mode="symmetric")
    return Image.fromarray(padded)


def _distance(canvas: Canvas) -> np.ndarray:
    """Each canvas pixel's distance in pixels to the source's box (0 inside it)."""
    box = canvas.source
    x = np.arange(canvas.width, dtype=np.float32)
    y = np.arange(canvas.height, dtype=np.float32)
    dx = np.maximum(np.maximum(box.left - x, x - (box.right - 1)), 0.0)
    dy = np.maximum(np.maximum(box.top - y, y - (box.bottom - 1)), 0.0)
    return np.asarray(np.sqrt(dx[None, :] ** 2 + dy[:, None] ** 2), dtype=np.float32)


def repaint_region(source: Image.Image, mask: Image.Image, fresh: Image.Image) -> Image.Image:
    """``source`` with the pixels where ``mask`` ("L", the source's size, 255 = paint)
    is set repainted from ``fresh`` (a render of the prompt at the source's size)."""
    base = source.convert("RGB")
    paint = mask.convert("L")
    if paint.size != base.size:
        paint = paint.resize(base.size, Image.Resampling.NEAREST)
    painted = match_colours(fresh, colour_stats(base, keep=paint), 0.85)
    painted = harmonise(painted, _surroundings(base, paint), 0.4, side=64)
    # Feathered inside the edge only: min(mask, blurred mask) is 0 wherever the mask is.
    radius = max(1.0, _FEATHER * min(base.size))
    alpha = ImageChops.darker(paint, paint.filter(ImageFilter.GaussianBlur(radius)))
    return Image.composite(painted, base, alpha)


def _surroundings(base: Image.Image, paint: Image.Image) -> Image.Image:
    """The colours around the hole spread into it: a blur of the kept pixels divided
    by the blur of where they are (normalised convolution), on a small copy."""
    scale = 128 / max(base.size)
    small = (max(1, round(base.width * scale)), max(1, round(base.height * scale)))
    rgb = np.asarray(base.resize(small, Image.Resampling.BOX), dtype=np.float32)
    keep = 1.0 - np.asarray(paint.resize(small, Image.Resampling.BOX), np.float32) / 255.0
    radius = max(1.0, _FILL_BLUR * 128)
    spread_keep = blur(keep, radius)
    planes = [blur(rgb[:, :, c] * keep, radius) / np.maximum(spread_keep, 1e-3) for c in range(3)]
    # Where the hole is wider than the blur reaches, fall back to the kept mean colour.
    mean = (rgb * keep[:, :, None]).sum(axis=(0, 1)) / max(float(keep.sum()), 1.0)
    trust = np.clip(spread_keep * 4.0, 0.0, 1.0)[:, :, None]
    filled = np.stack(planes, axis=2) * trust + mean * (1.0 - trust)
    return Image.fromarray(np.clip(filled, 0, 255).astype(np.uint8))
