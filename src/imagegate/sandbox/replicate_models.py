"""The models the Replicate emulator can run: their addresses, the inputs each one
accepts (checked the way Replicate checks a model's input schema), and the images an
input asks for.

Three image models and one upscaler, chosen because they are the ones most
integrations start with: ``black-forest-labs/flux-schnell`` and ``flux-dev`` (official
models, addressed without a version), ``stability-ai/sdxl`` and
``nightmareai/real-esrgan`` (community models, addressed with a version id); and for
the follow-up actions ``black-forest-labs/flux-fill-pro`` (inpainting, official; its
version id here is the emulator's own) and two captioners, ``methexis-inc/img2prompt``
and ``salesforce/blip``. What each does to pixels is in
:mod:`imagegate.sandbox.replicate_outputs`."""

from __future__ import annotations

import base64
import binascii
import io
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

# Width and height FLUX renders for each aspect ratio at one megapixel (the table the
# cog-flux predictor uses); at "0.25" megapixels both sides are halved.
FLUX_SIZES = {
    "1:1": (1024, 1024),
    "16:9": (1344, 768),
    "21:9": (1536, 640),
    "3:2": (1216, 832),
    "2:3": (832, 1216),
    "4:5": (896, 1088),
    "5:4": (1088, 896),
    "3:4": (896, 1152),
    "4:3": (1152, 896),
    "9:16": (768, 1344),
    "9:21": (640, 1536),
}
# Past this the emulated GPU "runs out of memory", as a real one would.
MAX_OUTPUT_PIXELS = 4096 * 4096


@dataclass(frozen=True)
class Num:
    low: float
    high: float
    integer: bool = True


@dataclass(frozen=True)
class OneOf:
    values: tuple[str, ...]


@dataclass(frozen=True)
class Text:
    pass


@dataclass(frozen=True)
class Flag:
    pass


Rule = Num | OneOf | Text | Flag


@dataclass(frozen=True)
class CatalogModel:
    """One model: its kind (how it draws), version id, and input schema."""

    owner_name: str
    kind: str  # "flux", "sdxl", "esrgan", "fill" or "caption"
    version: str
    official: bool
    steps: int
    inputs: dict[str, Rule] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    defaults: dict[str, Any] = field(default_factory=dict)


# FLUX Fill pro's own outpainting presets (the adapter sends a padded canvas instead).
OUTPAINT = ("None", "Zoom out 1.5x", "Zoom out 2x", "Make square", "Left outpaint",
            "Right outpaint", "Top outpaint", "Bottom outpaint")  # fmt: skip
# Kinds whose output is one file URL, not a list; captioners answer a string.
SINGLE_FILE = ("esrgan", "fill")

_FLUX_INPUTS: dict[str, Rule] = {
    "prompt": Text(),
    "aspect_ratio": OneOf(tuple(FLUX_SIZES)),
    "num_outputs": Num(1, 4),
    "output_format": OneOf(("webp", "jpg", "png")),
    "output_quality": Num(0, 100),
    "megapixels": OneOf(("1", "0.25")),
    "seed": Num(-(2**31), 2**32),
    "go_fast": Flag(),
    "disable_safety_checker": Flag(),
}
_FLUX_DEFAULTS = {
    "aspect_ratio": "1:1",
    "num_outputs": 1,
    "output_format": "webp",
    "megapixels": "1",
}

