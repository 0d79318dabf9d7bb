"""A 2x2 contact sheet of variations, the size of one image."""

from __future__ import annotations

from PIL import Image

EMPTY_CELL = (40, 40, 42)  # neutral dark grey where there is no image


def make_grid(images: list[Image.Image], size: tuple[int, int] | None = None) -> Image.Image:
    """Up to four images, each shrunk to half size, in reading order; the grid has the
    first image's size (or ``size``: then the images may be cells already, shrunk by
    :func:`cell_size`, so no full-size image need be held), and cells without an
    image are dark grey."""
    if not 1 <= len(images) <= 4:
        raise ValueError(f"make_grid takes 1 to 4 images, got {len(images)}")
    width, height = size or images[0].size
    grid = Image.new("RGB", (width, height), EMPTY_CELL)
    for i, image in enumerate(images):
        x0, y0, x1, y1 = _cell_box(i, width, height)
        cell = image.convert("RGB").resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR)
        grid.paste(cell, (x0, y0))
    return grid


def cell_size(index: int, size: tuple[int, int]) -> tuple[int, int]:
    """The size of cell ``index`` in a grid of ``size``."""
    x0, y0, x1, y1 = _cell_box(index, *size)
    return x1 - x0, y1 - y0


def _cell_box(index: int, width: int, height: int) -> tuple[int, int, int, int]:
    cell_w, cell_h = width // 2, height // 2
    # Odd sizes: the right column and bottom row take the spare pixel.
    x0, y0 = (index % 2) * cell_w, (index // 2) * cell_h
    x1, y1 = (width if index % 2 else cell_w), (height if index // 2 else cell_h)
    return x0, y0, x1, y1
