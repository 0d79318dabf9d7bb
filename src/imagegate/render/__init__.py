"""The built-in offline renderer: deterministic procedural pictures that follow the
words of a prompt, with no model and no network. It backs the ``builtin`` provider, so
imagegate works, and its tests run, without any external service."""

from imagegate.render.compose import render_image

__all__ = ["render_image"]