CATALOG: dict[str, CatalogModel] = {
    model.owner_name: model
    for model in (
        CatalogModel(
            "black-forest-labs/flux-schnell",
            "flux",
            "c846a69991daf4c0e5d016514849d14ee5b2e6846ce6b9d6f21369e564cfe51e",
            official=True,
            steps=4,
            inputs={**_FLUX_INPUTS, "num_inference_steps": Num(1, 4)},
            required=("prompt",),
            defaults=_FLUX_DEFAULTS,
        ),
        CatalogModel(
            "black-forest-labs/flux-dev",
            "flux",
            "6e4a938f85952bdabcc15aa329178c4d681c52bf25a0342403287dc26944661d",
            official=True,
            steps=28,
            inputs={
                **_FLUX_INPUTS,
                "num_inference_steps": Num(1, 50),
                "guidance": Num(0, 10, integer=False),
                "image": Text(),
                "prompt_strength": Num(0, 1, integer=False),
            },
            required=("prompt",),
            defaults={**_FLUX_DEFAULTS, "prompt_strength": 0.8},
        ),
        CatalogModel(
            "stability-ai/sdxl",
            "sdxl",
            "39ed52f2a78e934b3ba6e2a89f5b1c712de7dfea535525255b1aa35c5565e08b",
            official=False,
            steps=50,
            inputs={
                "prompt": Text(),
                "negative_prompt": Text(),
                "width": Num(1, 4096),
                "height": Num(1, 4096),
                "num_outputs": Num(1, 4),
                "seed": Num(-(2**31), 2**32),
                "num_inference_steps": Num(1, 500),
                "guidance_scale": Num(1, 50, integer=False),
                "image": Text(),
                "prompt_strength": Num(0, 1, integer=False),
                "disable_safety_checker": Flag(),
            },
            defaults={
                "prompt": "An astronaut riding a rainbow unicorn",
                "width": 1024,
                "height": 1024,
                "num_outputs": 1,
                "prompt_strength": 0.8,
            },
        ),
        CatalogModel(
            "nightmareai/real-esrgan",
            "esrgan",
            "f121d640bd286e1fdc67f9799164c1d5be36ff74576ee11c803ae5b665dd46aa",
            official=False,
            steps=1,
            inputs={"image": Text(), "scale": Num(0, 10, integer=False), "face_enhance": Flag()},
            required=("image",),
            defaults={"scale": 4},
        ),
        CatalogModel(
            "black-forest-labs/flux-fill-pro",
            "fill",
            "23fa65f02bb829790a1d91c49acfd7e1fd52d442ddb5e4840b9a0c4dd2a9309a",
            official=True,
            steps=50,
            inputs={
                "prompt": Text(),
                "image": Text(),
                "mask": Text(),
                "seed": Num(-(2**31), 2**32),
                "steps": Num(15, 50),
                "guidance": Num(1.5, 100, integer=False),
                "outpaint": OneOf(OUTPAINT),
                "output_format": OneOf(("jpg", "png")),
                "safety_tolerance": Num(1, 6),
                "prompt_upsampling": Flag(),
            },
            required=("image",),
            defaults={
                "steps": 50,
                "guidance": 60,
                "outpaint": "None",
                "output_format": "jpg",
                "safety_tolerance": 2,
                "prompt_upsampling": False,
            },
        ),
        CatalogModel(
            "methexis-inc/img2prompt",
            "caption",
            "50adaf2d3ad20a6f911a8a9e3ccf777b263b8596fbd2c8fc26e8888f8a0edbb5",
            official=False,
            steps=1,
            inputs={"image": Text()},
            required=("image",),
        ),
        CatalogModel(
            "salesforce/blip",
            "caption",
            "2e1dddc8621f72155f24cf2e0adbde548458d3cab9f00c0139eea840d0ac4746",
            official=False,
            steps=1,
            inputs={
                "image": Text(),
                "task": OneOf(
                    ("image_captioning", "image_text_matching", "visual_question_answering")
                ),
                "question": Text(),
                "caption": Text(),
            },
            required=("image",),
            defaults={"task": "image_captioning"},
        ),
    )
}


def find_version(version: str) -> CatalogModel | None:
    """The model a ``version`` field names: ``owner/name:id``, a bare version id, or
    ``owner/name`` for an official model."""
    name, _, version_id = version.partition(":")
    if version_id:
        model = CATALOG.get(name)
        return model if model and model.version == version_id else None
    if "/" in name:
        model = CATALOG.get(name)
        return model if model and model.official else None
    return next((m for m in CATALOG.values() if m.version == name), None)


def invalid_fields(model: CatalogModel, data: dict[str, Any]) -> list[dict[str, str]]:
    """What is wrong with ``data`` for ``model``, as Replicate lists it (empty: valid).
    Inputs the schema does not know are ignored, as Replicate does."""
    problems = [
        {"type": "required", "field": "input", "description": f"{name} is required"}
        for name in model.required
        if name not in data
    ]
    for name, value in data.items():
        rule = model.inputs.get(name)
        problem = _check(rule, value) if rule is not None else None
        if problem:
            kind, description = problem
            problems.append({"type": kind, "field": f"input.{name}", "description": description})
    return problems


