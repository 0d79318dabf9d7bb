"""The pixels of the AUTOMATIC1111 emulator: img2img and inpainting as the WebUI's
``processing.py`` prepares them (resize modes, binary and blurred masks, the masked
content modes, "only masked" crops pasted back, the original laid over what was not
masked), the extras upscaler's sizes, and an interrogator's caption. The "model" is
:func:`imagegate.render.render_image` blended over the prepared image by the denoising
strength. Synchronous: the routes call these off the event loop."""

from __future__ import annotations

import base64
import binascii
import io
import random
from dataclasses import dataclass

from PIL import Image, ImageFilter, ImageOps, ImageStat

from imagegate.imaging import encode_png
from imagegate.render import render_image

# opts.img2img_background_color: what transparent pixels of an init image become.
BACKGROUND = (255, 255, 255)
FILL, ORIGINAL, LATENT_NOISE, LATENT_NOTHING = 0, 1, 2, 3
# The blur radii (and repeats) of masking.fill, which spreads the unmasked colours in.
_FILL_PASSES = ((256, 1), (64, 1), (16, 2), (4, 4), (2, 2), (0, 1))
_NAMED = {
    "black": (0, 0, 0), "white": (255, 255, 255), "grey": (128, 128, 128),
    "red": (200, 30, 30), "orange": (240, 140, 20), "yellow": (240, 220, 40),
    "green": (40, 160, 60), "cyan": (40, 200, 210), "blue": (40, 80, 200),
    "purple": (130, 50, 170), "pink": (240, 130, 180), "brown": (120, 80, 40),
}  # fmt: skip


def decode(encoded: str) -> Image.Image:
    """decode_base64_to_image: base64 or a data URL; ValueError when unreadable."""
    if encoded.startswith("data:image/"):
        encoded = encoded.split(",", 1)[-1]
    try:
        image = Image.open(io.BytesIO(base64.b64decode(encoded)))
        image.load()
    except (binascii.Error, OSError, ValueError) as error:
        raise ValueError("Invalid encoded image") from error
    return image


def flatten(image: Image.Image) -> Image.Image:
    """images.flatten: transparency laid on the background colour, as RGB."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        base = Image.new("RGBA", rgba.size, (*BACKGROUND, 255))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return image.convert("RGB")


def resize_image(mode: int, image: Image.Image, width: int, height: int) -> Image.Image:
    """images.resize_image: 0 just resize, 1 crop and resize, 2 resize and fill (the
    edges stretched into the gap); 3 (latent upscale) resizes like 0."""
    if mode not in (1, 2):
        return image.resize((width, height), Image.Resampling.LANCZOS)
    ratio, source_ratio = width / height, image.width / image.height
    cover = ratio > source_ratio if mode == 1 else ratio < source_ratio
    w = width if cover else image.width * height // image.height
    h = image.height * width // image.width if cover else height
    resized = image.resize((max(1, w), max(1, h)), Image.Resampling.LANCZOS)
    out = Image.new(image.mode, (width, height))
    offset = (width // 2 - resized.width // 2, height // 2 - resized.height // 2)
    if mode == 2 and (resized.width, resized.height) != (width, height):
        out.paste(resized.resize((width, height), Image.Resampling.NEAREST))
    out.paste(resized, offset)
    return out


@dataclass(frozen=True)
class Inpaint:
    """The inpainting fields of an img2img body."""

    mask: Image.Image
    blur: int
    fill: int
    full_res: bool
    padding: int
    invert: bool


@dataclass(frozen=True)
class Job:
    """One img2img generation's inputs, as the WebUI has parsed them."""

    init: Image.Image
    prompt: str
    seed: int
    width: int
    height: int
    resize_mode: int
    strength: float
    inpaint: Inpaint | None


def img2img(job: Job) -> bytes:
    """The output PNG: the size of width x height, or of the init image when only the
    masked area was repainted (it is pasted back into the whole)."""
    init = flatten(job.init)
    spec = job.inpaint
    mask = _prepared_mask(spec) if spec is not None else None
    if spec is None or mask is None or (spec.full_res and mask.getbbox() is None):
        # No mask, or the WebUI's fallback for a blank one with "only masked": img2img.
        return encode_png(_sample(resize_image(job.resize_mode, init, job.width, job.height), job))
    if not spec.full_res:
        image = resize_image(job.resize_mode, init, job.width, job.height)
        paint = resize_image(job.resize_mode, mask, job.width, job.height)
        done = _sample(_masked_content(image, paint, spec, job), job)
        return encode_png(_composite(done, image, paint.point(lambda v: min(255, v * 2))))
    region = mask.getbbox() or (0, 0, *mask.size)
    box = _expand(_padded(region, spec.padding, init.size), job.width / job.height, init.size)
    crop = resize_image(2, init.crop(box), job.width, job.height)
    paint = resize_image(2, mask.crop(box), job.width, job.height)
    done = _sample(_masked_content(crop, paint, spec, job), job)
    whole = init.copy()
    whole.paste(resize_image(1, done, box[2] - box[0], box[3] - box[1]), box[:2])
    return encode_png(_composite(whole, init, resize_image(0, mask, *init.size)))


def _prepared_mask(spec: Inpaint) -> Image.Image:
    """The mask as processing.py makes it: binary, inverted if asked, then blurred."""
    mask = _binary(spec.mask)
    if spec.invert:
        mask = ImageOps.invert(mask)
    if spec.blur > 0:
        mask = mask.filter(ImageFilter.GaussianBlur(spec.blur))
    return mask


