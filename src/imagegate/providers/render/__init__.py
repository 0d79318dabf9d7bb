"""The built-in offline renderer: deterministic procedural pictures that follow the
words of a prompt, with no model and no network. It backs the ``builtin`` provider, so
imagegate works, and its tests run, without any external service."""

from imagegate.providers.render.compose import encode, encode_png, render_image
from imagegate.providers.render.grid import cell_size, make_grid

__all__ = ["cell_size", "encode", "encode_png", "make_grid", "render_image"]
