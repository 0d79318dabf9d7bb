"""What Replicate's models take as input: a table of the models the adapter knows
(how each spells size, count, format, images and masks), with a default per action
for any other model, and the mapping of a GenerationRequest onto it.

Kinds of model (``ModelSpec.kind``):

- ``image``: text → images, and image → images when ``img2img`` (FLUX dev, SDXL:
  ``image`` + ``prompt_strength``);
- ``upscaler``: ``image`` + ``scale`` → one image of scale x the input (Real-ESRGAN);
- ``fill``: ``image`` + ``mask`` (white = paint) + ``prompt`` → one image of the
  input's size (FLUX Fill); zoom and pan send the padded canvas and its mask;
- ``caption``: ``image`` → text (img2prompt; BLIP with ``task``)."""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from typing import Any, Literal

from imagegate.domain.params import Mode, OutputFormat
from imagegate.imaging import outpaint_inputs
from imagegate.providers.base import Action, GenerationRequest
from imagegate.providers.errors import PermanentProviderError, ProviderError
from imagegate.providers.http import decode_image

SDXL = "stability-ai/sdxl:39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b"
UPSCALER = (
    "nightmareai/real-esrgan:f121d640bd286e1fdc67f9799164c1d5be36ff74576ee11c803ae5b665dd46aa"
)
VARIATION_MODEL = "black-forest-labs/flux-dev"
FILL_MODEL = "black-forest-labs/flux-fill-pro"
IMG2PROMPT = (
    "methexis-inc/img2prompt:50adaf2d3ad20a6f911a8a9e3ccf777b263b8596fbd2c8fc26e8888f8a0edbb5"
)
BLIP = "salesforce/blip:2e1dddc8621f72155f24cf2e0adbde548458d3cab9f00c0139eea840d0ac4746"
DEFAULT_STRENGTH = 0.6
# The aspect ratios FLUX-style models accept (width:height).
ASPECT_RATIOS = ("1:1", "16:9", "21:9", "3:2", "2:3", "4:5", "5:4", "3:4", "4:3", "9:16", "9:21")
# Replicate spells JPEG "jpg".
FORMATS = {OutputFormat.PNG: "png", OutputFormat.JPEG: "jpg", OutputFormat.WEBP: "webp"}

Kind = Literal["image", "upscaler", "fill", "caption"]


@dataclass(frozen=True)
class ModelSpec:
    """How one model spells a request: its kind, the size fields it takes, how many
    outputs it makes per prediction, and which optional inputs it has."""

    kind: Kind = "image"
    sizing: str = "aspect_ratio"  # or "pixels": width and height
    max_outputs: int = 1
    output_format: bool = True  # takes output_format (else PNG only)
    webp: bool = True  # output_format includes webp (FLUX Fill pro: jpg|png only)
    negative_prompt: bool = False
    megapixels: bool = False  # takes megapixels "1" | "0.25"
    img2img: bool = False  # takes image + prompt_strength
    task: str | None = None  # a caption model's ``task`` input (BLIP)


MODELS: dict[str, ModelSpec] = {
    "black-forest-labs/flux-schnell": ModelSpec(max_outputs=4, megapixels=True),
    "black-forest-labs/flux-dev": ModelSpec(max_outputs=4, megapixels=True, img2img=True),
    SDXL: ModelSpec(
        sizing="pixels", max_outputs=4, output_format=False, negative_prompt=True, img2img=True
    ),
    UPSCALER: ModelSpec(kind="upscaler", output_format=False),
    FILL_MODEL: ModelSpec(kind="fill", webp=False),
    IMG2PROMPT: ModelSpec(kind="caption"),
    BLIP: ModelSpec(kind="caption", task="image_captioning"),
}
# A model not in the table: the inputs most current models of the action's kind share.
DEFAULT_SPECS: dict[Kind, ModelSpec] = {
    "image": ModelSpec(),
    "upscaler": ModelSpec(kind="upscaler", output_format=False),
    "fill": ModelSpec(kind="fill", webp=False),
    "caption": ModelSpec(kind="caption"),
}
ACTION_KINDS: dict[Action, Kind] = {
    Action.IMAGINE: "image",
    Action.IMG2IMG: "image",
    Action.VARIATION: "image",
    Action.UPSCALE: "upscaler",
    Action.VARY_REGION: "fill",
    Action.ZOOM_OUT: "fill",
    Action.PAN: "fill",
    Action.DESCRIBE: "caption",
}
DEFAULT_DESCRIBE_MODEL = IMG2PROMPT


