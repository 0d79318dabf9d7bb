"""The fal emulator's models for the workflow actions: their input rules (answered in
fal's ``detail`` list shape), what they make from the images they are given (with
:mod:`imagegate.sandbox.editing`), and the shape of their results.

- ``fal-ai/flux/dev/image-to-image``: ``image_url``, ``prompt``, ``strength``
  (0.01-1, default 0.95), ``num_images`` 1-4 → ``images`` at the input's size;
- ``fal-ai/flux-pro/v1/fill``: ``image_url``, ``mask_url``, ``prompt``, ``num_images``
  1-4, ``output_format`` → ``images`` at the input's size, unmasked pixels kept;
- ``fal-ai/esrgan``: ``image_url``, ``scale`` (1-8, default 2) → one ``image``;
- ``fal-ai/clarity-upscaler``: ``image_url``, ``upscale_factor`` (1-4, default 2) →
  one ``image``;
- ``fal-ai/florence-2-large/detailed-caption``: ``image_url`` → ``results`` text.

File inputs must be data URIs: the emulator fetches nothing."""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass
from typing import Any

from PIL import Image

from imagegate.domain.params import OutputFormat
from imagegate.imaging import encode
from imagegate.sandbox import editing

MAX_SIDE = 14_142
_FORMATS = {"jpeg": OutputFormat.JPEG, "png": OutputFormat.PNG}


@dataclass(frozen=True)
class Edit:
    """An action request's input as the model reads it."""

    kind: str
    prompt: str
    source: bytes
    mask: bytes | None
    strength: float
    scale: float
    num_images: int
    seed: int | None
    fmt: OutputFormat
    safety_checker: bool
    width: int
    height: int


def check(kind: str, body: dict[str, Any]) -> tuple[Edit | None, list[dict[str, Any]]]:
    problems: list[dict[str, Any]] = []
    source = _image(body, "image_url", problems, required=True)
    mask = _image(body, "mask_url", problems, required=kind == "fill")
    prompt = body.get("prompt", "")
    if kind in ("i2i", "fill") and (not isinstance(prompt, str) or not prompt):
        problems.append(_problem("prompt", "Field required", "missing"))
    strength = _number(body, "strength", 0.95, (0.01, 1.0), problems)
    limits = {"esrgan": ("scale", (1.0, 8.0)), "clarity": ("upscale_factor", (1.0, 4.0))}
    field, bounds = limits.get(kind, ("scale", (1.0, 8.0)))
    scale = _number(body, field, 2.0, bounds, problems)
    count = body.get("num_images", 1)
    if kind in ("i2i", "fill") and (not isinstance(count, int) or not 1 <= count <= 4):
        problems.append(
            _problem("num_images", "Input should be between 1 and 4", "less_than_equal")
        )
    fmt_name = body.get("output_format", "png" if kind == "esrgan" else "jpeg")
    if fmt_name not in _FORMATS:
        problems.append(_problem("output_format", "Input should be 'jpeg' or 'png'", "enum"))
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or seed < 0):
        problems.append(_problem("seed", "Input should be a valid integer", "int_type"))
    if problems or source is None:
        return None, problems
    width, height = source.size
    if kind in ("esrgan", "clarity"):
        width, height = round(width * scale), round(height * scale)
    if kind == "fill" and mask is not None and mask.size != source.size:
        msg = "The mask must have the same size as the image"
        return None, [_problem("mask_url", msg, "image_size_mismatch")]
    if max(width, height) > MAX_SIDE:
        return None, [
            _problem(field, f"The output would be larger than {MAX_SIDE} px", "image_too_large")
        ]
    edit = Edit(
        kind, str(prompt), _raw(body["image_url"]),
        _raw(body["mask_url"]) if mask is not None else None, strength, scale,
        count if isinstance(count, int) and kind in ("i2i", "fill") else 1,
        seed, _FORMATS[fmt_name], body.get("enable_safety_checker", True) is not False,
        width, height,
    )  # fmt: skip
    return edit, []


def draw(edit: Edit, seed: int, flagged: bool) -> list[bytes]:
    """The output images: black where the safety checker flags them."""
    if flagged:
        return [encode(Image.new("RGB", (edit.width, edit.height)), edit.fmt)] * edit.num_images
    with _open(edit.source) as source:
        if edit.kind in ("esrgan", "clarity"):
            return [encode(editing.enlarge(source, edit.width, edit.height), edit.fmt)]
        if edit.kind == "fill":
            with _open(edit.mask or b"") as mask:
                return [
                    encode(editing.fill(edit.prompt, seed + i, source, mask), edit.fmt)
                    for i in range(edit.num_images)
                ]
        return [
            encode(editing.repaint(edit.prompt, seed + i, source, edit.strength), edit.fmt)
            for i in range(edit.num_images)
        ]


def caption(edit: Edit) -> str:
    """Florence-2's detailed caption: sentences about the image."""
    with _open(edit.source) as source:
        words = editing.caption(source)
    return (
        f"The image shows {words}. The picture is {edit.width} pixels wide and "
        f"{edit.height} pixels tall."
    )


def result(edit: Edit, urls: list[str], seed: int, flagged: bool) -> dict[str, Any]:
    """The model's answer, given its files' URLs."""
    files = [
        {"url": url, "width": edit.width, "height": edit.height,
         "content_type": edit.fmt.content_type}
        for url in urls
    ]  # fmt: skip
    if edit.kind in ("esrgan", "clarity"):
        return {"image": files[0], "seed": seed} if edit.kind == "clarity" else {"image": files[0]}
    return {"images": files, "seed": seed, "has_nsfw_concepts": [flagged] * len(files),
            "prompt": edit.prompt}  # fmt: skip


def _image(
    body: dict[str, Any], field: str, problems: list[dict[str, Any]], *, required: bool
) -> Image.Image | None:
    value = body.get(field)
    if value is None:
        if required:
            problems.append(_problem(field, "Field required", "missing"))
        return None
    try:
        with _open(_raw(value)) as image:
            return image.copy()
    except ValueError:
        msg = "Failed to load the image. Please ensure the image file is not corrupted."
        problems.append(_problem(field, msg, "image_load_error"))
        return None


def _raw(value: Any) -> bytes:
    if not isinstance(value, str) or not value.startswith("data:") or "," not in value:
        raise ValueError("not a data URI")
    try:
        return base64.b64decode(value.split(",", 1)[1], validate=True)
    except binascii.Error as error:
        raise ValueError(str(error)) from error


def _open(data: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "WEBP"])
        image.load()
    except OSError as error:
        raise ValueError(str(error)) from error
    return image


def _number(
    body: dict[str, Any], field: str, default: float, bounds: tuple[float, float],
    problems: list[dict[str, Any]],
) -> float:  # fmt: skip
    value = body.get(field, default)
    low, high = bounds
    if isinstance(value, bool) or not isinstance(value, int | float):
        problems.append(_problem(field, "Input should be a valid number", "float_type"))
        return default
    if not low <= value <= high:
        msg = f"Input should be between {low:g} and {high:g}"
        problems.append(
            _problem(field, msg, "less_than_equal" if value > high else "greater_than_equal")
        )
        return default
    return float(value)


def _problem(field: str, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", field], "msg": msg, "type": kind}
