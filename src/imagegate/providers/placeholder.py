"""The built-in provider's placeholder mode (``IMAGEGATE_BUILTIN_PLACEHOLDER``): a tiny
image encoded once per format and handed back for every request, so a benchmark or a
test measures imagegate's own cost per job (HTTP, database, engine, storage) apart from
rendering. The image is what it says it is: its real size, not the size asked for."""

from __future__ import annotations

from functools import cache

from PIL import Image

from imagegate.domain.params import OutputFormat
from imagegate.imaging import encode
from imagegate.providers.base import GeneratedImage, GenerationRequest

SIDE = 8  # pixels: small enough to cost nothing to store, real enough to decode
DESCRIBE_TEXTS = ("a placeholder image, one flat colour",)


@cache
def _encoded(fmt: OutputFormat) -> bytes:
    with Image.new("RGB", (SIDE, SIDE), (90, 120, 160)) as image:
        return encode(image, fmt)


def images(request: GenerationRequest) -> tuple[GeneratedImage, ...]:
    """One placeholder per seed of ``request``, in its output format."""
    fmt = request.output_format
    data = _encoded(fmt)
    return tuple(GeneratedImage(data, fmt.content_type, SIDE, SIDE, seed) for seed in request.seeds)
