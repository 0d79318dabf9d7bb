"""The ComfyUI adapter's workflow actions: a template per action (packaged in
``comfyui_workflows/``, each replaceable by ``options.workflows``), the values each
request writes into it, and the images it uploads first (``POST /upload/image``).

What each template gets: the uploaded source's file name (``imagegate.image``), the
exact output size (``imagegate.scale``), and by action: ``denoise`` = the strength
(img2img, variation); the uploaded mask (vary_region); the source's box size and the
canvas padding (zoom_out, pan: ``Canvas.padding()`` as ImagePadForOutpaint's left,
top, right, bottom); the upscaled size before the refining pass (creative upscale)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from imagegate.domain.actions import UpscaleMode
from imagegate.providers.base import Action, GenerationRequest
from imagegate.providers.comfyui_workflows import Filled, Template, TemplateError
from imagegate.providers.errors import PermanentProviderError, ProviderError
from imagegate.providers.http import call, decode_image, error_for, json_body, snippet

DEFAULT_STRENGTH = 0.6
# The templates besides imagine's, by name: each action's, and the creative upscale.
KINDS = ("img2img", "variation", "vary_region", "zoom_out", "pan", "upscale", "upscale_creative")
ACTIONS = (Action.IMG2IMG, Action.VARIATION, Action.UPSCALE, Action.ZOOM_OUT, Action.PAN,
           Action.VARY_REGION)  # fmt: skip
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


@dataclass(frozen=True)
class Upload:
    """An input image to upload before the prompt is queued, and the node that loads it."""

    node: str
    filename: str
    data: bytes
    content_type: str


def load_templates(workflows: Mapping[str, str]) -> dict[str, Template]:
    """The action templates: the packaged ones, ``workflows[kind]`` (a path) over
    them, none for a kind set to ``""``."""
    unknown = set(workflows) - set(KINDS)
    if unknown:
        raise TemplateError(f"options.workflows: unknown {sorted(unknown)}; use {list(KINDS)}")
    return {
        kind: Template.load(workflows.get(kind), None, kind)
        for kind in KINDS
        if workflows.get(kind, None) != ""
    }


def template_kind(request: GenerationRequest) -> str:
    if request.action is Action.UPSCALE and request.upscale_mode is UpscaleMode.CREATIVE:
        return "upscale_creative"
    return str(request.action)


def fill(
    template: Template,
    request: GenerationRequest,
    *,
    prompt: str,
    steps: int | None,
    checkpoint: str | None,
) -> tuple[Filled, list[Upload]]:
    """The graph for an action and the uploads it reads."""
    if not request.source_image:
        raise PermanentProviderError(f"comfyui: {request.action} needs a source image")
    source = _upload(template, "image", request.source_image, "source")
    uploads = [source]
    inputs: dict[tuple[str, str], Any] = {("image", "image"): source.filename}
    if request.action in (Action.IMG2IMG, Action.VARIATION):
        strength = DEFAULT_STRENGTH if request.strength is None else request.strength
        inputs["sampler", "denoise"] = strength
    elif request.action is Action.VARY_REGION:
        if not request.mask:
            raise PermanentProviderError("comfyui: vary_region needs a mask")
        mask = _upload(template, "mask", request.mask, "mask")
        uploads.append(mask)
        inputs["mask", "image"] = mask.filename
    elif request.action in (Action.ZOOM_OUT, Action.PAN):
        if request.canvas is None:
            raise PermanentProviderError(f"comfyui: {request.action} needs a canvas")
        box = request.canvas.source
        inputs["source_scale", "width"], inputs["source_scale", "height"] = box.width, box.height
        for side, pixels in zip(
            ("left", "top", "right", "bottom"), request.canvas.padding(), strict=True
        ):
            inputs["pad", side] = pixels
    elif request.action is Action.UPSCALE:
        inputs["resize", "width"], inputs["resize", "height"] = request.width, request.height
    # An upscale makes one image whatever the seeds; the others one per seed.
    one = request.action is Action.UPSCALE or not template.has("sampler")
    seeds = request.seeds[:1] if one else request.seeds
    filled = template.fill(
        prompt=prompt, negative=request.negative_prompt, width=request.width,
        height=request.height, seeds=seeds, steps=steps, checkpoint=checkpoint, inputs=inputs,
    )  # fmt: skip
    return filled, uploads


async def upload_all(
    client: httpx.AsyncClient, uploads: list[Upload], graph: dict[str, Any]
) -> None:
    """``POST /upload/image`` each input (``type=input``, ``overwrite=true``) and
    point its loader at the name the server stored it under."""
    for item in uploads:
        what = f"comfyui upload {item.filename}"
        response = await call(
            client, "POST", "/upload/image", what,
            files={"image": (item.filename, item.data, item.content_type)},
            data={"overwrite": "true", "type": "input"},
        )  # fmt: skip
        if response.status_code != 200:
            raise error_for(response, what)
        stored = json_body(response, what)
        name = stored.get("name") if isinstance(stored, dict) else None
        if not isinstance(name, str) or not name:
            raise ProviderError(f"{what}: no file name in {snippet(response)!r}")
        subfolder = stored.get("subfolder") or ""
        graph[item.node]["inputs"]["image"] = f"{subfolder}/{name}" if subfolder else name


def _upload(template: Template, role: str, data: bytes, label: str) -> Upload:
    try:
        content_type = decode_image(data, 0, f"comfyui: the {label} image").content_type
    except ProviderError as error:  # the same bytes will never decode: no retry helps
        raise PermanentProviderError(str(error)) from error
    extension = _EXTENSIONS.get(content_type, "png")
    name = f"imagegate-{uuid.uuid4().hex}-{label}.{extension}"
    return Upload(template.nodes[role], name, data, content_type)
