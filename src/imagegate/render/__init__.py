"""The built-in offline renderer: deterministic procedural pictures that follow the
words of a prompt, with no model and no network. It backs the ``builtin`` provider, so
imagegate works, and its tests run, without any external service.

Besides painting a prompt (``compose``, ``scene``, ``product`` and the layers they
call), it does the follow-up actions on a decoded source: ``upscale``, ``variation``
(img2img too), ``repaint`` (zoom out, pan, vary region), ``blend`` and ``describe``,
with ``tuning`` (the Midjourney knobs), ``colour`` (palette analysis and transfer) and
``pixels`` (shared helpers) beneath them."""

from imagegate.render.compose import render_image

__all__ = ["render_image"]
