"""The renderer's entry points: paint a plan on a small float canvas, grade it, upscale
it to the exact size asked, finish it, encode it."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from imagegate.domain.params import STYLES
from imagegate.render import style as styles
from imagegate.render.canvas import Canvas
from imagegate.render.plan import make_plan
from imagegate.render.product import paint_product
from imagegate.render.scene import paint_landscape

# Painting happens on at most INTERNAL_PIXELS, and on at most 1/MIN_AREA_RATIO of the
# output, then Pillow's bicubic resize (in C) takes it to full size: the scene is soft
# gradients and silhouettes, which survive upscaling, and this is what keeps a
# megapixel render in tens of milliseconds.
INTERNAL_PIXELS = 90_000
MIN_AREA_RATIO = 5.0
# A product shot is judged on the object's edges; it also paints fewer layers, so it can
# afford a finer canvas at about the same cost as a landscape.
PRODUCT_DETAIL = 1.8


def render_image(
    prompt: str,
    negative_prompt: str | None,
    style: str,
    seed: int,
    width: int,
    height: int,
) -> Image.Image:
    """A deterministic RGB picture of ``prompt`` at exactly ``width`` x ``height``.

    The same arguments always give the same pixels. ``style`` is one of
    :data:`imagegate.domain.params.STYLES`; an unknown name renders as ``"none"``.
    """
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    plan = make_plan(prompt, negative_prompt, style if style in STYLES else "none", seed)
    canvas = Canvas(*internal_size(width, height, PRODUCT_DETAIL if plan.product else 1.0))
    if plan.product:
        paint_product(canvas, plan)
    else:
        paint_landscape(canvas, plan)
    styles.grade(canvas, plan)
    planes = (np.clip(canvas.img, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    small = Image.merge("RGB", [Image.fromarray(plane) for plane in planes])
    image = small.resize((width, height), Image.Resampling.BICUBIC)
    return styles.finish(image, plan)


def internal_size(width: int, height: int, detail: float = 1.0) -> tuple[int, int]:
    """The painting resolution for an output size: same aspect, bounded area
    (``detail`` times the usual budget, never more than the output itself)."""
    area = width * height
    budget = min(INTERNAL_PIXELS * detail, area * detail / MIN_AREA_RATIO, area)
    scale = math.sqrt(budget / area)
    return max(8, round(width * scale)), max(8, round(height * scale))