def _check(rule: Rule, value: Any) -> tuple[str, str] | None:
    if isinstance(rule, Text):
        return None if isinstance(value, str) else _wrong_type("string", value)
    if isinstance(rule, Flag):
        return None if isinstance(value, bool) else _wrong_type("boolean", value)
    if isinstance(rule, OneOf):
        if value in rule.values:
            return None
        listed = ", ".join(f'"{v}"' for v in rule.values)
        return "enum", f"Must be one of the following: {listed}"
    return _check_number(rule, value)


def _check_number(rule: Num, value: Any) -> tuple[str, str] | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _wrong_type("integer" if rule.integer else "number", value)
    if rule.integer and value != int(value):
        return _wrong_type("integer", value)
    if value < rule.low:
        return "number_gte", f"Must be greater than or equal to {rule.low:g}"
    if value > rule.high:
        return "number_lte", f"Must be less than or equal to {rule.high:g}"
    return None


def _wrong_type(expected: str, value: Any) -> tuple[str, str]:
    given = {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        type(value), "object"
    )
    return "invalid_type", f"Invalid type. Expected: {expected}, given: {given}"


def decode_file(value: str) -> Image.Image:
    """A ``data:`` URL input as an image (the emulator cannot fetch http URLs)."""
    if not value.startswith("data:") or "," not in value:
        raise ValueError("the emulator accepts file inputs as data URLs only")
    try:
        data = base64.b64decode(value.split(",", 1)[1], validate=True)
        image = Image.open(io.BytesIO(data))
        image.load()
    except (binascii.Error, OSError) as error:
        raise ValueError(f"cannot identify image file ({error})") from error
    return image


def output_plan(model: CatalogModel, data: dict[str, Any]) -> tuple[int, int, int, str]:
    """(width, height, count, extension) of what ``data`` asks ``model`` for; raises
    ValueError with the error text the real predictor fails with."""
    if model.kind == "esrgan":
        width, height = decode_file(data["image"]).size
        scale = float(data["scale"])
        width, height = max(1, round(width * scale)), max(1, round(height * scale))
        return _fits(width, height), height, 1, "png"
    if model.kind == "fill":
        width, height = decode_file(data["image"]).size
        return _fits(width, height), height, 1, str(data["output_format"])
    count = int(data["num_outputs"])
    if "image" in data:
        width, height = decode_file(data["image"]).size
    elif model.kind == "flux":
        width, height = FLUX_SIZES[data["aspect_ratio"]]
        if data["megapixels"] == "0.25":
            width, height = width // 32 * 16, height // 32 * 16
    else:
        width, height = int(data["width"]), int(data["height"])
        if width % 8 or height % 8:
            raise ValueError(
                f"`height` and `width` have to be divisible by 8 but are {height} and {width}."
            )
    extension = data.get("output_format", "png") if model.kind == "flux" else "png"
    return _fits(width, height), height, count, extension


def _fits(width: int, height: int) -> int:
    if width * height > MAX_OUTPUT_PIXELS:
        raise ValueError("CUDA out of memory. Tried to allocate 9.00 GiB")
    return width


def openapi_schema(model: CatalogModel) -> dict[str, Any]:
    """The part of a version's ``openapi_schema`` that clients read: the ``Input`` and
    ``Output`` schemas Cog writes (the replicate client looks at ``Output`` to decide
    whether a model streams, so it must be there and be an object)."""
    properties = {name: _rule_schema(rule) for name, rule in model.inputs.items()}
    for name, value in model.defaults.items():
        if name in properties:
            properties[name]["default"] = value
    uri = {"type": "string", "format": "uri"}
    output = uri if model.kind in SINGLE_FILE else {"type": "array", "items": uri}
    if model.kind == "caption":
        output = {"type": "string"}
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": {},
        "components": {
            "schemas": {
                "Input": {"type": "object", "title": "Input", "properties": properties,
                          "required": list(model.required)},
                "Output": {"title": "Output", **output},
            }
        },
    }  # fmt: skip


def _rule_schema(rule: Rule) -> dict[str, Any]:
    if isinstance(rule, Text):
        return {"type": "string"}
    if isinstance(rule, Flag):
        return {"type": "boolean"}
    if isinstance(rule, OneOf):
        return {"type": "string", "enum": list(rule.values)}
    kind = "integer" if rule.integer else "number"
    return {"type": kind, "minimum": rule.low, "maximum": rule.high}
