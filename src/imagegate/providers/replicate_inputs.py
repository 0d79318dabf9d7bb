"""What Replicate's image models take as input: a small table of the models the
adapter knows (how each spells size, count, format and the optional inputs), with a
default for any other model, and the mapping of a GenerationRequest onto it."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any

from imagegate.domain.params import Mode, OutputFormat
from imagegate.providers.base import Action, GenerationRequest
from imagegate.providers.errors import PermanentProviderError
from imagegate.providers.http import decode_image

SDXL = "stability-ai/sdxl:39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"
UPSCALER = (
    "nightmareai/real-esrgan:f121d640bd286e1fdc67f9799164c1d5be36ff74576ee11c803ae5b665dd46aa"
)
VARIATION_MODEL = "black-forest-labs/flux-dev"
DEFAULT_STRENGTH = 0.6
# The aspect ratios FLUX-style models accept (width:height).
ASPECT_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")
# Replicate spells JPEG "jpg".
FORMATS = {OutputFormat.PNG: "png", OutputFormat.JPEG: "jpg", OutputFormat.WEBP: "webp"}


@dataclass(frozen=True)
class ModelSpec:
    """How one model spells a request: the size fields it takes, how many outputs it
    makes per prediction, and which optional inputs it has."""

    sizing: str = "aspect_ratio"  # or "pixels": width and height
    max_outputs: int = 1
    output_format: bool = True  # takes output_format webp|jpg|png (else PNG only)
    negative_prompt: bool = False
    megapixels: bool = False  # takes megapixels "1" | "0.25"
    img2img: bool = False  # takes image + prompt_strength


MODELS: dict[str, ModelSpec] = {
    "black-forest-labs/flux-schnell": ModelSpec(max_outputs=4, megapixels=True),
    "black-forest-labs/flux-dev": ModelSpec(max_outputs=4, megapixels=True, img2img=True),
    SDXL: ModelSpec(
        sizing="pixels", max_outputs=4, output_format=False, negative_prompt=True, img2img=True
    ),
}
# A model not in the table: the inputs most current image models share, one image.
DEFAULT_SPEC = ModelSpec()


def spec_for(model: str) -> ModelSpec:
    """The table's entry for ``model``, matching any version of a listed model."""
    if model in MODELS:
        return MODELS[model]
    name = model.partition(":")[0]
    return next((s for m, s in MODELS.items() if m.partition(":")[0] == name), DEFAULT_SPEC)


def model_input(
    request: GenerationRequest, model: str, overrides: dict[str, Any]
) -> dict[str, Any]:
    """The prediction input for ``request`` on ``model``: the table's spelling, then
    ``overrides`` (config ``options.input``) on top."""
    if request.action is Action.UPSCALE:
        # The overrides are for the image models; the upscaler has its own inputs.
        return {"image": _data_url(request), "scale": request.upscale_factor or 2}
    spec = spec_for(model)
    if not 1 <= len(request.seeds) <= spec.max_outputs:
        raise PermanentProviderError(
            f"replicate: {model} makes at most {spec.max_outputs} image(s) per prediction, "
            f"{len(request.seeds)} requested"
        )
    data: dict[str, Any] = {
        "prompt": _styled(request),
        "seed": request.seeds[0],
        **_size(spec, request),
    }
    if spec.max_outputs > 1:
        data["num_outputs"] = len(request.seeds)
    if spec.output_format:
        data["output_format"] = FORMATS[request.output_format]
    if spec.negative_prompt and request.negative_prompt:
        data["negative_prompt"] = request.negative_prompt
    if request.action is Action.VARIATION:
        strength = DEFAULT_STRENGTH if request.strength is None else request.strength
        data.update(image=_data_url(request), prompt_strength=strength)
    return {**data, **overrides}


def _styled(request: GenerationRequest) -> str:
    """Replicate's image models have no style parameter; a style is said in words."""
    if request.style in ("", "none"):
        return request.prompt
    return f"{request.prompt}, {request.style} style"


def _size(spec: ModelSpec, request: GenerationRequest) -> dict[str, Any]:
    """Aspect-ratio models get the listed ratio nearest to width:height (compared on a
    log scale, so 2:1 is as far from 1:1 as 1:2), and megapixels "0.25" in draft mode;
    pixel models get each side rounded to the nearest multiple of 8 (at least 64)."""
    if spec.sizing == "pixels":
        return {"width": _multiple_of_8(request.width), "height": _multiple_of_8(request.height)}
    wanted = math.log(request.width / request.height)
    ratio = min(ASPECT_RATIOS, key=lambda r: abs(_log_ratio(r) - wanted))
    size: dict[str, Any] = {"aspect_ratio": ratio}
    if spec.megapixels:
        size["megapixels"] = "0.25" if request.mode is Mode.DRAFT else "1"
    return size


def _log_ratio(ratio: str) -> float:
    width, height = ratio.split(":")
    return math.log(int(width) / int(height))


def _multiple_of_8(side: int) -> int:
    return max(64, (side + 4) // 8 * 8)  # halves round up


def _data_url(request: GenerationRequest) -> str:
    """The source image inline. Replicate advises uploading files over 256 KB
    instead; a data URL works for any size and keeps the call self-contained."""
    if not request.source_image:
        raise PermanentProviderError(f"replicate: {request.action} needs a source image")
    content_type = decode_image(request.source_image, 0, "replicate: source image").content_type
    return f"data:{content_type};base64,{base64.b64encode(request.source_image).decode()}"
