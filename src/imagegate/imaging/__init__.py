"""Image bytes every provider shares: encoding to the output formats, the 2x2 grid,
and the masks and padded canvases of the repainting actions.

Kept apart from the built-in renderer (``imagegate.render``), which paints pictures, and
from the adapters (``imagegate.providers``), which fetch them: all three encode."""

from imagegate.imaging.codec import encode, encode_png
from imagegate.imaging.grid import cell_size, make_grid
from imagegate.imaging.masks import (
    normalize_mask,
    open_image,
    outpaint_inputs,
    rectangles_mask,
    transparent_where_masked,
)

__all__ = [
    "cell_size",
    "encode",
    "encode_png",
    "make_grid",
    "normalize_mask",
    "open_image",
    "outpaint_inputs",
    "rectangles_mask",
    "transparent_where_masked",
]
