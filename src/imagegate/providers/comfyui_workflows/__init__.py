"""ComfyUI workflow templates ("API format" node graphs) and how imagegate fills them in.

A template marks the nodes imagegate writes to by their ``_meta.title`` (which
ComfyUI ignores when it runs a graph), or a config mapping names them by id:

- ``imagegate.prompt``: the positive text encoder (input ``text``);
- ``imagegate.negative``: the negative text encoder (optional);
- ``imagegate.latent``: the empty latent (``width``, ``height``, ``batch_size``);
- ``imagegate.sampler``: the node holding the seed (``seed`` or ``noise_seed``, and
  ``steps`` when it has them);
- ``imagegate.save``: the output node whose images are the result;
- ``imagegate.checkpoint``: the checkpoint loader (``ckpt_name``; optional);

and, in the templates of the workflow actions:

- ``imagegate.image``: the ``LoadImage`` of the uploaded source (input ``image``);
- ``imagegate.mask``: the ``LoadImageMask`` of the uploaded mask (``vary_region``);
- ``imagegate.source_scale``: the ``ImageScale`` that sizes the source to its box on
  the canvas, and ``imagegate.pad``: the ``ImagePadForOutpaint`` (``left``, ``top``,
  ``right``, ``bottom``) (``zoom_out``, ``pan``);
- ``imagegate.upscale_model``: the ``UpscaleModelLoader`` (``upscale``);
- ``imagegate.resize``: an ``ImageScale`` to the upscaled size before a refining pass
  (``upscale_creative``);
- ``imagegate.scale``: the last ``ImageScale``, to exactly the size asked for.

Beside this file: ``txt2img.json`` (imagine), ``img2img.json`` (img2img and variation:
LoadImage → VAEEncode → KSampler with ``denoise`` = strength), ``vary_region.json``
(LoadImage + LoadImageMask → SetLatentNoiseMask, the unmasked pixels composited back),
``outpaint.json`` (zoom_out and pan: ImagePadForOutpaint → VAEEncodeForInpaint),
``upscale.json`` (UpscaleModelLoader + ImageUpscaleWithModel → ImageScale) and
``upscale_creative.json`` (the same, then a KSampler pass at denoise 0.35).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

Graph = dict[str, dict[str, Any]]

ROLES = ("prompt", "negative", "latent", "sampler", "save", "checkpoint", "image", "mask",
         "source_scale", "pad", "upscale_model", "resize", "scale")  # fmt: skip
REQUIRED_ROLES = ("prompt", "latent", "sampler", "save")
# The roles each template must mark, by the template's name (an action, or
# ``upscale_creative``), and the packaged file of each.
TEMPLATE_ROLES: dict[str, tuple[str, ...]] = {
    "imagine": REQUIRED_ROLES,
    "img2img": ("image", "prompt", "sampler", "save", "scale"),
    "variation": ("image", "prompt", "sampler", "save", "scale"),
    "vary_region": ("image", "mask", "prompt", "sampler", "save", "scale"),
    "zoom_out": ("image", "source_scale", "pad", "prompt", "sampler", "save", "scale"),
    "pan": ("image", "source_scale", "pad", "prompt", "sampler", "save", "scale"),
    "upscale": ("image", "save", "scale"),
    "upscale_creative": ("image", "resize", "prompt", "sampler", "save", "scale"),
}
PACKAGED = {
    "imagine": "txt2img.json", "img2img": "img2img.json", "variation": "img2img.json",
    "vary_region": "vary_region.json", "zoom_out": "outpaint.json", "pan": "outpaint.json",
    "upscale": "upscale.json", "upscale_creative": "upscale_creative.json",
}  # fmt: skip
TITLE_PREFIX = "imagegate."
SEED_INPUTS = ("seed", "noise_seed")


class TemplateError(ValueError):
    """The workflow template cannot be used: unreadable, or a required node is unmarked."""


@dataclass(frozen=True)
class Filled:
    """A graph ready for ``POST /prompt``, and the output node of each seed, in order."""

    graph: Graph
    save_nodes: tuple[str, ...]


@dataclass(frozen=True)
class Template:
    graph: Graph
    nodes: dict[str, str]  # role → node id

    @classmethod
    def load(
        cls, path: str | None = None, mapping: dict[str, str] | None = None, kind: str = "imagine"
    ) -> Template:
        """The template for ``kind`` (a key of ``TEMPLATE_ROLES``) at ``path`` (the
        packaged one when ``None``), its roles found by title, ``mapping`` (role → node
        id) taking precedence."""
        name = path or PACKAGED[kind]
        try:
            if path is None:
                text = resources.files(__name__).joinpath(PACKAGED[kind]).read_text()
            else:
                text = Path(path).expanduser().read_text()
            graph = json.loads(text)
        except (OSError, ValueError) as error:
            raise TemplateError(f"workflow {name}: {error}") from error
        if not isinstance(graph, dict) or not all(
            isinstance(node, dict) and "class_type" in node for node in graph.values()
        ):
            raise TemplateError(
                f"workflow {path}: not an API-format graph (export it with 'Save (API)')"
            )
        nodes = {**_titled(graph), **(mapping or {})}
        unknown = set(nodes) - set(ROLES)
        if unknown:
            raise TemplateError(f"workflow: unknown node roles {sorted(unknown)}; use {ROLES}")
        for role in TEMPLATE_ROLES[kind]:
            if nodes.get(role) not in graph:
                raise TemplateError(
                    f"workflow {name}: no {role} node (title a node "
                    f"'{TITLE_PREFIX}{role}' or map it in options.nodes)"
                )
        template = cls(graph, nodes)
        if template.has("sampler"):
            _seed_input(graph[nodes["sampler"]])
            if nodes["save"] not in template._downstream(nodes["sampler"]):
                raise TemplateError("workflow: the save node does not depend on the sampler node")
        return template

    def has(self, role: str) -> bool:
        return self.nodes.get(role) in self.graph

    @property
    def has_negative(self) -> bool:
        return self.nodes.get("negative") in self.graph

    @property
    def checkpoint(self) -> str | None:
        """The checkpoint the template loads, if it marks its loader."""
        node = self.graph.get(self.nodes.get("checkpoint", ""))
        name = node["inputs"].get("ckpt_name") if node else None
        return name if isinstance(name, str) else None

    @property
    def steps(self) -> int | None:
        if not self.has("sampler"):
            return None
        steps = self.graph[self.nodes["sampler"]]["inputs"].get("steps")
        return steps if isinstance(steps, int) else None

    def fill(
        self,
        *,
        prompt: str,
        negative: str | None,
        width: int,
        height: int,
        seeds: tuple[int, ...],
        steps: int | None = None,
        checkpoint: str | None = None,
        inputs: dict[tuple[str, str], Any] | None = None,
    ) -> Filled:
        """The graph for one request. Each seed gets its own branch (the sampler and all
        that depends on it, batch size 1) because ComfyUI draws a batch's noise from one
        generator: image *i* of a batch cannot be made again from any seed alone.
        ``inputs`` sets more values by (role, input name); roles the template lacks are
        skipped, and a template without a sampler makes one image."""
        graph = copy.deepcopy(self.graph)
        if self.has("prompt"):
            _set(graph, self.nodes["prompt"], "text", prompt)
        if self.has_negative:
            _set(graph, self.nodes["negative"], "text", negative or "")
        if self.has("latent"):
            latent = self.nodes["latent"]
            _set(graph, latent, "width", width)
            _set(graph, latent, "height", height)
            _set(graph, latent, "batch_size", 1)
        if self.has("scale"):
            _set(graph, self.nodes["scale"], "width", width)
            _set(graph, self.nodes["scale"], "height", height)
        if checkpoint is not None and self.nodes.get("checkpoint") in graph:
            _set(graph, self.nodes["checkpoint"], "ckpt_name", checkpoint)
        for (role, name), value in (inputs or {}).items():
            if self.has(role):
                _set(graph, self.nodes[role], name, value)
        if not self.has("sampler"):
            return Filled(graph, (self.nodes["save"],))
        sampler = self.nodes["sampler"]
        if steps is not None and "steps" in graph[sampler]["inputs"]:
            _set(graph, sampler, "steps", steps)
        _set(graph, sampler, _seed_input(graph[sampler]), seeds[0])
        branch = self._downstream(sampler)
        saves = [self.nodes["save"]]
        for index, seed in enumerate(seeds[1:], start=1):
            renamed = {node: f"{node}_seed{index}" for node in branch}
            for node in branch:
                clone = copy.deepcopy(graph[node])
                clone["inputs"] = {
                    name: [renamed[str(value[0])], value[1]] if _links_to(value, renamed) else value
                    for name, value in clone["inputs"].items()
                }
                if "title" in clone.get("_meta", {}):  # keep each role's title unique
                    clone["_meta"]["title"] += f" (seed {index})"
                graph[renamed[node]] = clone
            _set(graph, renamed[sampler], _seed_input(graph[sampler]), seed)
            saves.append(renamed[self.nodes["save"]])
        return Filled(graph, tuple(saves))

    def _downstream(self, start: str) -> set[str]:
        """``start`` and every node that consumes its outputs, directly or not."""
        found = {start}
        changed = True
        while changed:
            changed = False
            for node_id, node in self.graph.items():
                if node_id not in found and any(
                    _links_to(value, found) for value in node.get("inputs", {}).values()
                ):
                    found.add(node_id)
                    changed = True
        return found


def _titled(graph: Graph) -> dict[str, str]:
    roles: dict[str, str] = {}
    for node_id, node in graph.items():
        title = str(node.get("_meta", {}).get("title", ""))
        if title.startswith(TITLE_PREFIX):
            roles[title.removeprefix(TITLE_PREFIX)] = node_id
    return roles


def _links_to(value: Any, nodes: set[str] | dict[str, str]) -> bool:
    """Whether an input value is a link ``[node_id, output_index]`` into ``nodes``."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[1], int)
        and str(value[0]) in nodes
    )


def _seed_input(node: dict[str, Any]) -> str:
    for name in SEED_INPUTS:
        if name in node["inputs"]:
            return name
    raise TemplateError(f"workflow: the sampler node ({node['class_type']}) has no seed input")


def _set(graph: Graph, node_id: str, name: str, value: Any) -> None:
    graph[node_id].setdefault("inputs", {})[name] = value
