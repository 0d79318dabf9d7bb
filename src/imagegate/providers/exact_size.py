"""The one size an action's images must come back at (``GenerationRequest.width`` x
``height``), for providers that draw at sizes of their own choosing: an allowed size
(OpenAI), about a megapixel at an aspect ratio (Stability, FLUX Kontext) or about four
megapixels (Stability's upscalers). The provider's image is resampled to the size
asked for, in the format the provider answered in."""

from __future__ import annotations

import io

from PIL import Image

from imagegate.domain.params import OutputFormat
from imagegate.imaging.codec import encode
from imagegate.imaging.masks import open_image
from imagegate.providers.base import GeneratedImage


def exact_size(image: GeneratedImage, width: int, height: int) -> GeneratedImage:
    """``image`` at ``width`` x ``height``: as it is when it already is, else resampled
    (Lanczos; the aspect follows the size asked for) and encoded again."""
    if (image.width, image.height) == (width, height):
        return image
    fmt = OutputFormat.for_content_type(image.content_type)
    with open_image(image.data) as decoded:
        keep_alpha = decoded.mode in ("RGBA", "LA") and fmt is not OutputFormat.JPEG
        converted = decoded.convert("RGBA" if keep_alpha else "RGB")
        resized = converted.resize((width, height), Image.Resampling.LANCZOS)
        data = encode(resized, fmt)
    return GeneratedImage(data, fmt.content_type, width, height, image.seed)


def stretched_png(data: bytes, width: int, height: int, mode: str = "RGBA") -> bytes:
    """An image as a ``mode`` PNG of exactly ``width`` x ``height`` (stretched, not
    cropped, so that stretching the answer back restores the source's geometry)."""
    with open_image(data) as decoded, decoded.convert(mode) as converted:
        resized = converted.resize((width, height), Image.Resampling.LANCZOS)
        out = io.BytesIO()
        resized.save(out, format="PNG", compress_level=1)
        return out.getvalue()
