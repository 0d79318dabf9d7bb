"""The A1111 adapter's request bodies and describe suggestions (pure functions)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from imagegate.domain.actions import Direction, pan_canvas
from imagegate.domain.params import Mode
from imagegate.providers.a1111_bodies import (
    LATENT_NOISE,
    ORIGINAL,
    Options,
    generation_body,
    img2img_body,
    merged,
    suggestions,
    upscale_body,
)
from imagegate.providers.base import Action, GenerationRequest
from imagegate.providers.errors import PermanentProviderError


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (1, 2, 3)).save(buffer, "PNG")
    return buffer.getvalue()


def request(**fields: Any) -> GenerationRequest:
    values: dict[str, Any] = {
        "prompt": "a fox", "negative_prompt": None, "width": 300, "height": 201,
        "seeds": (4, 5), "style": "none", "mode": Mode.DRAFT, "model": "default", **fields,
    }  # fmt: skip
    return GenerationRequest(**values)


def test_the_txt2img_body_snaps_sides_and_maps_tile() -> None:
    body = generation_body(request(tuning={"tile": True, "chaos": 40}), Options(), "a1111")

    assert (body["width"], body["height"], body["seed"], body["batch_size"]) == (304, 200, 4, 2)
    assert body["tiling"] is True and "chaos" not in body
    assert "tiling" not in generation_body(request(), Options(), "a1111")


def test_the_outpaint_body_sends_the_padded_canvas_and_its_mask() -> None:
    canvas = pan_canvas(64, 64, Direction.RIGHT)
    req = request(action=Action.PAN, source_image=png(64, 64), canvas=canvas, width=96,
                  height=64)  # fmt: skip

    body = img2img_body(req, Options(), "a1111")

    assert (body["inpainting_fill"], body["inpaint_full_res"], body["denoising_strength"]) == (
        LATENT_NOISE, False, 1.0,
    )  # fmt: skip
    assert len(body["init_images"]) == 1 and body["mask"]
    assert (body["width"], body["height"]) == (96, 64)


def test_the_region_body_starts_from_the_original_and_payload_comes_last() -> None:
    req = request(action=Action.VARY_REGION, source_image=png(64, 64), mask=png(64, 64))

    body = img2img_body(req, Options(payload={"mask_blur": 0, "steps": 9}), "a1111")

    assert (body["inpainting_fill"], body["inpaint_full_res"], body["mask_blur"]) == (
        ORIGINAL, True, 0,
    )  # fmt: skip
    assert body["steps"] == 9 and body["denoising_strength"] == 0.75


def test_the_upscale_body_asks_for_the_exact_size() -> None:
    req = request(action=Action.UPSCALE, source_image=png(61, 45), upscale_factor=2, width=122,
                  height=90)  # fmt: skip

    body = upscale_body(req, Options(upscaler="SwinIR 4x"))

    assert (body["resize_mode"], body["upscaling_resize_w"], body["upscaling_resize_h"]) == (
        1, 122, 90,
    )  # fmt: skip
    assert (body["upscaler_1"], body["upscaling_crop"]) == ("SwinIR 4x", False)


def test_a_preset_adds_to_the_payload_and_overrides_options() -> None:
    base = Options(payload={"steps": 25, "cfg_scale": 5}, upscaler="Lanczos")

    options = merged(base, "a1111", {"payload": {"steps": 40}, "region_strength": 0.5})

    assert options.payload == {"steps": 40, "cfg_scale": 5}
    assert (options.upscaler, options.region_strength) == ("Lanczos", 0.5)
    assert merged(base, "a1111", {}) is base
    with pytest.raises(PermanentProviderError, match="region_strength"):
        merged(base, "a1111", {"region_strength": 2})


@pytest.mark.parametrize(
    ("caption", "expected"),
    [
        (
            "a lighthouse on a cliff, oil painting, dramatic light",
            (
                "a lighthouse on a cliff, oil painting, dramatic light",
                "a lighthouse on a cliff",
                "a lighthouse on a cliff, dramatic light, oil painting",
                "(a lighthouse on a cliff:1.2), oil painting, dramatic light",
            ),
        ),
        ("a  fox ", ("a fox", "(a fox:1.2)", "(a fox:1.3)", "(a fox:1.4)")),
        (" , ", ()),
    ],
)
def test_four_distinct_suggestions_from_one_caption(
    caption: str, expected: tuple[str, ...]
) -> None:
    assert suggestions(caption) == expected
