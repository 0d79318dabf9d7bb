"""The ComfyUI emulator's node executor: each core node type it knows, run on real
pixels. Values flow between nodes as ComfyUI's do: IMAGE (a batch: a list of RGB
images), MASK (an "L" image, white = 1.0), LATENT (its size, and the pixels it stands
for once encoded or sampled, with an optional noise mask), CONDITIONING (the text),
and opaque MODEL / CLIP / VAE / UPSCALE_MODEL handles.

A sampler "renders": the built-in renderer draws the prompt at the latent's size from
the seed, blended into the encoded pixels by ``denoise`` and confined to the noise mask;
an upscale model resamples by its factor; ImagePadForOutpaint really pads (grey, as
ComfyUI does) and returns the mask of the new border. A sampler over an empty latent
draws image *i* of a batch from ``seed + i``."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image, ImageChops, ImageDraw, ImageFilter

from imagegate.render import render_image
from imagegate.sandbox import editing

UPSCALE_MODELS = ("RealESRGAN_x4plus.pth", "RealESRGAN_x2plus.pth", "4x-UltraSharp.pth")
_METHODS = {
    "nearest-exact": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX, "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}  # fmt: skip
_GREY = (128, 128, 128)


@dataclass(frozen=True)
class Latent:
    width: int
    height: int
    batch: int = 1
    pixels: tuple[Image.Image, ...] = ()
    noise_mask: Image.Image | None = None


class NodeError(Exception):
    """A node failed while running: ComfyUI reports the exception's type and text."""

    def __init__(self, exception_type: str, message: str) -> None:
        super().__init__(message)
        self.exception_type = exception_type


Node = Callable[[dict[str, Any], Callable[[str], bytes | None]], tuple[Any, ...]]


def run(
    kind: str, inputs: dict[str, Any], read_input: Callable[[str], bytes | None]
) -> tuple[Any, ...]:
    """The outputs of one node of type ``kind``, its links already resolved."""
    try:
        return NODES[kind](inputs, read_input)
    except NodeError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise NodeError(type(error).__name__, str(error)) from error


def _load_image(inputs: dict[str, Any], read: Callable[[str], bytes | None]) -> tuple[Any, ...]:
    image = _open(inputs["image"], read)
    mask = Image.new("L", image.size, 0)
    if "A" in image.getbands():
        mask = ImageChops.invert(image.getchannel("A"))  # transparent = 1.0
    return [image.convert("RGB")], mask


def _load_image_mask(
    inputs: dict[str, Any], read: Callable[[str], bytes | None]
) -> tuple[Any, ...]:
    image = _open(inputs["image"], read).convert("RGBA")
    channel = {"alpha": "A", "red": "R", "green": "G", "blue": "B"}[str(inputs["channel"])]
    mask = image.getchannel(channel)
    return (ImageChops.invert(mask) if channel == "A" else mask,)


def _encode(inputs: dict[str, Any], _: Any) -> tuple[Any, ...]:
    images = [_crop8(image) for image in inputs["pixels"]]
    width, height = images[0].size
    return (Latent(width, height, len(images), tuple(images)),)


def _encode_for_inpaint(inputs: dict[str, Any], _: Any) -> tuple[Any, ...]:
    images = [_crop8(image) for image in inputs["pixels"]]
    width, height = images[0].size
    mask = inputs["mask"].resize((width, height), Image.Resampling.BILINEAR)
    grow = int(inputs["grow_mask_by"])
    if grow > 0:
        mask = mask.filter(ImageFilter.MaxFilter(grow * 2 + 1))
    mask = mask.point(lambda v: 255 if v >= 128 else 0)  # ComfyUI rounds the mask
    grey = Image.new("RGB", (width, height), _GREY)
    blanked = tuple(Image.composite(grey, image, mask) for image in images)
    return (Latent(width, height, len(images), blanked, mask),)


