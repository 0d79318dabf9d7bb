"""What the emulated OpenAI Images API accepts: its models and their sizes, qualities,
``n`` and parameters, the checks it makes on a request (JSON or multipart), and its
``{"error": {message, type, param, code}}`` envelope."""

from __future__ import annotations

import email.parser
import email.policy
import io
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from PIL import Image

from imagegate.domain.params import OutputFormat


@dataclass(frozen=True)
class Model:
    """What one model accepts."""

    sizes: tuple[str, ...]
    qualities: tuple[str, ...]
    max_n: int
    max_prompt: int
    # gpt-image-1 always answers in b64_json and takes output_format/background.
    gpt: bool
    edits: bool
    variations: bool = False


MODELS = {
    "gpt-image-1": Model(
        ("auto", "1024x1024", "1536x1024", "1024x1536"), ("auto", "low", "medium", "high"),
        max_n=10, max_prompt=32000, gpt=True, edits=True,
    ),
    "dall-e-3": Model(
        ("1024x1024", "1792x1024", "1024x1792"), ("standard", "hd"),
        max_n=1, max_prompt=4000, gpt=False, edits=False,
    ),
    "dall-e-2": Model(
        ("256x256", "512x512", "1024x1024"), ("standard",),
        max_n=10, max_prompt=1000, gpt=False, edits=True, variations=True,
    ),
}  # fmt: skip
_GPT_PARAMS = {"output_format", "output_compression", "background", "moderation"}
_PARAMS = {
    ("generations", True): {"prompt", "model", "n", "size", "quality", "user", *_GPT_PARAMS},
    ("generations", False): {"prompt", "model", "n", "size", "quality", "response_format",
                             "style", "user"},
    ("edits", True): {"prompt", "model", "n", "size", "quality", "user", "input_fidelity",
                      *_GPT_PARAMS},
    ("edits", False): {"prompt", "model", "n", "size", "quality", "response_format", "user"},
    ("variations", False): {"model", "n", "size", "response_format", "user"},
}  # fmt: skip


class OpenAIError(Exception):
    """An answer in OpenAI's error envelope."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        error = {"message": message, "type": kind, "param": param, "code": code}
        self.body = {"error": {**error, **(extra or {})}}


@dataclass(frozen=True)
class Job:
    model: str
    prompt: str
    n: int
    size: str
    quality: str
    response_format: str
    output_format: OutputFormat

    @property
    def dimensions(self) -> tuple[int, int]:
        width, _, height = ("1024x1024" if self.size == "auto" else self.size).partition("x")
        return int(width), int(height)


def parse(fields: dict[str, Any], endpoint: str) -> Job:
    name = fields.get("model") or "dall-e-2"
    model = MODELS.get(name) if isinstance(name, str) else None
    usable = [m for m, spec in MODELS.items() if endpoint == "generations" or (
        spec.edits if endpoint == "edits" else spec.variations)]  # fmt: skip
    if model is None or name not in usable:
        raise _invalid("model", name, usable)
    for key in fields:
        if key not in _PARAMS[(endpoint, model.gpt)]:
            raise OpenAIError(400, f"Unknown parameter: '{key}'.", param=key,
                              code="unknown_parameter")  # fmt: skip
    # Variations take no prompt; the emulator draws them from a fixed one.
    prompt = "a variation" if endpoint == "variations" else fields.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise OpenAIError(400, "Missing required parameter: 'prompt'.", param="prompt",
                          code="missing_required_parameter")  # fmt: skip
    if len(prompt) > model.max_prompt:
        raise OpenAIError(
            400, f"Invalid 'prompt': string too long. Expected a string with maximum length "
            f"{model.max_prompt}, but got a string with length {len(prompt)} instead.",
            param="prompt", code="string_above_max_length",
        )  # fmt: skip
    n = _count(fields.get("n", 1))
    if n > model.max_n:
        raise OpenAIError(400, "You must provide n=1 for this model.", param="n")
    size = fields.get("size") or ("auto" if model.gpt else "1024x1024")
    if size not in model.sizes:
        raise _invalid("size", size, model.sizes)
    quality = fields.get("quality") or model.qualities[0]
    if quality not in model.qualities:
        raise _invalid("quality", quality, model.qualities)
    response_format = "b64_json" if model.gpt else fields.get("response_format") or "url"
    if response_format not in ("url", "b64_json"):
        raise _invalid("response_format", response_format, ("url", "b64_json"))
    output_format = fields.get("output_format") or "png"
    if output_format not in OutputFormat._value2member_map_:
        raise _invalid("output_format", output_format, [f.value for f in OutputFormat])
    return Job(name, prompt, n, size, quality, response_format, OutputFormat(output_format))


def _count(value: Any) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise OpenAIError(400, f"Invalid type for 'n': expected an integer, but got {value!r}.",
                          param="n", code="invalid_type") from None  # fmt: skip
    if not 1 <= n <= 10:
        below = n < 1
        raise OpenAIError(
            400, f"Invalid 'n': integer {'below minimum' if below else 'above maximum'} value. "
            f"Expected a value between 1 and 10, but got {n} instead.", param="n",
            code="integer_below_min_value" if below else "integer_above_max_value",
        )  # fmt: skip
    return n


def _invalid(param: str, value: Any, supported: Any) -> OpenAIError:
    choices = ", ".join(f"'{s}'" for s in supported)
    return OpenAIError(400, f"Invalid value: '{value}'. Supported values are: {choices}.",
                       param=param, code="invalid_value")  # fmt: skip


async def read_form(request: Request) -> tuple[dict[str, str], dict[str, list[bytes]]]:
    """A multipart body's fields and files (``image[]`` counts as ``image``), read with
    the standard library's MIME parser."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise OpenAIError(400, f"Invalid Content-Type header ({content_type}), expected "
                          "multipart/form-data.")  # fmt: skip
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        head + await request.body()
    )
    fields: dict[str, str] = {}
    files: dict[str, list[bytes]] = {}
    for part in message.iter_parts():
        name = str(part.get_param("name", "", header="content-disposition"))
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if part.get_filename() is not None:
            files.setdefault(name.removesuffix("[]"), []).append(data)
        else:
            fields[name] = data.decode("utf-8", "replace")
    return fields, files


