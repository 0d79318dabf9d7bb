"""What the Replicate emulator's models make from image inputs (``image``, ``mask``):
Real-ESRGAN's enlargement, FLUX dev's img2img, FLUX Fill's inpainting and the
captioners' text, with the pixels of :mod:`imagegate.sandbox.editing`."""

from __future__ import annotations

from typing import Any

from imagegate.domain.params import OutputFormat
from imagegate.imaging import encode
from imagegate.sandbox import editing
from imagegate.sandbox.replicate_models import CatalogModel, decode_file

_FORMATS = {"webp": OutputFormat.WEBP, "jpg": OutputFormat.JPEG, "png": OutputFormat.PNG}


def takes_images(model: CatalogModel, data: dict[str, Any]) -> bool:
    """Whether the prediction works from an input image (else it renders from text)."""
    return model.kind in ("esrgan", "fill", "caption") or "image" in data


def caption(model: CatalogModel, data: dict[str, Any]) -> str:
    """img2prompt answers a prompt-like line; BLIP a ``Caption: …`` line."""
    with decode_file(data["image"]) as image:
        words = editing.caption(image)
    if model.owner_name == "salesforce/blip":
        return f"Caption: {words}"
    return f"{words}, digital art, highly detailed, trending on artstation"


def images(
    model: CatalogModel, data: dict[str, Any], seed: int, plan: tuple[int, int, int, str]
) -> list[bytes]:
    """The output files of an image-input prediction, ``plan`` being output_plan's
    (width, height, count, extension). Raises ValueError as the predictor fails."""
    width, height, count, extension = plan
    fmt = _FORMATS.get(extension, OutputFormat.PNG)
    prompt = str(data.get("prompt") or "")
    with decode_file(data["image"]) as source:
        if model.kind == "esrgan":
            return [encode(editing.enlarge(source, width, height), fmt)]
        if model.kind == "fill":
            mask = decode_file(data["mask"]) if "mask" in data else None
            if mask is not None and mask.size != source.size:
                raise ValueError(
                    f"mask size {mask.size[0]}x{mask.size[1]} does not match image size "
                    f"{source.size[0]}x{source.size[1]}"
                )
            return [encode(editing.fill(prompt, seed, source, mask), fmt)]
        strength = float(data.get("prompt_strength", 0.8))
        return [
            encode(editing.repaint(prompt, seed + index, source, strength), fmt)
            for index in range(count)
        ]