def spec_for(model: str, action: Action = Action.IMAGINE) -> ModelSpec:
    """The table's entry for ``model`` (any version of a listed model), else the
    default of ``action``'s kind."""
    if model in MODELS:
        return MODELS[model]
    name = model.partition(":")[0]
    found = next((s for m, s in MODELS.items() if m.partition(":")[0] == name), None)
    return found or DEFAULT_SPECS[ACTION_KINDS.get(action, "image")]


def model_input(
    request: GenerationRequest, model: str, overrides: dict[str, Any]
) -> dict[str, Any]:
    """The prediction input for ``request`` on ``model``: the table's spelling, then,
    for the image models, ``overrides`` (config ``options.input``) on top."""
    spec = spec_for(model, request.action)
    if spec.kind == "upscaler":
        return {
            "image": _data_url(request, request.source_image),
            "scale": request.upscale_factor or 2,
        }
    if spec.kind == "caption":
        caption: dict[str, Any] = {"image": _data_url(request, request.source_image)}
        return {**caption, "task": spec.task} if spec.task else caption
    _check_count(request, model, spec)
    if spec.kind == "fill":
        return _fill_input(request, spec)
    data: dict[str, Any] = {
        "prompt": _styled(request),
        "seed": request.seeds[0],
        **_size(spec, request),
    }
    if spec.max_outputs > 1:
        data["num_outputs"] = len(request.seeds)
    if spec.output_format:
        data["output_format"] = _format(spec, request)
    if spec.negative_prompt and request.negative_prompt:
        data["negative_prompt"] = request.negative_prompt
    if request.action in (Action.IMG2IMG, Action.VARIATION):
        strength = DEFAULT_STRENGTH if request.strength is None else request.strength
        data.update(image=_data_url(request, request.source_image), prompt_strength=strength)
    return {**data, **overrides}


def _fill_input(request: GenerationRequest, spec: ModelSpec) -> dict[str, Any]:
    """FLUX Fill: the image and its mask. A region repaint sends the source and the
    job's mask; zoom and pan send the source placed on the larger canvas (its border
    transparent) and a mask that is white outside the source."""
    source = _source(request, request.source_image)
    if request.action is Action.VARY_REGION:
        if not request.mask:
            raise PermanentProviderError("replicate: vary_region needs a mask")
        image, mask = source, request.mask
    else:
        if request.canvas is None:
            raise PermanentProviderError(f"replicate: {request.action} needs a canvas")
        image, mask = outpaint_inputs(source, request.canvas)
    data: dict[str, Any] = {
        "image": _data_url(request, image),
        "mask": _data_url(request, mask),
        "seed": request.seeds[0],
        "output_format": _format(spec, request),
    }
    if request.prompt:
        data["prompt"] = _styled(request)
    return data


def texts_from(output: Any, prediction_id: str) -> tuple[str, ...]:
    """Four prompt suggestions from a caption model's output (a string, or a list of
    strings streamed in pieces): the caption as given, then its subject (the text
    before the first comma) in three renderings, so that each suggestion is a prompt
    one can run. BLIP's ``Caption:`` label is dropped."""
    text = "".join(output) if isinstance(output, list) else output
    if not isinstance(text, str) or not text.strip():
        raise ProviderError(
            f"replicate: prediction {prediction_id} returned no caption: {str(output)[:200]!r}",
            provider_job_id=prediction_id,
        )
    caption = " ".join(text.strip().removeprefix("Caption:").split())
    subject = caption.split(",", 1)[0].strip() or caption
    return (
        caption,
        f"{subject}, photograph, natural light, high detail",
        f"{subject}, digital painting, dramatic lighting",
        f"{subject}, watercolor illustration, soft colours",
    )


def _check_count(request: GenerationRequest, model: str, spec: ModelSpec) -> None:
    if not 1 <= len(request.seeds) <= spec.max_outputs:
        raise PermanentProviderError(
            f"replicate: {model} makes at most {spec.max_outputs} image(s) per prediction, "
            f"{len(request.seeds)} requested"
        )


def _format(spec: ModelSpec, request: GenerationRequest) -> str:
    if request.output_format is OutputFormat.WEBP and not spec.webp:
        return "png"
    return FORMATS[request.output_format]


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


def _source(request: GenerationRequest, data: bytes | None) -> bytes:
    if not data:
        raise PermanentProviderError(f"replicate: {request.action} needs a source image")
    return data


def _data_url(request: GenerationRequest, data: bytes | None) -> str:
    """An image inline. Replicate advises uploading files over 256 KB instead; a data
    URL works for any size and keeps the call self-contained."""
    image = _source(request, data)
    try:
        content_type = decode_image(image, 0, "replicate: input image").content_type
    except ProviderError as error:  # the same bytes will never decode: no retry helps
        raise PermanentProviderError(str(error)) from error
    return f"data:{content_type};base64,{base64.b64encode(image).decode()}"
