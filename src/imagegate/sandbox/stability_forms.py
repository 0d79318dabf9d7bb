"""The Stability emulator's reading of a request: the multipart form, and each
endpoint's parameters checked as the API checks them (every problem listed, in the
API's ``field: problem`` wording, answered 400 ``bad_request``)."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP

from fastapi import Request
from PIL import Image

from imagegate.domain.params import OutputFormat

ASPECT_SIZES: dict[str, tuple[int, int]] = {
    # About one megapixel at each of the API's aspect ratios, sides divisible by 64.
    "1:1": (1024, 1024), "16:9": (1344, 768), "9:16": (768, 1344), "21:9": (1536, 640),
    "9:21": (640, 1536), "3:2": (1216, 832), "2:3": (832, 1216), "5:4": (1088, 896),
    "4:5": (896, 1088),
}  # fmt: skip
SD3_MODELS = frozenset({
    "sd3.5-large", "sd3.5-large-turbo", "sd3.5-medium", "sd3.5-flash",
    "sd3-large", "sd3-large-turbo", "sd3-medium",
})  # fmt: skip
STYLE_PRESETS = frozenset({
    "3d-model", "analog-film", "anime", "cinematic", "comic-book", "digital-art", "enhance",
    "fantasy-art", "isometric", "line-art", "low-poly", "modeling-compound", "neon-punk",
    "origami", "photographic", "pixel-art", "tile-texture",
})  # fmt: skip
MAX_SEED = 4_294_967_294
MAX_PROMPT = 10_000
MAX_BODY_BYTES = 10 * 1024 * 1024
_FORMATS = {f.value: f for f in OutputFormat}
# Input image limits per upscaler: (min side, max side, min pixels, max pixels).
_UPSCALE_LIMITS = {
    "fast": (32, 1536, 1024, 1_048_576),
    "conservative": (64, 16_384, 4096, 9_437_184),
    "creative": (64, 16_384, 4096, 1_048_576),
}
_CREATIVITY = {"conservative": (0.2, 0.5), "creative": (0.1, 0.5)}
# The edit endpoints' input limits: sides of at least 64, 4,096 to 9,437,184 pixels, an
# aspect ratio from 1:2.5 to 2.5:1; outpaint adds 0 to 2000 pixels a side.
_EDIT_MIN_SIDE, _EDIT_PIXELS, _EDIT_RATIO = 64, (4096, 9_437_184), 2.5
_MAX_OUTPAINT = 2000
_SIDES = ("left", "right", "up", "down")


class Invalid(ValueError):
    """The request breaks the API's rules; ``messages`` say how, one per problem."""

    def __init__(self, messages: list[str], status: int = 400, name: str = "bad_request") -> None:
        super().__init__("; ".join(messages))
        self.messages, self.status, self.name = messages, status, name


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Spec:
    """A generation: text-to-image, or image-to-image when ``image`` is set."""

    model: str
    prompt: str
    aspect_ratio: str
    seed: int
    fmt: OutputFormat
    image: bytes | None = None
    strength: float = 0.0


@dataclass(frozen=True)
class Upscale:
    kind: str
    image: bytes
    size: tuple[int, int]
    fmt: OutputFormat
    prompt: str | None = None
    seed: int = 0


@dataclass(frozen=True)
class Edit:
    """An outpaint (``pads``: pixels added left, up, right, down) or an inpaint
    (``mask``: white = repaint; ``None``: the image's transparency says)."""

    kind: str
    image: bytes
    size: tuple[int, int]
    fmt: OutputFormat
    prompt: str
    seed: int
    pads: tuple[int, int, int, int] = (0, 0, 0, 0)
    mask: bytes | None = None