def _binary(mask: Image.Image) -> Image.Image:
    """create_binary_mask: the alpha channel of an RGBA mask that uses it, else the
    luminance; rounded to black and white."""
    if mask.mode == "RGBA" and mask.getextrema()[-1] != (255, 255):
        grey = mask.getchannel("A")
    else:
        grey = mask.convert("L")
    return grey.point(lambda v: 255 if v > 128 else 0)


def _masked_content(image: Image.Image, paint: Image.Image, spec: Inpaint, job: Job) -> Image.Image:
    """What the masked area starts from: ``inpainting_fill``."""
    if spec.fill == ORIGINAL:
        return image
    start = _fill(image, paint)
    if spec.fill == LATENT_NOISE:
        rng = random.Random(job.seed)  # noqa: S311 - a picture, not a secret
        noise = Image.frombytes("RGB", image.size, rng.randbytes(image.width * image.height * 3))
        start = Image.composite(noise, start, paint)
    elif spec.fill == LATENT_NOTHING:
        start = Image.composite(Image.new("RGB", image.size, (128, 128, 128)), start, paint)
    return start


def _fill(image: Image.Image, paint: Image.Image) -> Image.Image:
    """masking.fill: the unmasked colours blurred, ever finer, over the masked area."""
    kept = Image.new("RGBa", image.size)
    kept.paste(image.convert("RGBA").convert("RGBa"), mask=ImageOps.invert(paint.convert("L")))
    out = Image.new("RGBA", image.size)
    for radius, repeats in _FILL_PASSES:
        blurred = kept.filter(ImageFilter.GaussianBlur(radius)).convert("RGBA")
        for _ in range(repeats):
            out.alpha_composite(blurred)
    return out.convert("RGB")


def _sample(start: Image.Image, job: Job) -> Image.Image:
    """The emulated model: the new picture replaces ``strength`` of the old."""
    new = render_image(job.prompt, None, "none", job.seed, start.width, start.height)
    return Image.blend(start.convert("RGB"), new.convert("RGB"), max(0.0, min(1.0, job.strength)))


def _composite(result: Image.Image, original: Image.Image, paint: Image.Image) -> Image.Image:
    """apply_overlay: the original over the result wherever the mask does not paint."""
    return Image.composite(result, original.resize(result.size), paint.resize(result.size))


def _padded(
    box: tuple[int, int, int, int], pad: int, size: tuple[int, int]
) -> tuple[int, int, int, int]:
    x1, y1, x2, y2 = box
    return max(x1 - pad, 0), max(y1 - pad, 0), min(x2 + pad, size[0]), min(y2 + pad, size[1])


def _expand(
    box: tuple[int, int, int, int], ratio: float, size: tuple[int, int]
) -> tuple[int, int, int, int]:
    """masking.expand_crop_region: the crop grown to the processing size's aspect ratio,
    within the image."""
    x1, y1, x2, y2 = box
    if (x2 - x1) / (y2 - y1) > ratio:
        y1, y2 = _grow(y1, y2, round((x2 - x1) / ratio), size[1])
    else:
        x1, x2 = _grow(x1, x2, round((y2 - y1) * ratio), size[0])
    return x1, y1, x2, y2


def _grow(low: int, high: int, wanted: int, limit: int) -> tuple[int, int]:
    extra = max(0, wanted - (high - low))
    low, high = low - extra // 2, high + extra - extra // 2
    if high > limit:
        low, high = low - (high - limit), limit
    if low < 0:
        low, high = 0, min(limit, high - low)
    return low, high


def upscaled(
    image: Image.Image, upscaler: str, scale: float, target: tuple[int, int] | None
) -> Image.Image:
    """Upscaler.upscale: ``scale`` times, each side floored to a multiple of 8; with a
    ``target`` (resize mode 1 and crop to fit), centred on a black canvas of that size."""
    if upscaler == "None":
        return image  # no upscaler: the extras tab leaves the image as it is
    size = (int(image.width * scale) // 8 * 8, int(image.height * scale) // 8 * 8)
    method = Image.Resampling.NEAREST if upscaler == "Nearest" else Image.Resampling.LANCZOS
    out = image.convert("RGB").resize(size, method)
    if target is None:
        return out
    canvas = Image.new("RGB", target)
    canvas.paste(out, (target[0] // 2 - out.width // 2, target[1] // 2 - out.height // 2))
    return canvas


def caption(image: Image.Image, model: str) -> str:
    """What an interrogator would say, read from the image's colours and shape: CLIP's
    sentence and flavours, or DeepDanbooru's tags."""
    rgb = image.convert("RGB")
    colours = _palette(rgb)
    brightness = ImageStat.Stat(ImageOps.grayscale(rgb)).mean[0]
    tone = "dark" if brightness < 85 else "bright" if brightness > 170 else "muted"
    ratio = rgb.width / rgb.height
    shape = "wide" if ratio > 1.1 else "tall" if ratio < 1 / 1.1 else "square"
    if model == "deepdanbooru":
        tags = [f"{colour}_theme" for colour in colours] + [f"{tone}_background", "no_humans"]
        return ", ".join(tags)
    scene = " and ".join(colours)
    return f"a {shape} picture of {scene} shapes, {tone} lighting, {colours[0]} palette, flat"


def _palette(image: Image.Image) -> list[str]:
    """The names of the (up to two) commonest colours."""
    counts: dict[str, int] = {}
    for count, pixel in image.resize((32, 32)).getcolors(32 * 32) or []:
        name = min(_NAMED, key=lambda n: _distance(_NAMED[n], pixel))
        counts[name] = counts.get(name, 0) + count
    return sorted(counts, key=lambda n: (-counts[n], n))[:2]


def _distance(a: tuple[int, ...], b: tuple[int, ...] | float) -> float:
    pixel = b if isinstance(b, tuple) else (b, b, b)
    return sum((x - y) ** 2 for x, y in zip(a, pixel, strict=True))
