"""Moving a source image toward a render of the prompt.

- :func:`img2img`: the source, losing its fine detail as ``strength`` rises, mixed
  into a fresh render by ``strength`` (0 is the source, 1 the render).
- :func:`vary`: the source's own scene perturbed per seed, every perturbation scaled
  by ``strength``: its geometry warped by a smooth field, its hues turned, regions of
  it re-rendered from the prompt (a remix prompt brings new content there) in the
  source's palette, and fresh grain. One seed's draws are the same at every strength,
  so a subtle variation is the same change as a strong one, only less of it."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from imagegate.render.colour import colour_stats, match_colours
from imagegate.render.pixels import (
    add_grain,
    fit,
    hue_matrix,
    mask_image,
    noise_tile,
    recolour,
    seeded,
    smooth_field,
)

# Detail an img2img at full strength has lost from the source: a blur of this share of
# the shorter side (a denoise that strong leaves only the broad shapes).
_IMG2IMG_BLUR = 0.012
# At strength 1 the warp moves pixels by up to this share of the shorter side.
_WARP = 0.035
_WARP_CELLS = 8  # mesh cells along the shorter side
_HUE_TURN = 0.1  # of the wheel, at strength 1
_RERENDER = 0.8  # the most of the re-render any region takes, at strength 1
_GRAIN_LEVELS = (1.0, 4.0)  # grain spread at strength 0 and 1, in 8-bit levels


def img2img(source: Image.Image, fresh: Image.Image, strength: float) -> Image.Image:
    """``source`` moved toward ``fresh`` (a render of the prompt, at the output size)."""
    strength = min(1.0, max(0.0, strength))
    base = fit(source, fresh.size)
    radius = strength * _IMG2IMG_BLUR * min(fresh.size)
    if radius >= 0.5:
        base = base.filter(ImageFilter.GaussianBlur(radius))
    return Image.blend(base, fresh.convert("RGB"), strength)


def vary(
    source: Image.Image, fresh: Image.Image, seed: int, strength: float, spread: float = 1.0
) -> Image.Image:
    """A variation of ``source`` at ``fresh``'s size. ``fresh`` is a render of the
    (possibly new) prompt; ``spread`` (``chaos``) scales the seeded moves."""
    strength = min(1.0, max(0.0, strength))
    size = fresh.size
    base = fit(source, size)
    out = _warp(base, seeded(seed, "variation-warp"), strength * spread)
    rng = seeded(seed, "variation-colour")
    direction, saturation = rng.uniform(-1.0, 1.0, 2)
    # Never a turn of nothing: every seed moves the hues at least a little.
    turn = np.sign(direction) * (0.3 + 0.7 * abs(direction)) * _HUE_TURN * strength * spread
    out = recolour(out, hue_matrix(float(turn), 1.0 + float(saturation) * 0.3 * strength))
    matched = match_colours(fresh, colour_stats(base), 0.7)
    field = smooth_field(seeded(seed, "variation-regions"), size, 2.5) * 0.5 + 0.5
    weight = np.clip(strength * (0.3 + 0.9 * field), 0.0, 1.0) * _RERENDER
    out = Image.composite(matched, out, mask_image(weight))
    low, high = _GRAIN_LEVELS
    return add_grain(
        out, noise_tile(seeded(seed, "variation-grain")), low + (high - low) * strength
    )


def _warp(image: Image.Image, rng: np.random.Generator, amount: float) -> Image.Image:
    """``image`` pulled through a smooth random displacement: a mesh of quads whose
    corners move, each mapped by Pillow (bilinear, in C). Border corners move only
    along their border, so nothing is pulled in from outside the picture."""
    width, height = image.size
    short = min(width, height)
    cols = max(2, round(_WARP_CELLS * width / short))
    rows = max(2, round(_WARP_CELLS * height / short))
    reach = amount * _WARP * short
    dx = smooth_field(rng, (cols + 1, rows + 1), 2.0) * reach
    dy = smooth_field(rng, (cols + 1, rows + 1), 2.0) * reach
    dx[:, 0] = dx[:, -1] = 0.0
    dy[0, :] = dy[-1, :] = 0.0
    xs = np.linspace(0, width, cols + 1)
    ys = np.linspace(0, height, rows + 1)
    px = np.clip(xs[None, :] + dx, 0, width)
    py = np.clip(ys[:, None] + dy, 0, height)
    mesh = []
    for r in range(rows):
        for c in range(cols):
            box = (round(xs[c]), round(ys[r]), round(xs[c + 1]), round(ys[r + 1]))
            quad = (px[r, c], py[r, c], px[r + 1, c], py[r + 1, c],
                    px[r + 1, c + 1], py[r + 1, c + 1], px[r, c + 1], py[r, c + 1])  # fmt: skip
            mesh.append((box, tuple(float(v) for v in quad)))
    return image.transform(image.size, Image.Transform.MESH, mesh, Image.Resampling.BILINEAR)
