"""Image bytes every provider shares: encoding to the output formats and the 2x2 grid.

Kept apart from the built-in renderer (``imagegate.render``), which paints pictures, and
from the adapters (``imagegate.providers``), which fetch them: all three encode."""

from imagegate.imaging.codec import encode, encode_png
from imagegate.imaging.grid import cell_size, make_grid

__all__ = ["cell_size", "encode", "encode_png", "make_grid"]
