"""A 2x2 contact sheet of variations, the size of one image."""

from __future__ import annotations

from PIL import Image

EMPTY_CELL = (40, 40, 42)  # neutral dark grey where there is no image


def make_grid(images: list[Image.Image]) -> Image.Image:
    """Up to four images, each shrunk to half size, in reading order; the grid has the
    first image's size, and cells without an image are dark grey."""
    if not 1 <= len(images) <= 4:
        raise ValueError(f"make_grid takes 1 to 4 images, got {len(images)}")
    width, height = images[0].size
    grid = Image.new("RGB", (width, height), EMPTY_CELL)
    cell_w, cell_h = width // 2, height // 2
    for i, image in enumerate(images):
        # Odd sizes: the right column and bottom row take the spare pixel.
        x0, y0 = (i % 2) * cell_w, (i // 2) * cell_h
        x1, y1 = (width if i % 2 else cell_w), (height if i // 2 else cell_h)
        cell = image.convert("RGB").resize((x1 - x0, y1 - y0), Image.Resampling.BILINEAR)
        grid.paste(cell, (x0, y0))
    return grid