async def read_form(request: Request) -> Form:
    """The multipart body, parsed with the standard library's MIME parser."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise Invalid(["content-type: must be multipart/form-data"])
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        raise Invalid(["body: larger than 10MiB"], 413, "payload_too_large")
    head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not isinstance(message, EmailMessage) or not message.is_multipart():
        raise Invalid(["body: not a multipart form"])
    form = Form()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if not isinstance(name, str) or not isinstance(payload, bytes):
            continue
        if part.get_filename() is not None:
            form.files[name] = payload
        else:
            form.fields[name] = payload.decode("utf-8", "replace")
    return form


def generation_spec(model: str, form: Form) -> Spec:
    problems: list[str] = []
    prompt = _prompt(form, problems)
    _text(form, "negative_prompt", problems)
    aspect = form.fields.get("aspect_ratio", "1:1")
    if aspect not in ASPECT_SIZES:
        problems.append(f"aspect_ratio: must be one of {', '.join(ASPECT_SIZES)}")
    formats = ("jpeg", "png") if model == "sd3" else tuple(_FORMATS)
    fmt = _format(form, formats, problems)
    seed = _seed(form, problems)
    style = form.fields.get("style_preset")
    if style is not None and style not in STYLE_PRESETS:
        problems.append(f"style_preset: must be one of {', '.join(sorted(STYLE_PRESETS))}")
    image, strength = _image_to_image(model, form, problems)
    if problems:
        raise Invalid(problems)
    return Spec(model, prompt, aspect, seed, fmt, image, strength)


def upscale_spec(kind: str, form: Form) -> Upscale:
    problems: list[str] = []
    prompt = _prompt(form, problems) if kind == "conservative" else None
    if kind == "conservative":
        _text(form, "negative_prompt", problems)
        _creativity(kind, form, problems)
    image, size = _source(kind, form, problems)
    fmt = _format(form, tuple(_FORMATS), problems)
    seed = _seed(form, problems) if kind == "conservative" else 0
    if problems:
        raise Invalid(problems)
    return Upscale(kind, image, size, fmt, prompt, seed)


def creative_spec(form: Form) -> Upscale:
    problems: list[str] = []
    prompt = _prompt(form, problems)
    _text(form, "negative_prompt", problems)
    _creativity("creative", form, problems)
    image, size = _source("creative", form, problems)
    fmt = _format(form, tuple(_FORMATS), problems)
    seed = _seed(form, problems)
    if problems:
        raise Invalid(problems)
    return Upscale("creative", image, size, fmt, prompt, seed)


def outpaint_spec(form: Form) -> Edit:
    problems: list[str] = []
    prompt = form.fields.get("prompt", "")
    if len(prompt) > MAX_PROMPT:
        problems.append(f"prompt: must be at most {MAX_PROMPT} characters")
    pads = [_integer(form, side, 0, _MAX_OUTPAINT, problems) for side in _SIDES]
    if not any(pads) and not any(p.startswith(_SIDES) for p in problems):
        problems.append("left, right, up, down: at least one must be greater than 0")
    _number(form, "creativity", 0.0, 1.0, problems)
    image, size = _edit_image(form, problems)
    fmt = _format(form, tuple(_FORMATS), problems)
    seed = _seed(form, problems)
    _style(form, problems)
    if problems:
        raise Invalid(problems)
    left, right, up, down = pads
    return Edit("outpaint", image, size, fmt, prompt, seed, pads=(left, up, right, down))


def inpaint_spec(form: Form) -> Edit:
    problems: list[str] = []
    prompt = _prompt(form, problems)
    _text(form, "negative_prompt", problems)
    image, size = _edit_image(form, problems)
    mask = form.files.get("mask")
    if mask is not None:
        _decode(mask, "mask", problems)
    _integer(form, "grow_mask", 0, 100, problems)
    fmt = _format(form, tuple(_FORMATS), problems)
    seed = _seed(form, problems)
    _style(form, problems)
    if problems:
        raise Invalid(problems)
    return Edit("inpaint", image, size, fmt, prompt, seed, mask=mask)


def _edit_image(form: Form, problems: list[str]) -> tuple[bytes, tuple[int, int]]:
    image = form.files.get("image")
    if image is None:
        problems.append("image: is required")
        return b"", (0, 0)
    width, height = _decode(image, "image", problems)
    if not width:
        return image, (0, 0)
    low, high = _EDIT_PIXELS
    if min(width, height) < _EDIT_MIN_SIDE:
        problems.append(f"image: each side must be at least {_EDIT_MIN_SIDE} pixels")
    if not low <= width * height <= high:
        problems.append(f"image: must have between {low} and {high} pixels in total")
    if not 1 / _EDIT_RATIO <= width / height <= _EDIT_RATIO:
        problems.append("image: aspect ratio must be between 1:2.5 and 2.5:1")
    return image, (width, height)


def _integer(form: Form, name: str, low: int, high: int, problems: list[str]) -> int:
    raw = form.fields.get(name, "0")
    if not raw.isdigit() or not low <= int(raw) <= high:
        problems.append(f"{name}: must be an integer between {low} and {high}")
        return 0
    return int(raw)


def _style(form: Form, problems: list[str]) -> None:
    style = form.fields.get("style_preset")
    if style is not None and style not in STYLE_PRESETS:
        problems.append(f"style_preset: must be one of {', '.join(sorted(STYLE_PRESETS))}")


def _prompt(form: Form, problems: list[str]) -> str:
    prompt = form.fields.get("prompt", "")
    if not prompt.strip():
        problems.append("prompt: is required")
    elif len(prompt) > MAX_PROMPT:
        problems.append(f"prompt: must be at most {MAX_PROMPT} characters")
    return prompt


def _text(form: Form, name: str, problems: list[str]) -> None:
    if len(form.fields.get(name, "")) > MAX_PROMPT:
        problems.append(f"{name}: must be at most {MAX_PROMPT} characters")


def _format(form: Form, allowed: tuple[str, ...], problems: list[str]) -> OutputFormat:
    value = form.fields.get("output_format", "png")
    if value not in allowed:
        problems.append(f"output_format: must be one of {', '.join(allowed)}")
        return OutputFormat.PNG
    return _FORMATS[value]


def _seed(form: Form, problems: list[str]) -> int:
    raw = form.fields.get("seed", "0")
    try:
        seed = int(raw)
    except ValueError:
        seed = -1
    if not 0 <= seed <= MAX_SEED:
        problems.append(f"seed: must be an integer between 0 and {MAX_SEED}")
        return 0
    return seed


def _number(form: Form, name: str, low: float, high: float, problems: list[str]) -> float | None:
    raw = form.fields.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        problems.append(f"{name}: must be a number between {low:g} and {high:g}")
        return None
    return value


def _creativity(kind: str, form: Form, problems: list[str]) -> None:
    low, high = _CREATIVITY[kind]
    _number(form, "creativity", low, high, problems)


def _image_to_image(model: str, form: Form, problems: list[str]) -> tuple[bytes | None, float]:
    """``image`` + ``strength`` where the model takes them (ultra; sd3 in image-to-image
    mode); core makes images from text only."""
    image = form.files.get("image")
    if model == "sd3":
        sd3 = form.fields.get("model", "sd3.5-large")
        if sd3 not in SD3_MODELS:
            problems.append(f"model: must be one of {', '.join(sorted(SD3_MODELS))}")
        mode = form.fields.get("mode", "text-to-image")
        if mode not in ("text-to-image", "image-to-image"):
            problems.append("mode: must be one of text-to-image, image-to-image")
        if mode == "text-to-image":
            return None, 0.0
        if image is None:
            problems.append("image: is required in image-to-image mode")
    if model == "core" or image is None:
        return None, 0.0
    _decode(image, "image", problems)
    strength = _number(form, "strength", 0.0, 1.0, problems)
    if strength is None and "strength" not in form.fields:
        problems.append("strength: is required when image is given")
    return image, strength or 0.0


def _source(kind: str, form: Form, problems: list[str]) -> tuple[bytes, tuple[int, int]]:
    image = form.files.get("image")
    if image is None:
        problems.append("image: is required")
        return b"", (0, 0)
    width, height = _decode(image, "image", problems)
    min_side, max_side, min_px, max_px = _UPSCALE_LIMITS[kind]
    if width and not (min_side <= min(width, height) and max(width, height) <= max_side):
        problems.append(f"image: each side must be between {min_side} and {max_side} pixels")
    if width and not min_px <= width * height <= max_px:
        problems.append(f"image: must have between {min_px} and {max_px} pixels in total")
    return image, (width, height)


def _decode(data: bytes, name: str, problems: list[str]) -> tuple[int, int]:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        problems.append(f"{name}: is not a readable png, jpeg or webp image")
        return 0, 0
