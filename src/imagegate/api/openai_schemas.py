"""The bodies of the OpenAI-compatible /v1 images API, with OpenAI's field names and
value sets (the per-model rules live in domain.openai_images)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from imagegate.domain.openai_images import MAX_N, MAX_PARTIAL_IMAGES
from imagegate.services.openai_compat import ImageRequest

ResponseFormat = Literal["url", "b64_json"]
ImageFormat = Literal["png", "jpeg", "webp"]
Background = Literal["transparent", "opaque", "auto"]


class ImageFields(BaseModel):
    """What generations, edits and variations share."""

    # OpenAI refuses a parameter it does not know; so does this API (400, its name).
    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(default=None, max_length=64)
    n: int | None = Field(default=None, ge=1, le=MAX_N)
    size: str | None = Field(default=None, max_length=16)
    response_format: ResponseFormat | None = None
    user: str | None = Field(default=None, max_length=256)

    def request(self, prompt: str) -> ImageRequest:
        return ImageRequest(
            prompt=prompt, model=self.model, n=self.n or 1, size=self.size,
            response_format=self.response_format, user=self.user,
            quality=getattr(self, "quality", None),
            output_format=getattr(self, "output_format", None),
            output_compression=getattr(self, "output_compression", None),
            background=getattr(self, "background", None),
            stream=bool(getattr(self, "stream", False)),
        )  # fmt: skip


class PromptedFields(ImageFields):
    """Generations and edits: a prompt and gpt-image's output knobs."""

    prompt: str = Field(min_length=1, max_length=32_000)
    quality: Literal["low", "medium", "high", "auto", "standard", "hd"] | None = None
    output_format: ImageFormat | None = None
    output_compression: int | None = Field(default=None, ge=0, le=100)
    background: Background | None = None
    # Accepted for compatibility; the providers' own moderation applies.
    moderation: Literal["low", "auto"] | None = None
    stream: bool | None = None
    partial_images: int | None = Field(default=None, ge=0, le=MAX_PARTIAL_IMAGES)


class ImageGenerate(PromptedFields):
    """``POST /v1/images/generations``."""

    # dall-e-3's look; accepted, not mapped (imagegate's styles are its presets).
    style: Literal["vivid", "natural"] | None = None


class ImageEditFields(PromptedFields):
    """``POST /v1/images/edits``: the form's fields besides its files."""

    input_fidelity: Literal["high", "low"] | None = None


class ImageVariationFields(ImageFields):
    """``POST /v1/images/variations``: the form's fields besides its file."""
