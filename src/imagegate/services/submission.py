"""Turn what a client asked for into resolved job parameters (pure but for the seed)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from imagegate.domain.flags import parse_prompt_flags
from imagegate.domain.params import (
    DEFAULT_STYLE,
    MAX_SEED,
    MAX_VARIATIONS,
    STYLES,
    Mode,
    OutputFormat,
    ParamError,
    Ratio,
    pixel_size,
)
from imagegate.domain.records import Principal
from imagegate.errors import InvalidRequest
from imagegate.runtime import Runtime


@dataclass(frozen=True)
class JobSpec:
    """The create request's fields, as the client sent them (``None`` = not given)."""

    prompt: str = ""
    negative_prompt: str | None = None
    style: str | None = None
    ratio: str | None = None
    variations: int | None = None
    seed: int | None = None
    mode: str | None = None
    model: str | None = None
    routing: str | None = None
    output_format: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    webhook_url: str | None = None
    # The workflow's create-body fields (services.jobs attaches the images they name):
    # ``action`` imagine | blend | describe; ``init_image`` (an upload id or https URL)
    # with ``strength`` for img2img; ``images`` (upload ids or URLs) for blend and
    # describe; ``dimensions`` (portrait | square | landscape) for blend.
    action: str | None = None
    init_image: str | None = None
    strength: float | None = None
    images: tuple[str, ...] = ()
    dimensions: str | None = None


@dataclass(frozen=True)
class Resolved:
    prompt: str
    negative_prompt: str | None
    params: dict[str, Any]
    # Image references the prompt's flags name, by the ``params`` key they fill once
    # fetched or looked up (services.jobs): e.g. {"style_reference": "<upload id|URL>"}.
    refs: dict[str, str] = field(default_factory=dict)


async def resolve_for(rt: Runtime, principal: Principal, spec: JobSpec) -> Resolved:
    """:func:`resolve` with what it needs from the database (the workspace's presets)."""
    return resolve(spec)


def _merge(field_name: str, given: Any, from_flag: Any) -> Any:
    if given is not None and from_flag is not None and given != from_flag:
        raise InvalidRequest(
            f"'{field_name}' is set both in the body ({given!r}) and by a prompt flag "
            f"({from_flag!r}); set it once",
            field=field_name,
        )
    return given if given is not None else from_flag


def resolve(spec: JobSpec, seed_source: Any = secrets) -> Resolved:
    """Apply prompt flags and defaults; raise InvalidRequest naming the bad field."""
    try:
        parsed = parse_prompt_flags(spec.prompt)
        flags = parsed.values
        if not parsed.text:
            raise ParamError("prompt", "prompt must contain text besides flags")
        seed_flag = None
        if "seed" in flags:
            if not flags["seed"].isdigit() or int(flags["seed"]) > MAX_SEED:
                raise ParamError("prompt", f"--seed must be an integer from 0 to {MAX_SEED}")
            seed_flag = int(flags["seed"])
        ratio_text = _merge("ratio", spec.ratio, flags.get("ratio")) or "1:1"
        ratio = Ratio.parse(ratio_text)
        style = _merge("style", spec.style, flags.get("style")) or DEFAULT_STYLE
        if style not in STYLES:
            raise ParamError("style", f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
        mode = Mode(_merge("mode", spec.mode, flags.get("mode")) or Mode.STANDARD)
        negative = _merge("negative_prompt", spec.negative_prompt, flags.get("negative_prompt"))
        seed = _merge("seed", spec.seed, seed_flag)
    except ParamError as error:
        raise InvalidRequest(str(error), field=error.field) from error
    if seed is None:
        seed = seed_source.randbelow(MAX_SEED + 1)
    variations = spec.variations if spec.variations is not None else MAX_VARIATIONS
    width, height = pixel_size(ratio, mode)
    return Resolved(
        prompt=parsed.text,
        negative_prompt=negative or None,
        params={
            "ratio": str(ratio),
            "style": style,
            "variations": variations,
            "seed": seed,
            "mode": mode.value,
            "width": width,
            "height": height,
            "output_format": (spec.output_format or OutputFormat.PNG.value),
        },
    )