def _noise_mask(inputs: dict[str, Any], _: Any) -> tuple[Any, ...]:
    latent: Latent = inputs["samples"]
    mask = inputs["mask"].resize((latent.width, latent.height), Image.Resampling.BILINEAR)
    return (replace(latent, noise_mask=mask),)


def _sample(inputs: dict[str, Any], _: Any) -> tuple[Any, ...]:
    latent: Latent = inputs["latent_image"]
    text = str(inputs["positive"].get("text", ""))
    seed = int(inputs.get("seed", inputs.get("noise_seed", 0)))
    denoise = float(inputs.get("denoise", 1.0))
    out = []
    for index in range(latent.batch):
        if not latent.pixels:
            out.append(render_image(text, None, "none", seed + index, latent.width, latent.height))
            continue
        base = latent.pixels[index]
        sampled = editing.repaint(text, seed + index, base, denoise)
        if latent.noise_mask is not None:
            sampled = Image.composite(sampled, base, latent.noise_mask)
        out.append(sampled)
    return (Latent(latent.width, latent.height, latent.batch, tuple(out)),)


def _decode(inputs: dict[str, Any], _: Any) -> tuple[Any, ...]:
    latent: Latent = inputs["samples"]
    if latent.pixels:
        return (list(latent.pixels),)
    return ([Image.new("RGB", (latent.width, latent.height), _GREY)] * latent.batch,)


def _pad(inputs: dict[str, Any], _: Any) -> tuple[Any, ...]:
    left, top, right, bottom = (int(inputs[k]) for k in ("left", "top", "right", "bottom"))
    feathering = int(inputs["feathering"])
    images = []
    for image in inputs["image"]:
        width, height = image.size
        canvas = Image.new("RGB", (width + left + right, height + top + bottom), _GREY)
        canvas.paste(image, (left, top))
        images.append(canvas)
    width, height = inputs["image"][0].size
    mask = Image.new("L", images[0].size, 255)
    mask.paste(0, (left, top, left + width, top + height))
    draw = ImageDraw.Draw(mask)
    # ComfyUI's feathering: inside the source, near each padded side, ((f - d) / f)^2.
    for d in range(min(feathering, width // 2, height // 2)):
        value = round(255 * ((feathering - d) / feathering) ** 2)
        x0, y0, x1, y1 = left + d, top + d, left + width - 1 - d, top + height - 1 - d
        for padded, line in ((top, (x0, y0, x1, y0)), (bottom, (x0, y1, x1, y1)),
                             (left, (x0, y0, x0, y1)), (right, (x1, y0, x1, y1))):  # fmt: skip
            if padded:
                draw.line(line, fill=value)
    return images, mask


def _upscale_model(inputs: dict[str, Any], _: Any) -> tuple[Any, ...]:
    found = re.search(r"(?:x(\d)|(\d)x)", str(inputs["model_name"]), re.IGNORECASE)
    return ({"scale": int(next(g for g in found.groups() if g)) if found else 4},)


def _upscale_with_model(inputs: dict[str, Any], _: Any) -> tuple[Any, ...]:
    scale = int(inputs["upscale_model"]["scale"])
    return (
        [
            editing.enlarge(image, image.width * scale, image.height * scale)
            for image in inputs["image"]
        ],
    )


def _scale(inputs: dict[str, Any], _: Any) -> tuple[Any, ...]:
    method = _METHODS[str(inputs["upscale_method"])]
    out = []
    for image in inputs["image"]:
        width, height = int(inputs["width"]), int(inputs["height"])
        if width == 0 and height == 0:
            out.append(image)
            continue
        width = width or max(1, round(image.width * height / image.height))
        height = height or max(1, round(image.height * width / image.width))
        if inputs.get("crop") == "center":
            image = _crop_to_ratio(image, width / height)
        out.append(image.resize((width, height), method))
    return (out,)


def _scale_by(inputs: dict[str, Any], _: Any) -> tuple[Any, ...]:
    factor = float(inputs["scale_by"])
    method = _METHODS[str(inputs["upscale_method"])]
    return (
        [
            i.resize((round(i.width * factor), round(i.height * factor)), method)
            for i in inputs["image"]
        ],
    )


def _composite(inputs: dict[str, Any], _: Any) -> tuple[Any, ...]:
    x, y = int(inputs["x"]), int(inputs["y"])
    out = []
    for destination, source in zip(inputs["destination"], inputs["source"], strict=False):
        result = destination.copy()
        if inputs.get("resize_source"):
            source = source.resize(destination.size, Image.Resampling.BILINEAR)
        mask = inputs.get("mask")
        mask = mask.resize(source.size, Image.Resampling.BILINEAR) if mask is not None else None
        result.paste(source, (x, y), mask)
        out.append(result)
    return (out,)


def _invert_mask(inputs: dict[str, Any], _: Any) -> tuple[Any, ...]:
    return (ImageChops.invert(inputs["mask"]),)


def _latent_upscale(inputs: dict[str, Any], _: Any) -> tuple[Any, ...]:
    latent: Latent = inputs["samples"]
    width, height = int(inputs["width"]), int(inputs["height"])
    pixels = tuple(p.resize((width, height)) for p in latent.pixels)
    return (Latent(width, height, latent.batch, pixels),)


def _passthrough(*names: str) -> Node:
    return lambda inputs, _: tuple(inputs[name] for name in names)


def _crop8(image: Image.Image) -> Image.Image:
    """VAEEncode drops what does not fill a whole 8-pixel latent cell."""
    width, height = image.width // 8 * 8, image.height // 8 * 8
    if width == 0 or height == 0:
        raise NodeError("RuntimeError", f"the image ({image.width}x{image.height}) is under 8 px")
    return image if image.size == (width, height) else image.crop((0, 0, width, height))


def _crop_to_ratio(image: Image.Image, ratio: float) -> Image.Image:
    if image.width / image.height > ratio:
        width = round(image.height * ratio)
        left = (image.width - width) // 2
        return image.crop((left, 0, left + width, image.height))
    height = round(image.width / ratio)
    top = (image.height - height) // 2
    return image.crop((0, top, image.width, top + height))


def _open(name: Any, read: Callable[[str], bytes | None]) -> Image.Image:
    data = read(str(name))
    if data is None:
        raise NodeError("FileNotFoundError", f"Invalid image file: {name}")
    try:
        image = Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "WEBP"])
        image.load()
    except OSError as error:
        raise NodeError(
            "PIL.UnidentifiedImageError", f"cannot identify image file {name!r}"
        ) from error
    return image


