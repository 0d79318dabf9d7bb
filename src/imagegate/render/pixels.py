"""Pixel helpers the follow-up actions share: seeded generators, fitting an image to a
size, 8-bit masks from float fields, seeded fine noise, and the channel matrices that
turn hues.

The actions work on Pillow images and hand the heavy per-pixel work to Pillow's C
code (resize, composite, matrix convert, point tables) wherever it has the operation:
at 16 MP a float32 RGB copy in numpy is 192 MB, an 8-bit Pillow image 48 MB."""

from __future__ import annotations

import hashlib
import math

import numpy as np
from PIL import Image, ImageChops, ImageOps

from imagegate.render.noise import Array

Size = tuple[int, int]

# Fine noise is a small random tile repeated over the image: drawing full-resolution
# noise at 16 MP would take longer than the rest of an upscale.
_NOISE_TILE = 256


def seeded(seed: int, layer: str) -> np.random.Generator:
    """A generator for one layer of one action: the same seed gives the same draws, and
    the layers (warp, colour, noise) stay independent of each other."""
    digest = hashlib.blake2b(f"{layer}:{seed}".encode(), digest_size=16).digest()
    return np.random.default_rng(int.from_bytes(digest, "big"))


def fit(image: Image.Image, size: Size) -> Image.Image:
    """``image`` in RGB at exactly ``size``: scaled to cover it and centre-cropped, or
    returned as it is when it already has that size."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    if rgb.size == size:
        return rgb
    return ImageOps.fit(rgb, size, Image.Resampling.LANCZOS)


def mask_image(field: Array) -> Image.Image:
    """An "L" image from a 2-D field in 0..1 (a mask, a blend weight)."""
    return Image.fromarray((np.clip(field, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8))


def smooth_field(rng: np.random.Generator, size: Size, cells: float) -> Array:
    """A smooth random field in about [-1, 1] of ``size`` (width, height), with about
    ``cells`` features along the shorter side: a tiny random grid, resized in C."""
    width, height = size
    short = min(width, height)
    gx = max(2, round(cells * width / short)) + 1
    gy = max(2, round(cells * height / short)) + 1
    grid = rng.uniform(-1.0, 1.0, (gy, gx)).astype(np.float32)
    image = Image.fromarray(grid)
    return np.asarray(image.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)


def noise_tile(rng: np.random.Generator) -> Array:
    """Zero-mean fine noise of unit spread on a square tile that wraps around, softened
    over a pixel so it reads as grain rather than per-pixel static."""
    white = rng.normal(0.0, 1.0, (_NOISE_TILE, _NOISE_TILE)).astype(np.float32)
    soft = (
        white * 2.0
        + np.roll(white, 1, axis=0)
        + np.roll(white, -1, axis=0)
        + np.roll(white, 1, axis=1)
        + np.roll(white, -1, axis=1)
    )
    return np.asarray(soft / np.float32(soft.std() + 1e-6), dtype=np.float32)


def grain_image(tile: Array, amount: float, size: Size) -> Image.Image:
    """An "L" offset image of ``size`` (128 = no change): ``tile`` times ``amount``
    8-bit levels, repeated over it."""
    levels = np.clip(tile * np.float32(amount) + 128.0, 0.0, 255.0).astype(np.uint8)
    width, height = size
    reps = (height // levels.shape[0] + 1, width // levels.shape[1] + 1)
    return Image.fromarray(np.ascontiguousarray(np.tile(levels, reps)[:height, :width]))


def add_grain(image: Image.Image, tile: Array, amount: float) -> Image.Image:
    """``image`` with the grain ``tile`` (see :func:`noise_tile`), times ``amount``
    levels, added to every channel."""
    if amount <= 0:
        return image
    return add_offset(image, grain_image(tile, amount, image.size))


def add_offset(image: Image.Image, offset: Image.Image) -> Image.Image:
    """``image`` plus the "L" ``offset`` less 128 on every channel, saturating."""
    return ImageChops.add(image, Image.merge("RGB", (offset, offset, offset)), 1.0, -128)


def hue_matrix(turns: float, saturation: float = 1.0) -> tuple[float, ...]:
    """The 12-value RGB matrix (for ``Image.convert("RGB", matrix)``) that turns hues by
    ``turns`` of the wheel around the grey axis and scales saturation: greys stay grey."""
    angle = 2.0 * math.pi * turns
    cos, sin = math.cos(angle), math.sin(angle)
    third, root = 1.0 / 3.0, math.sqrt(1.0 / 3.0)
    # Rodrigues' rotation about (1, 1, 1) / sqrt(3).
    rotation = np.array(
        [
            [
                cos + third * (1 - cos),
                third * (1 - cos) - root * sin,
                third * (1 - cos) + root * sin,
            ],
            [
                third * (1 - cos) + root * sin,
                cos + third * (1 - cos),
                third * (1 - cos) - root * sin,
            ],
            [
                third * (1 - cos) - root * sin,
                third * (1 - cos) + root * sin,
                cos + third * (1 - cos),
            ],
        ]
    )
    grey = np.full((3, 3), third)
    matrix = grey + (rotation - grey) * saturation
    return tuple(v for row in matrix for v in (*row, 0.0))


def recolour(image: Image.Image, matrix: tuple[float, ...]) -> Image.Image:
    """``image`` through a 12-value RGB matrix, in C."""
    return image.convert("RGB", matrix)
