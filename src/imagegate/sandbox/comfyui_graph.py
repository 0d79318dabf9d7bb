"""What the ComfyUI emulator knows about node graphs: a small table of core node types,
the server's validation (with its real error shapes) and the execution order. The
nodes themselves run in :mod:`imagegate.sandbox.comfyui_nodes`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imagegate.sandbox.comfyui_nodes import UPSCALE_MODELS

Graph = dict[str, dict[str, Any]]

CHECKPOINTS = ("sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly.safetensors")
MAX_RESOLUTION = 16384
_SEED_MAX = 0xFFFFFFFFFFFFFFFF

# Required inputs of the core nodes the emulator can "run". Anything else is a node
# type this server does not have, as on a real ComfyUI without that custom node.
NODE_INPUTS: dict[str, tuple[str, ...]] = {
    "CheckpointLoaderSimple": ("ckpt_name",),
    "CLIPTextEncode": ("text", "clip"),
    "CLIPSetLastLayer": ("clip", "stop_at_clip_layer"),
    "LoraLoader": ("model", "clip", "lora_name", "strength_model", "strength_clip"),
    "EmptyLatentImage": ("width", "height", "batch_size"),
    "LatentUpscale": ("samples", "upscale_method", "width", "height", "crop"),
    "KSampler": (
        "model", "seed", "steps", "cfg", "sampler_name", "scheduler", "positive",
        "negative", "latent_image", "denoise",
    ),
    "KSamplerAdvanced": (
        "model", "add_noise", "noise_seed", "steps", "cfg", "sampler_name", "scheduler",
        "positive", "negative", "latent_image", "start_at_step", "end_at_step",
        "return_with_leftover_noise",
    ),
    "VAEDecode": ("samples", "vae"),
    "VAEEncode": ("pixels", "vae"),
    "LoadImage": ("image",),
    "LoadImageMask": ("image", "channel"),
    "VAEEncodeForInpaint": ("pixels", "vae", "mask", "grow_mask_by"),
    "SetLatentNoiseMask": ("samples", "mask"),
    "ImagePadForOutpaint": ("image", "left", "top", "right", "bottom", "feathering"),
    "UpscaleModelLoader": ("model_name",),
    "ImageUpscaleWithModel": ("upscale_model", "image"),
    "ImageScale": ("image", "upscale_method", "width", "height", "crop"),
    "ImageScaleBy": ("image", "upscale_method", "scale_by"),
    "ImageCompositeMasked": ("destination", "source", "x", "y", "resize_source"),
    "InvertMask": ("mask",),
    "SaveImage": ("images", "filename_prefix"),
    "PreviewImage": ("images",),
}  # fmt: skip
OUTPUT_NODES = ("SaveImage", "PreviewImage")
# (class, input) → (min, max), as the real nodes declare them.
LIMITS: dict[tuple[str, str], tuple[int, int]] = {
    ("EmptyLatentImage", "width"): (16, MAX_RESOLUTION),
    ("EmptyLatentImage", "height"): (16, MAX_RESOLUTION),
    ("EmptyLatentImage", "batch_size"): (1, 4096),
    ("KSampler", "steps"): (1, 10000),
    ("KSampler", "seed"): (0, _SEED_MAX),
    ("KSamplerAdvanced", "steps"): (1, 10000),
    ("KSamplerAdvanced", "noise_seed"): (0, _SEED_MAX),
    ("ImageScale", "width"): (0, MAX_RESOLUTION),
    ("ImageScale", "height"): (0, MAX_RESOLUTION),
    ("VAEEncodeForInpaint", "grow_mask_by"): (0, 64),
    **{("ImagePadForOutpaint", side): (0, MAX_RESOLUTION)
       for side in ("left", "top", "right", "bottom", "feathering")},
}  # fmt: skip
# (class, input) → the values a list input accepts.
CHOICES: dict[tuple[str, str], tuple[str, ...]] = {
    ("CheckpointLoaderSimple", "ckpt_name"): CHECKPOINTS,
    ("UpscaleModelLoader", "model_name"): UPSCALE_MODELS,
    ("ImageScale", "upscale_method"): ("nearest-exact", "bilinear", "area", "bicubic", "lanczos"),
    ("ImageScale", "crop"): ("disabled", "center"),
    ("LoadImageMask", "channel"): ("alpha", "red", "green", "blue"),
}


def error(kind: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[1], int)


def validate(
    graph: Any, has_input: Callable[[str], bool] = lambda _: True
) -> tuple[dict[str, Any] | None, dict[str, Any], list[str]]:
    """``(error, node_errors, outputs)`` as ComfyUI's ``validate_prompt`` has them;
    ``error`` is ``None`` for a graph it would queue. ``has_input`` says whether a
    file is in the input folder (LoadImage checks its file before the prompt runs)."""
    if not isinstance(graph, dict):
        return error("invalid_prompt", "Prompt is not a node graph"), {}, []
    outputs: list[str] = []
    for node_id, node in graph.items():
        if not isinstance(node, dict) or "class_type" not in node:
            message = "Cannot execute because a node is missing the class_type property."
            return error("invalid_prompt", message, f"Node ID '#{node_id}'"), {}, []
        if node["class_type"] not in NODE_INPUTS:
            message = f"Cannot execute because node {node['class_type']} does not exist."
            return error("invalid_prompt", message, f"Node ID '#{node_id}'"), {}, []
        if node["class_type"] in OUTPUT_NODES:
            outputs.append(node_id)
    if not outputs:
        return error("prompt_no_outputs", "Prompt has no outputs"), {}, []
    node_errors: dict[str, Any] = {}
    for output in outputs:
        for node_id in execution_order(graph, [output]):
            reasons = _node_problems(graph, node_id, has_input)
            if reasons:
                kind = graph[node_id]["class_type"]
                entry = node_errors.setdefault(
                    node_id, {"errors": reasons, "dependent_outputs": [], "class_type": kind}
                )
                entry["dependent_outputs"].append(output)
    if node_errors:
        details = "\n".join(
            f"{reason['message']}: {reason['details']}"
            for entry in node_errors.values()
            for reason in entry["errors"]
        )
        failed = error(
            "prompt_outputs_failed_validation", "Prompt outputs failed validation", details
        )
        return failed, node_errors, []
    return None, {}, outputs


def _node_problems(
    graph: Graph, node_id: str, has_input: Callable[[str], bool]
) -> list[dict[str, Any]]:
    node = graph[node_id]
    inputs = node.get("inputs", {})
    kind = node["class_type"]
    problems = []
    for name in NODE_INPUTS[kind]:
        if name not in inputs:
            problems.append(
                error("required_input_missing", "Required input is missing", name, input_name=name)
            )
    for name, value in inputs.items():
        if is_link(value) and str(value[0]) not in graph:
            # The real server fails looking the node up, and reports the KeyError.
            problems.append(
                error("exception_during_validation", "Exception when validating node",
                      repr(str(value[0])), exception_type="KeyError", traceback=[])
            )  # fmt: skip
        elif (kind, name) in LIMITS and isinstance(value, int):
            problems.extend(_out_of_range(kind, name, value))
    for (owner, name), allowed in CHOICES.items():
        value = inputs.get(name)
        if owner == kind and isinstance(value, str) and value not in allowed:
            problems.append(
                error("value_not_in_list", "Value not in list",
                      f"{name}: '{value}' not in {list(allowed)}",
                      input_name=name, received_value=value)
            )  # fmt: skip
    image = inputs.get("image")
    if kind in ("LoadImage", "LoadImageMask") and isinstance(image, str) and not has_input(image):
        problems.append(
            error("custom_validation_failed", "Custom validation failed for node",
                  f"image - Invalid image file: {image}", input_name="image")
        )  # fmt: skip
    return problems


def _out_of_range(kind: str, name: str, value: int) -> list[dict[str, Any]]:
    low, high = LIMITS[kind, name]
    if value < low:
        message, code = f"Value {value} smaller than min of {low}", "value_smaller_than_min"
    elif value > high:
        message, code = f"Value {value} bigger than max of {high}", "value_bigger_than_max"
    else:
        return []
    return [error(code, message, name, input_name=name, received_value=value)]


def execution_order(graph: Graph, outputs: list[str]) -> list[str]:
    """Every node the outputs need, each after the nodes it reads from."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen or node_id not in graph:
            return
        seen.add(node_id)
        for value in graph[node_id].get("inputs", {}).values():
            if is_link(value):
                visit(str(value[0]))
        order.append(node_id)

    for output in outputs:
        visit(output)
    return order


def sampler_steps(graph: Graph, node_id: str) -> int:
    """How many ``progress`` messages a node sends: its steps if it samples, else none."""
    inputs = graph[node_id].get("inputs", {})
    if "seed" in inputs or "noise_seed" in inputs:
        return max(1, min(int(inputs.get("steps", 20)), 200))
    return 0


def prompt_text(graph: Any) -> str:
    """Every string input of the graph: where the emulator looks for ``sandbox:`` markers."""
    if not isinstance(graph, dict):
        return ""
    return " ".join(
        value
        for node in graph.values()
        if isinstance(node, dict)
        for value in node.get("inputs", {}).values()
        if isinstance(value, str)
    )