NODES: dict[str, Node] = {
    "CheckpointLoaderSimple": lambda inputs, _: ("MODEL", "CLIP", "VAE"),
    "CLIPTextEncode": lambda inputs, _: ({"text": inputs["text"]},),
    "CLIPSetLastLayer": _passthrough("clip"),
    "LoraLoader": _passthrough("model", "clip"),
    "EmptyLatentImage": lambda inputs, _: (
        Latent(int(inputs["width"]), int(inputs["height"]), int(inputs["batch_size"])),
    ),
    "LatentUpscale": _latent_upscale,
    "KSampler": _sample,
    "KSamplerAdvanced": _sample,
    "VAEDecode": _decode,
    "VAEEncode": _encode,
    "VAEEncodeForInpaint": _encode_for_inpaint,
    "SetLatentNoiseMask": _noise_mask,
    "LoadImage": _load_image,
    "LoadImageMask": _load_image_mask,
    "ImagePadForOutpaint": _pad,
    "UpscaleModelLoader": _upscale_model,
    "ImageUpscaleWithModel": _upscale_with_model,
    "ImageScale": _scale,
    "ImageScaleBy": _scale_by,
    "ImageCompositeMasked": _composite,
    "InvertMask": _invert_mask,
    "SaveImage": lambda inputs, _: (),
    "PreviewImage": lambda inputs, _: (),
}
