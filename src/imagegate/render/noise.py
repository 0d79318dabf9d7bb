"""Smooth random fields: 1-D fractal noise for ridgelines, 2-D noise for clouds and
texture, and a cheap blur. Every call takes an explicit generator so output is
reproducible, and draws a number of values independent of the pixel resolution, so a
seed gives the same composition at every size."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

# Float arrays, float32 in practice; typed loosely because numpy's stubs promote many
# float32 expressions to float64.
Array = NDArray[np.floating[Any]]


def fbm1d(
    rng: np.random.Generator,
    positions: Array,
    cells: float,
    octaves: int = 5,
    ridged: bool = False,
) -> Array:
    """Fractal value noise in about [-1, 1] sampled at ``positions`` (0..1 across the
    image). ``cells`` is the number of features across the image in the first octave;
    ``ridged`` folds each octave into sharp crests, which reads as rock rather than hills.
    """
    total = np.zeros(positions.shape, dtype=np.float32)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        count = cells * 2**octave
        knots = rng.uniform(-1.0, 1.0, int(np.ceil(count)) + 4).astype(np.float32)
        layer = _catmull_rom(knots, positions * count + 1.0)
        if ridged:
            layer = 1.0 - 2.0 * np.abs(layer)
        total += amplitude * layer
        norm += amplitude
        amplitude *= 0.5
    return total / np.float32(norm)


def _catmull_rom(knots: Array, x: Array) -> Array:
    # Cubic rather than linear interpolation: linear knots show as straight facets on
    # a mountain ridge at the low octaves.
    i = np.clip(np.floor(x).astype(np.intp), 1, len(knots) - 3)
    t = x - i
    p0, p1, p2, p3 = knots[i - 1], knots[i], knots[i + 1], knots[i + 2]
    return np.asarray(
        0.5
        * (
            2 * p1
            + (p2 - p0) * t
            + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t * t
            + (3 * p1 - p0 - 3 * p2 + p3) * t * t * t
        ),
        dtype=np.float32,
    )


def fbm2d(
    rng: np.random.Generator,
    size: tuple[int, int],
    cells: tuple[float, float],
    octaves: int = 4,
) -> Array:
    """Fractal value noise in about [-1, 1] of ``size`` (width, height); ``cells`` is the
    feature count (across, down) of the first octave. Pillow's bicubic resize of a tiny
    random grid does the interpolation in C, far faster than numpy would."""
    width, height = size
    # Octaves are summed on the finest octave's grid (never finer than the output) and
    # resized to full size once: one full-size resize instead of one per octave.
    top = 2 ** (octaves - 1)
    fine = (
        min(width, max(2, round(cells[0] * top)) + 1),
        min(height, max(2, round(cells[1] * top)) + 1),
    )
    total = np.zeros((fine[1], fine[0]), dtype=np.float32)
    amplitude, norm = 1.0, 0.0
    for octave in range(octaves):
        gx = max(2, round(cells[0] * 2**octave)) + 1
        gy = max(2, round(cells[1] * 2**octave)) + 1
        grid = rng.uniform(-1.0, 1.0, (gy, gx)).astype(np.float32)
        total += amplitude * (grid if (gx, gy) == fine else resize_field(grid, fine))
        norm += amplitude
        amplitude *= 0.5
    total /= np.float32(norm)
    return total if fine == (width, height) else resize_field(total, (width, height))


def resize_field(field: Array, size: tuple[int, int]) -> Array:
    """Bicubic resize of a 2-D float array to ``size`` (width, height)."""
    image = Image.fromarray(np.ascontiguousarray(field, dtype=np.float32))
    return np.asarray(image.resize(size, Image.Resampling.BICUBIC), dtype=np.float32)


def blur(field: Array, radius: float) -> Array:
    """Approximate Gaussian blur of a 2-D float array: box-shrink then bicubic-grow.
    Pillow's own blurs refuse float images, and this is cheaper than a true kernel."""
    if radius < 1.0:
        return field
    height, width = field.shape
    small = (max(1, round(width / radius)), max(1, round(height / radius)))
    image = Image.fromarray(np.ascontiguousarray(field, dtype=np.float32))
    shrunk = image.resize(small, Image.Resampling.BOX)
    return np.asarray(shrunk.resize((width, height), Image.Resampling.BICUBIC), dtype=np.float32)


def blur_rgb(image: Array, radius: float) -> Array:
    """:func:`blur` applied to each channel of a planar (3, h, w) image."""
    return np.stack([blur(image[c], radius) for c in range(3)])
