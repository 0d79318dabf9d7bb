"""The last step of an image action: each image at exactly the requested size.

``GenerationRequest.width`` x ``height`` is the size an action promises (an upscale's
factor x the source, a pan's wider canvas). A model snaps sizes to its own grid (FLUX
to multiples of 16, a VAE to multiples of 8) or follows its input's aspect ratio at
its own pixel count; the adapter then resamples the output to the promised size,
which is at most a few pixels off for the models the adapters send these actions to."""

from __future__ import annotations

from dataclasses import replace

from PIL import Image

from imagegate.domain.params import OutputFormat
from imagegate.imaging import encode, open_image
from imagegate.providers.base import GeneratedImage


def fit(image: GeneratedImage, width: int, height: int) -> GeneratedImage:
    """``image`` resampled to ``width`` x ``height`` (Lanczos), in its own format;
    the same object when it already has that size."""
    if (image.width, image.height) == (width, height):
        return image
    fmt = OutputFormat.for_content_type(image.content_type)
    with open_image(image.data) as decoded:
        resized = decoded.resize((width, height), Image.Resampling.LANCZOS)
    data = encode(resized, fmt)
    return replace(image, data=data, content_type=fmt.content_type, width=width, height=height)
