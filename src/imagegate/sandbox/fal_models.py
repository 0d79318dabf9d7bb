"""The models the fal emulator runs: each one's input rules (checked as the model's
schema checks them, answered in fal's ``detail`` list shape), its progress logs, and
its output (real images, black where the safety checker steps in)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PIL import Image

from imagegate.domain.params import OutputFormat
from imagegate.imaging import encode
from imagegate.render import render_image


@dataclass(frozen=True)
class Model:
    max_images: int
    format_field: str  # FLUX calls it ``output_format``, the SDXL apps ``format``
    negative_prompt: bool
    default_size: str
    steps: int
    kind: str = "t2i"  # or an action model's kind (sandbox/fal_edits.py)


_FLUX_DEV = Model(4, "output_format", False, "landscape_4_3", 28)
_FLUX_SCHNELL = Model(4, "output_format", False, "landscape_4_3", 4)
_SDXL = Model(8, "format", True, "square_hd", 25)
MODELS: dict[str, Model] = {
    "fal-ai/flux/dev": _FLUX_DEV,
    "fal-ai/flux-1/dev": _FLUX_DEV,
    "fal-ai/flux/schnell": _FLUX_SCHNELL,
    "fal-ai/flux-1/schnell": _FLUX_SCHNELL,
    "fal-ai/fast-sdxl": _SDXL,
    "fal-ai/fast-lightning-sdxl": _SDXL,
    "fal-ai/flux/dev/image-to-image": Model(4, "output_format", False, "", 40, "i2i"),
    "fal-ai/flux-pro/v1/fill": Model(4, "output_format", False, "", 28, "fill"),
    "fal-ai/esrgan": Model(1, "output_format", False, "", 1, "esrgan"),
    "fal-ai/clarity-upscaler": Model(1, "output_format", False, "", 18, "clarity"),
    "fal-ai/florence-2-large/detailed-caption": Model(0, "", False, "", 1, "caption"),
}
IMAGE_SIZES = {
    "square_hd": (1024, 1024), "square": (512, 512), "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024), "landscape_4_3": (1024, 768), "landscape_16_9": (1024, 576),
}  # fmt: skip
MAX_SIDE = 14_142
_FORMATS = {"jpeg": OutputFormat.JPEG, "png": OutputFormat.PNG}


@dataclass(frozen=True)
class Inputs:
    """A request's input as the model reads it."""

    prompt: str
    width: int
    height: int
    num_images: int
    seed: int | None
    fmt: OutputFormat
    safety_checker: bool


def check(model: Model, body: dict[str, Any]) -> tuple[Inputs | None, list[dict[str, Any]]]:
    """The inputs, or the schema's complaints (``{loc, msg, type}`` each)."""
    problems: list[dict[str, Any]] = []
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or not prompt:
        problems.append(_problem("prompt", "Field required", "missing"))
    width, height = _size(body.get("image_size", model.default_size), problems)
    count = body.get("num_images", 1)
    if not isinstance(count, int) or not 1 <= count <= model.max_images:
        msg = f"Input should be between 1 and {model.max_images}"
        problems.append(_problem("num_images", msg, "less_than_equal"))
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or seed < 0):
        problems.append(_problem("seed", "Input should be a valid integer", "int_type"))
    fmt_name = body.get(model.format_field, "jpeg")
    if fmt_name not in _FORMATS:
        msg = "Input should be 'jpeg' or 'png'"
        problems.append(_problem(model.format_field, msg, "enum"))
    checker = body.get("enable_safety_checker", True)
    if problems or not isinstance(prompt, str) or not isinstance(count, int):
        return None, problems
    inputs = Inputs(prompt, width, height, count, seed, _FORMATS[fmt_name], checker is not False)
    return inputs, []


def _size(value: Any, problems: list[dict[str, Any]]) -> tuple[int, int]:
    if isinstance(value, str) and value in IMAGE_SIZES:
        return IMAGE_SIZES[value]
    if isinstance(value, dict):
        width, height = value.get("width"), value.get("height")
        if all(isinstance(v, int) and 1 <= v <= MAX_SIDE for v in (width, height)):
            assert isinstance(width, int) and isinstance(height, int)
            return width, height
    msg = f"Input should be one of {', '.join(IMAGE_SIZES)} or {{width, height}} up to {MAX_SIDE}"
    problems.append(_problem("image_size", msg, "union_tag_invalid"))
    return 0, 0


def _problem(field: str, msg: str, kind: str) -> dict[str, Any]:
    return {"loc": ["body", field], "msg": msg, "type": kind}


def policy_violation(prompt: str) -> dict[str, Any]:
    """The model's refusal of a prompt its content checker flagged (HTTP 422)."""
    return {
        "loc": ["body", "prompt"],
        "msg": "The content was flagged by a content checker.",
        "type": "content_policy_violation",
        "url": "https://docs.fal.ai/errors#content_policy_violation",
        "input": prompt,
    }


def logs(model: Model, fraction: float, started: datetime) -> list[dict[str, Any]]:
    """A diffusion runner's progress bar, one line per finished step (as tqdm prints)."""
    done = min(model.steps, int(fraction * model.steps))
    stamp = started.isoformat()
    return [
        {
            "message": f"{100 * step // model.steps:3d}%| | {step}/{model.steps}",
            "level": "STDERR",
            "source": "USER",
            "timestamp": stamp,
        }
        for step in range(1, done + 1)
    ]


def now() -> datetime:
    return datetime.now(UTC)


async def draw(inputs: Inputs, seed: int, flagged: bool) -> list[bytes]:
    """The images: image ``i`` from ``seed + i``; black ones when the checker flags them."""

    def run() -> list[bytes]:
        size = (inputs.width, inputs.height)
        if flagged:
            black = encode(Image.new("RGB", size), inputs.fmt)
            return [black] * inputs.num_images
        return [
            encode(render_image(inputs.prompt, None, "none", seed + i, *size), inputs.fmt)
            for i in range(inputs.num_images)
        ]

    return await asyncio.to_thread(run)
