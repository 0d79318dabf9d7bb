"""OpenAI's images value sets in imagegate's terms (domain.openai_images)."""

from __future__ import annotations

import pytest

from imagegate.domain.openai_images import (
    DEFAULT_MODELS,
    Family,
    OpenAIParamError,
    always_b64,
    parse_models,
    shape,
)
from imagegate.domain.params import Mode
from imagegate.settings import Settings


@pytest.mark.parametrize(
    ("model", "size", "quality", "ratio", "mode", "reported"),
    [
        ("gpt-image-1", None, None, "1:1", Mode.STANDARD, ("1024x1024", "medium")),
        ("gpt-image-1", "auto", "low", "1:1", Mode.DRAFT, ("1024x1024", "low")),
        ("gpt-image-1", "1536x1024", "high", "3:2", Mode.STANDARD, ("1536x1024", "high")),
        ("gpt-image-1-mini", "1024x1536", "medium", "2:3", Mode.STANDARD, ("1024x1536", "medium")),
        ("dall-e-3", "1792x1024", "hd", "7:4", Mode.STANDARD, ("1792x1024", "hd")),
        ("dall-e-3", "1024x1792", None, "4:7", Mode.STANDARD, ("1024x1792", "standard")),
        ("dall-e-2", "256x256", None, "1:1", Mode.DRAFT, ("256x256", "standard")),
        ("dall-e-2", "512x512", "standard", "1:1", Mode.DRAFT, ("512x512", "standard")),
        ("dall-e-2", None, None, "1:1", Mode.STANDARD, ("1024x1024", "standard")),
    ],
)
def test_sizes_and_qualities_map_to_ratio_and_mode(
    model: str, size: str | None, quality: str | None, ratio: str, mode: Mode,
    reported: tuple[str, str],
) -> None:  # fmt: skip
    s = shape(model, size, quality, 1)
    assert (s.ratio, s.mode, (s.size, s.quality)) == (ratio, mode, reported)


@pytest.mark.parametrize(
    ("model", "size", "quality", "n", "param"),
    [
        ("gpt-image-1", "1792x1024", None, 1, "size"),
        ("gpt-image-1", "512x512", None, 1, "size"),
        ("dall-e-3", "auto", None, 1, "size"),
        ("dall-e-2", "1536x1024", None, 1, "size"),
        ("gpt-image-1", None, "hd", 1, "quality"),
        ("dall-e-2", None, "hd", 1, "quality"),
        ("dall-e-3", None, None, 2, "n"),
        ("gpt-image-1", None, None, 0, "n"),
        ("gpt-image-1", None, None, 5, "n"),  # OpenAI's 10, imagegate's 4 per job
    ],
)
def test_values_openai_refuses_name_their_param(
    model: str, size: str | None, quality: str | None, n: int, param: str
) -> None:
    with pytest.raises(OpenAIParamError) as caught:
        shape(model, size, quality, n)
    assert caught.value.param == param


def test_families_and_base64() -> None:
    assert [Family.of(m) for m in ("dall-e-2", "dall-e-3", "gpt-image-1", "house-model")] == [
        Family.DALL_E_2, Family.DALL_E_3, Family.GPT_IMAGE, Family.GPT_IMAGE,
    ]  # fmt: skip
    assert always_b64("gpt-image-1") and not always_b64("dall-e-3")


def test_the_models_setting_adds_to_and_overrides_the_defaults() -> None:
    assert parse_models(" gpt-image-1=openai:gpt-image-1 , house=auto,") == {
        "gpt-image-1": "openai:gpt-image-1", "house": "auto",
    }  # fmt: skip
    models = Settings(openai_models="dall-e-3=stability:sd3").openai_models_map
    assert models == {**DEFAULT_MODELS, "dall-e-3": "stability:sd3"}


@pytest.mark.parametrize("text", ["gpt-image-1", "=auto", "x=", "x=openai", "a b=auto"])
def test_a_malformed_models_setting_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="name=model"):
        parse_models(text)
    with pytest.raises(ValueError, match="IMAGEGATE_OPENAI_MODELS"):
        Settings(openai_models=text)
