"""Blending 2-5 images into one: each scaled to cover the output and centre-cropped,
then mixed region by region (seeded smooth fields decide where each image leads, with
seeded overall weights), and the fine structure (edges, texture) of each image laid
over the regions the others lead, so the result carries the shapes of all of them
rather than a washed-out average."""

from __future__ import annotations

import numpy as np
from PIL import Image

from imagegate.render.noise import blur
from imagegate.render.pixels import Size, fit, seeded, smooth_field

# How sharply regions belong to one image: the softmax temperature of the fields.
# Higher is patchier; chaos raises it.
_REGIONS = 2.5
# The fine structure kept from each image, times its weight over the mix.
_STRUCTURE = 0.8
# Blur (share of the shorter side) that splits broad colour from fine structure.
_SPLIT = 0.02


def blend(images: list[Image.Image], size: Size, seed: int, spread: float = 1.0) -> Image.Image:
    """One ``size`` image mixing ``images`` (two or more), as ``seed`` chooses."""
    if len(images) < 2:
        raise ValueError(f"a blend takes at least two images, got {len(images)}")
    width, height = size
    rng = seeded(seed, "blend")
    # Seeded overall weights, no image below a tenth of a fair share.
    weights = rng.dirichlet(np.full(len(images), 2.0 / spread)) + 0.1 / len(images)
    weights /= weights.sum()
    logits = np.stack(
        [_REGIONS * spread * smooth_field(rng, size, 1.6) + np.log(w) for w in weights]
    )
    logits -= logits.max(axis=0)
    share = np.exp(logits)
    share /= share.sum(axis=0)
    radius = max(1.0, _SPLIT * min(size))
    out = np.zeros((height, width, 3), dtype=np.float32)
    for image, part, weight in zip(images, share, weights, strict=True):
        pixels = np.asarray(fit(image, size), dtype=np.float32)
        out += pixels * part[:, :, None]
        grey = pixels.mean(axis=2)
        detail = grey - blur(grey, radius)
        # Outside its own regions an image still lends its lines, by its overall
        # weight: its structure shows through the others' colours.
        lend = (1.0 - part) * np.float32(_STRUCTURE * weight * len(images) / 2)
        out += (detail * lend)[:, :, None]
    return Image.fromarray(np.clip(out + 0.5, 0, 255).astype(np.uint8))
