"""Style presets: a prompt template, a negative prompt and defaults, by name.

The built-in presets are :data:`BUILTIN_PRESETS`, one per name in
``domain.params.STYLES``; each renders with that name as its ``base_style`` (the look
the built-in renderer draws, and the style adapters map to their provider's own).
Workspaces add their own over the ``styles`` table (services.styles); the checks
their fields must pass are here. A job freezes the preset it used into its params
(:meth:`Preset.frozen`), so a later edit changes no job already made."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from imagegate.domain.flags import flag_word
from imagegate.domain.params import DEFAULT_STYLE, STYLES, Mode, ParamError, Ratio

PLACEHOLDER = "{prompt}"
MAX_NAME_CHARS = 64
MAX_DESCRIPTION_CHARS = 500
MAX_TEMPLATE_CHARS = 1000
MAX_NEGATIVE_CHARS = 1000
MAX_MODEL_CHARS = 128
MAX_OPTIONS_PROVIDERS = 16
MAX_OPTIONS_BYTES = 8 * 1024  # the whole {provider: {option: value}} map, as JSON
MAX_PRESETS_PER_WORKSPACE = 100

_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class Preset:
    """A style preset. ``template`` holds ``{prompt}`` exactly once; ``ratio``,
    ``mode`` and ``model`` are defaults a create body and its flags override;
    ``provider_options`` maps a provider name to options for its adapter."""

    name: str
    template: str = PLACEHOLDER
    negative_prompt: str | None = None
    base_style: str = DEFAULT_STYLE
    description: str | None = None
    ratio: str | None = None
    mode: str | None = None
    model: str | None = None
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    builtin: bool = False
    created_at: datetime | None = None
    updated_at: datetime | None = None

    def render(self, text: str) -> str:
        """The prompt text put into the template (replaced, not ``str.format``: other
        braces in a template are text)."""
        return self.template.replace(PLACEHOLDER, text, 1)

    def negative_for(self, given: str | None) -> str | None:
        """The client's negative prompt joined with the preset's."""
        parts = [p for p in (given, self.negative_prompt) if p]
        return ", ".join(parts) or None

    def frozen(self) -> dict[str, Any]:
        """What a job records of the preset it was made with (``params["preset"]``)."""
        return {
            "name": self.name, "builtin": self.builtin, "template": self.template,
            "negative_prompt": self.negative_prompt, "base_style": self.base_style,
            "ratio": self.ratio, "mode": self.mode, "model": self.model,
            "provider_options": self.provider_options,
        }  # fmt: skip


def _builtin(
    name: str, description: str, template: str, negative: str | None, ratio: str | None = None
) -> Preset:
    return Preset(
        name=name, template=template, negative_prompt=negative, base_style=name,
        description=description, ratio=ratio, builtin=True,
    )  # fmt: skip


_BUILTINS = (
    _builtin("none", "The prompt as written", PLACEHOLDER, None),
    _builtin(
        "studio",
        "Studio product and portrait photography",
        "{prompt}, studio photograph, softbox lighting, seamless backdrop, sharp focus",
        "clutter, harsh shadows, blur",
    ),
    _builtin(
        "cinematic",
        "A widescreen film still",
        "cinematic film still of {prompt}, anamorphic lens, dramatic lighting, film grain",
        "flat lighting, cartoon",
        "16:9",
    ),
    _builtin(
        "photographic",
        "A natural-light photograph",
        "photograph of {prompt}, natural light, 35mm, high detail",
        "illustration, painting, cartoon, render",
        "3:2",
    ),
    _builtin(
        "anime",
        "Anime illustration",
        "anime illustration of {prompt}, clean line art, cel shading, vibrant colors",
        "photo, realistic, 3d render",
    ),
    _builtin(
        "watercolor",
        "A watercolor painting",
        "watercolor painting of {prompt}, soft washes, paper texture, loose brushwork",
        "photo, hard edges, digital art",
    ),
    _builtin(
        "neon",
        "Neon-lit night scenes",
        "{prompt}, neon lights, glowing signs, night, synthwave palette",
        "daylight, muted colors",
    ),
    _builtin(
        "vintage",
        "A faded 1970s photograph",
        "vintage photograph of {prompt}, faded colors, film grain, 1970s",
        "modern, digital, oversaturated",
    ),
    _builtin(
        "minimal",
        "Minimalist shapes and space",
        "minimalist {prompt}, simple shapes, negative space, limited palette",
        "clutter, busy background, text",
    ),
    _builtin(
        "fantasy",
        "Epic fantasy art",
        "fantasy art of {prompt}, epic, magical atmosphere, intricate detail",
        "mundane, photo, modern",
    ),
    _builtin(
        "noir",
        "Black-and-white film noir",
        "film noir scene of {prompt}, black and white, high contrast, deep shadows",
        "color, bright, cheerful",
    ),
)
BUILTIN_PRESETS: dict[str, Preset] = {preset.name: preset for preset in _BUILTINS}
assert tuple(BUILTIN_PRESETS) == STYLES


def check_name(name: str) -> str:
    if not (len(name) <= MAX_NAME_CHARS and _NAME.match(name)):
        raise ParamError(
            "name",
            f"a preset name is a lowercase slug (a-z first, then a-z, 0-9, - or _) of at "
            f"most {MAX_NAME_CHARS} characters, got {name[:MAX_NAME_CHARS]!r}",
        )
    return name


def check_template(template: str) -> str:
    if len(template) > MAX_TEMPLATE_CHARS:
        raise ParamError("template", f"a template has at most {MAX_TEMPLATE_CHARS} characters")
    if template.count(PLACEHOLDER) != 1:
        raise ParamError(
            "template", f"a template holds {PLACEHOLDER} exactly once, where the prompt goes"
        )
    flags = [w for w in template.split() if flag_word(w)]
    if flags:
        raise ParamError(
            "template",
            f"a template carries no prompt flags (found {flags[0][:40]!r}); set the "
            "preset's ratio, mode and model instead",
        )
    return template


def check_text(field_name: str, value: str | None, limit: int) -> str | None:
    if value is not None and len(value) > limit:
        raise ParamError(field_name, f"{field_name} has at most {limit} characters")
    return value or None


def check_base_style(value: str) -> str:
    if value not in STYLES:
        raise ParamError("base_style", f"base_style must be one of {', '.join(STYLES)}")
    return value


def check_ratio(value: str | None) -> str | None:
    return None if value is None else str(Ratio.parse(value))


def check_mode(value: str | None) -> str | None:
    if value is not None and value not in Mode._value2member_map_:
        raise ParamError("mode", f"mode must be one of {', '.join(m.value for m in Mode)}")
    return value


def check_provider_options(value: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{provider name: {option: value}}``, bounded; which providers exist is the
    caller's to check."""
    if len(value) > MAX_OPTIONS_PROVIDERS:
        raise ParamError(
            "provider_options", f"provider_options names at most {MAX_OPTIONS_PROVIDERS} providers"
        )
    for provider, options in value.items():
        if not isinstance(options, dict):
            raise ParamError(
                f"provider_options.{provider}",
                "each provider's options are an object of option: value",
            )
    if (
        len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
        > MAX_OPTIONS_BYTES
    ):
        raise ParamError(
            "provider_options", f"provider_options is at most {MAX_OPTIONS_BYTES} bytes as JSON"
        )
    return value
