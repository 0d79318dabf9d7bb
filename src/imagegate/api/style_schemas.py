"""Request and response bodies of the style presets API (docs/styles.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from imagegate.api.text import FreeText, Name, NameKey, name_keys
from imagegate.domain.params import STYLES
from imagegate.domain.presets import (
    MAX_DESCRIPTION_CHARS,
    MAX_MODEL_CHARS,
    MAX_NAME_CHARS,
    MAX_NEGATIVE_CHARS,
    MAX_OPTIONS_PROVIDERS,
    MAX_TEMPLATE_CHARS,
    Preset,
)

OptionKey = Annotated[NameKey, StringConstraints(min_length=1, max_length=64)]
ProviderOptions = dict[OptionKey, dict[OptionKey, Any]]
BaseStyle = Literal[STYLES]  # type: ignore[valid-type]

TEMPLATE_HELP = "The prompt with {prompt} (exactly once) where the client's prompt goes"
OPTIONS_HELP = (
    "{provider name: {option: value}}: options for that provider's adapter, in its own "
    "names (docs/providers.md); at most 8 KiB as JSON"
)


class StyleFields(BaseModel):
    description: FreeText | None = Field(default=None, max_length=MAX_DESCRIPTION_CHARS)
    negative_prompt: FreeText | None = Field(default=None, max_length=MAX_NEGATIVE_CHARS)
    base_style: BaseStyle | None = Field(
        default=None, description="The built-in look it renders with; default none"
    )
    ratio: Name | None = Field(default=None, max_length=16, description="Default ratio 'W:H'")
    mode: Literal["draft", "standard"] | None = Field(default=None, description="Default mode")
    model: Name | None = Field(
        default=None, max_length=MAX_MODEL_CHARS, description="Default model: 'provider:model'"
    )


class StyleCreate(StyleFields):
    """A workspace's own style preset."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"name": "product-shot", "template": "{prompt}, on a marble plinth, studio light",
                 "negative_prompt": "text, watermark", "base_style": "studio", "ratio": "4:5"}
            ]
        },
    )  # fmt: skip

    name: Name = Field(
        min_length=1,
        max_length=MAX_NAME_CHARS,
        description="A lowercase slug (a-z, then a-z 0-9 - _), not a built-in preset's name",
    )
    template: FreeText = Field(
        default="{prompt}", max_length=MAX_TEMPLATE_CHARS, description=TEMPLATE_HELP
    )
    provider_options: ProviderOptions = Field(
        default_factory=dict,
        max_length=MAX_OPTIONS_PROVIDERS,
        description=OPTIONS_HELP,
        json_schema_extra=name_keys(1, 64),
    )


class StyleUpdate(StyleFields):
    """The fields to change; null clears one (template, base_style and
    provider_options go back to their defaults)."""

    model_config = ConfigDict(extra="forbid")

    template: FreeText | None = Field(
        default=None, max_length=MAX_TEMPLATE_CHARS, description=TEMPLATE_HELP
    )
    provider_options: ProviderOptions | None = Field(
        default=None,
        max_length=MAX_OPTIONS_PROVIDERS,
        description=OPTIONS_HELP,
        json_schema_extra=name_keys(1, 64),
    )


class StylePublic(BaseModel):
    name: str
    builtin: bool
    description: str | None
    template: str
    negative_prompt: str | None
    base_style: str
    ratio: str | None
    mode: str | None
    model: str | None
    provider_options: dict[str, dict[str, Any]]
    created_at: datetime | None = Field(description="None for built-in presets")
    updated_at: datetime | None

    @classmethod
    def from_preset(cls, preset: Preset) -> StylePublic:
        return cls(
            name=preset.name, builtin=preset.builtin, description=preset.description,
            template=preset.template, negative_prompt=preset.negative_prompt,
            base_style=preset.base_style, ratio=preset.ratio, mode=preset.mode,
            model=preset.model, provider_options=preset.provider_options,
            created_at=preset.created_at, updated_at=preset.updated_at,
        )  # fmt: skip


class StylesPublic(BaseModel):
    data: list[StylePublic]
