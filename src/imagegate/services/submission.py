"""Turn what a client asked for into resolved job parameters (pure but for the seed).

Precedence, for each field: the create body, then the prompt's flags (the two must
agree when both are given), then the style preset's defaults, then the server's."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from imagegate.domain.flags import (
    DEFAULT_VERSION_MODELS,
    TUNING_KEYS,
    FlagError,
    ParsedPrompt,
    model_for_version,
    parse_prompt_flags,
)
from imagegate.domain.params import (
    DEFAULT_STYLE,
    MAX_SEED,
    MAX_VARIATIONS,
    Mode,
    OutputFormat,
    ParamError,
    Ratio,
    pixel_size,
)
from imagegate.domain.presets import BUILTIN_PRESETS, Preset
from imagegate.domain.records import Principal
from imagegate.errors import InvalidRequest
from imagegate.runtime import Runtime
from imagegate.services import moderation, styles

# The prompt of a blend sent without one.
BLEND_PROMPT = "one coherent picture blending the subjects, styles and colours of the images"


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
    output_quality: int | None = None  # 1-100, JPEG and WebP only
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
    """The job's prompt (the style's template applied), negative prompt and params.
    ``params["requested_model"]`` is the model asked for, by the body, a ``--v`` /
    ``--niji`` alias or the preset (``auto`` if none): services.jobs validates it."""

    prompt: str
    negative_prompt: str | None
    params: dict[str, Any]
    # Image references the prompt's flags name, by the ``params`` key they fill once
    # fetched or looked up (services.jobs): e.g. {"style_reference": "<upload id|URL>"}.
    refs: dict[str, str] = field(default_factory=dict)


async def resolve_for(rt: Runtime, principal: Principal, spec: JobSpec) -> Resolved:
    """:func:`resolve` with what it needs from the database (the workspace's presets)
    and the settings (the ``--v``/``--niji`` model aliases), the prompt screened by
    the workspace's moderation rules (refused: ContentPolicyViolation, recorded)."""
    presets: dict[str, Preset] = dict(BUILTIN_PRESETS)
    name = _style_name(spec)
    if name is not None and name not in presets:
        found = await styles.find(rt, principal, name)
        # Not found: every preset the workspace has, for the error to list.
        presets.update(
            {found.name: found} if found else await styles.workspace_presets(rt, principal)
        )
    resolved = resolve(spec, presets=presets, version_models=rt.settings.version_models)
    await moderation.screen_prompt(rt, principal, resolved.prompt, user=spec.user)
    return resolved


def _style_name(spec: JobSpec) -> str | None:
    """The style the request names, if any (what is wrong with the prompt, if
    anything, is for :func:`resolve` to say)."""
    if spec.style is not None:
        return spec.style
    try:
        style = parse_prompt_flags(spec.prompt).values.get("style")
    except ParamError:
        return None
    return str(style) if style is not None else None


def _merge(field_name: str, given: Any, from_flag: Any) -> Any:
    if given is not None and from_flag is not None and given != from_flag:
        raise InvalidRequest(
            f"'{field_name}' is set both in the body ({given!r}) and by a prompt flag "
            f"({from_flag!r}); set it once",
            field=field_name,
        )
    return given if given is not None else from_flag


def resolve(
    spec: JobSpec,
    seed_source: Any = secrets,
    *,
    presets: Mapping[str, Preset] = BUILTIN_PRESETS,
    version_models: Mapping[str, str] = DEFAULT_VERSION_MODELS,
) -> Resolved:
    """Apply prompt flags, the style preset and defaults; raise InvalidRequest naming
    the bad field (and, for a prompt flag, the ``flag``)."""
    try:
        return _resolve(spec, seed_source, presets, version_models)
    except FlagError as error:
        raise InvalidRequest(str(error), field=error.field, flag=error.flag) from error
    except ParamError as error:
        raise InvalidRequest(str(error), field=error.field) from error


def _resolve(
    spec: JobSpec, seed_source: Any, presets: Mapping[str, Preset], versions: Mapping[str, str]
) -> Resolved:
    parsed = parse_prompt_flags(spec.prompt)
    flags = parsed.values
    if not parsed.text and spec.action == "blend":
        # Midjourney's blend takes no prompt; providers that need one get this.
        parsed = replace(parsed, text=BLEND_PROMPT)
    elif not parsed.text and spec.action != "describe":
        raise ParamError("prompt", "prompt must contain text besides image URLs and flags")
    preset = _preset(_merge("style", spec.style, flags.get("style")), presets)
    # Compared reduced: a body's 32:18 agrees with a flag's 16:9.
    body_ratio = str(Ratio.parse(spec.ratio)) if spec.ratio is not None else None
    ratio = Ratio.parse(_merge("ratio", body_ratio, flags.get("ratio")) or preset.ratio or "1:1")
    if spec.mode is not None and spec.mode not in Mode._value2member_map_:
        raise ParamError("mode", f"mode must be one of {', '.join(m.value for m in Mode)}")
    mode = Mode(_merge("mode", spec.mode, flags.get("mode")) or preset.mode or Mode.STANDARD)
    negative = _merge("negative_prompt", spec.negative_prompt, flags.get("negative_prompt"))
    seed = _merge("seed", spec.seed, flags.get("seed"))
    if seed is None:
        seed = seed_source.randbelow(MAX_SEED + 1)
    width, height = pixel_size(ratio, mode)
    output_format = spec.output_format or OutputFormat.PNG.value
    if spec.output_quality is not None and output_format == OutputFormat.PNG.value:
        raise ParamError("output_quality", "output_quality applies to jpeg and webp only")
    params: dict[str, Any] = {
        "ratio": str(ratio),
        "style": preset.base_style,
        "variations": spec.variations if spec.variations is not None else MAX_VARIATIONS,
        "seed": seed,
        "mode": mode.value,
        "width": width,
        "height": height,
        "output_format": output_format,
        "requested_model": _requested_model(spec, flags, preset, versions),
        **_midjourney_params(flags),
    }
    if spec.output_quality is not None:
        params["output_quality"] = spec.output_quality
    if spec.style is not None or "style" in flags:
        params["preset"] = {**preset.frozen(), "prompt": parsed.text}
        if preset.provider_options:
            params["provider_options"] = preset.provider_options
    return Resolved(
        prompt=preset.render(parsed.text),
        negative_prompt=preset.negative_for(negative),
        params=params,
        refs=_refs(spec, parsed),
    )


def _preset(name: str | None, presets: Mapping[str, Preset]) -> Preset:
    preset = presets.get(name or DEFAULT_STYLE)
    if preset is None:
        shown = name if name is None or len(name) <= 64 else name[:61] + "..."
        raise ParamError("style", f"unknown style {shown!r}; choose one of {', '.join(presets)}")
    return preset


def _requested_model(
    spec: JobSpec, flags: dict[str, Any], preset: Preset, versions: Mapping[str, str]
) -> str:
    """The body's model, else the ``--v``/``--niji`` alias's, else the preset's. A
    body's ``auto`` and an alias to ``auto`` state no preference."""
    version_model = model_for_version(flags["version"], versions) if "version" in flags else None
    given = spec.model if spec.model != "auto" else None
    chosen = _merge("model", given, version_model if version_model != "auto" else None)
    return str(chosen or preset.model or "auto")


def _midjourney_params(flags: dict[str, Any]) -> dict[str, Any]:
    """The params of flags that have no body field: only those given."""
    found: dict[str, Any] = {}
    tuning = {key: flags[key] for key in TUNING_KEYS if key in flags}
    if tuning:
        found["tuning"] = tuning
    for key in ("version", "image_weight", "style_weight", "repeat"):
        if key in flags:
            found[key] = flags[key]
    return found


def _refs(spec: JobSpec, parsed: ParsedPrompt) -> dict[str, str]:
    """The images the prompt names: its image prompt (unless the body gives the same
    ``init_image``) and its ``--sref``."""
    refs: dict[str, str] = {}
    if len(parsed.image_urls) > 1:
        raise FlagError(
            None,
            f"a prompt takes one image prompt, got {len(parsed.image_urls)}; to combine "
            "images, create a blend with 'images'",
        )
    image = _merge("init_image", spec.init_image, next(iter(parsed.image_urls), None))
    if "image_weight" in parsed.values and image is None:
        raise FlagError(
            "--iw",
            "--iw weighs an image prompt: put an image URL before the text, or give init_image",
        )
    if image is not None and spec.init_image is None:
        refs["init_image"] = image
    if "style_reference" in parsed.values:
        refs["style_reference"] = str(parsed.values["style_reference"])
    return refs