# What the API documents for edit inputs: gpt-image-1 takes up to 16 PNG, JPEG or WebP
# images under 50 MB; dall-e-2 one square PNG under 4 MB; a mask is a PNG under 4 MB
# with an alpha channel, of the (first) image's size.
MAX_GPT_IMAGES = 16
MAX_GPT_IMAGE_BYTES = 50 * 1024 * 1024
MAX_PNG_BYTES = 4 * 1024 * 1024
_GPT_FORMATS = ("PNG", "JPEG", "WEBP")


@dataclass(frozen=True)
class Inputs:
    """The decoded images of an edit or variation (RGBA), and the mask's alpha."""

    images: tuple[Image.Image, ...]
    mask: Image.Image | None = None


def edit_inputs(job: Job, files: dict[str, list[bytes]], endpoint: str) -> Inputs:
    """The ``image`` (and ``mask``) files of an edit or variation, checked as the API
    checks them."""
    if "image" not in files:
        raise OpenAIError(400, "Missing required parameter: 'image'.", param="image",
                          code="missing_required_parameter")  # fmt: skip
    gpt = MODELS[job.model].gpt
    given = files["image"]
    limit = MAX_GPT_IMAGES if gpt else 1
    if len(given) > limit:
        raise OpenAIError(
            400, f"Invalid 'image': array too long. Expected an array with maximum length "
            f"{limit}, but got an array with length {len(given)} instead.", param="image",
            code="array_above_max_length",
        )  # fmt: skip
    images = tuple(_image(data, index, gpt) for index, data in enumerate(given, start=1))
    mask = _mask(files["mask"][0], images[0].size) if files.get("mask") else None
    if endpoint == "edits" and not gpt and mask is None and _opaque(images[0]):
        # dall-e-2 reads the area to paint from the image's own transparency then.
        raise OpenAIError(400, "Invalid input image - format must be in ['RGBA', 'LA', 'L'], "
                          "got RGB.", param="image", code="invalid_image_format")  # fmt: skip
    return Inputs(images, mask)


def _image(data: bytes, index: int, gpt: bool) -> Image.Image:
    image = _decoded(data, "image", index)
    if gpt:
        if image.format not in _GPT_FORMATS or len(data) > MAX_GPT_IMAGE_BYTES:
            raise OpenAIError(
                400, f"Invalid image file or mode for image {index}, please check your image "
                "file.", param="image", code="invalid_image_file",
            )  # fmt: skip
    elif image.format != "PNG" or len(data) > MAX_PNG_BYTES:
        raise OpenAIError(400, "Uploaded image must be a PNG and less than 4 MB.",
                          param="image", code="invalid_image_format")  # fmt: skip
    elif image.width != image.height:
        raise OpenAIError(400, "Uploaded image must be square.", param="image",
                          code="invalid_image_format")  # fmt: skip
    return image


def _mask(data: bytes, size: tuple[int, int]) -> Image.Image:
    mask = _decoded(data, "mask", 1)
    if mask.format != "PNG" or len(data) > MAX_PNG_BYTES:
        raise OpenAIError(400, "Invalid mask image format - mask must be a PNG and less than "
                          "4 MB.", param="mask", code="invalid_image_format")  # fmt: skip
    if _opaque(mask):
        raise OpenAIError(400, "Invalid mask image format - mask must have an alpha channel.",
                          param="mask", code="invalid_image_format")  # fmt: skip
    if mask.size != size:
        raise OpenAIError(
            400, "Invalid mask image format - mask size does not match image size. Mask is "
            f"{mask.width}x{mask.height}, image is {size[0]}x{size[1]}.", param="mask",
            code="invalid_image_format",
        )  # fmt: skip
    return mask


def _decoded(data: bytes, param: str, index: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
        image.load()
    except Exception:
        raise OpenAIError(
            400, f"Invalid image file or mode for {param} {index}, please check your image "
            "file.", param=param, code="invalid_image_file",
        ) from None  # fmt: skip
    return image


def _opaque(image: Image.Image) -> bool:
    return image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info
