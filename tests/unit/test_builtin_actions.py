"""The built-in provider's follow-up actions, on real image bytes: exact sizes, the
source's pixels kept where an action promises to keep them, variations whose distance
from the source follows their strength, describe's analysis, the tuning knobs."""

from __future__ import annotations

import io
import pickle
from dataclasses import replace

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from imagegate.domain.actions import (
    Box,
    Direction,
    UpscaleMode,
    VariationStrength,
    pan_canvas,
    zoom_out_canvas,
)
from imagegate.domain.params import Mode
from imagegate.imaging import encode_png, rectangles_mask
from imagegate.providers.base import Action, GenerationRequest, GenerationResult, NoCorrelation
from imagegate.providers.builtin import BuiltinProvider
from imagegate.providers.errors import PermanentProviderError
from imagegate.render import render_image

SIDE = 256
PROMPT = "a mountain lake at sunset"

Pixels = NDArray[np.float64]


def _source(prompt: str = PROMPT, seed: int = 3, size: tuple[int, int] = (SIDE, SIDE)) -> bytes:
    return encode_png(render_image(prompt, None, "none", seed, *size))


SOURCE = _source()


def request(action: Action = Action.IMAGINE, **changes: object) -> GenerationRequest:
    base = GenerationRequest(
        prompt=PROMPT, negative_prompt=None, width=SIDE, height=SIDE, seeds=(1,),
        style="none", mode=Mode.STANDARD, model="builtin", action=action,
        source_image=None if action in (Action.IMAGINE, Action.BLEND) else SOURCE,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


async def _ignore(fraction: float) -> None:
    return None


async def generate(req: GenerationRequest) -> GenerationResult:
    return await BuiltinProvider().generate(req, _ignore, NoCorrelation())


def decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data), formats=["PNG"])
    image.load()
    return image


async def images(req: GenerationRequest) -> list[Image.Image]:
    result = await generate(req)
    assert [i.seed for i in result.images] == list(req.seeds)
    decoded = [decode(i.data) for i in result.images]
    for image, meta in zip(decoded, result.images, strict=True):
        assert image.size == (meta.width, meta.height) == (req.width, req.height)
    return decoded


async def one(req: GenerationRequest) -> Image.Image:
    return (await images(replace(req, seeds=req.seeds[:1])))[0]


def pixels(image: Image.Image) -> Pixels:
    return np.asarray(image.convert("RGB"), dtype=np.float64)


def distance(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute difference per channel, in 8-bit levels."""
    return float(np.abs(pixels(a) - pixels(b)).mean())


def source_image() -> Image.Image:
    return decode(SOURCE)


def test_capabilities_list_every_action_and_the_mapped_tuning() -> None:
    caps = BuiltinProvider().capabilities()
    assert set(caps.actions) == set(Action)
    assert caps.tuning == {"stylize", "chaos", "weird", "tile"}
    assert caps.style_reference


def test_a_request_with_its_inputs_pickles_for_the_render_processes() -> None:
    req = request(Action.VARY_REGION, mask=rectangles_mask(SIDE, SIDE, [Box(0, 0, 9, 9)]))
    assert pickle.loads(pickle.dumps(req)) == req  # noqa: S301


# Upscale


@pytest.mark.parametrize(("factor", "mode"), [(2, UpscaleMode.SUBTLE), (4, UpscaleMode.CREATIVE)])
async def test_upscale_makes_exactly_factor_times_the_source(
    factor: int, mode: UpscaleMode
) -> None:
    side = SIDE * factor
    big = await one(
        request(Action.UPSCALE, width=side, height=side, upscale_factor=factor, upscale_mode=mode)
    )
    assert big.size == (side, side)
    # Shrunk back, it is the source: resampled, not repainted.
    assert distance(big.resize((SIDE, SIDE), Image.Resampling.BOX), source_image()) < 3.0


def _sharpness(image: Image.Image) -> float:
    grey = pixels(image.convert("L"))[:, :, 0]
    laplacian = (
        4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    )
    return float(np.abs(laplacian).mean())


async def test_upscale_is_sharper_than_a_plain_resample() -> None:
    side = SIDE * 2
    big = await one(
        request(
            Action.UPSCALE,
            width=side,
            height=side,
            upscale_factor=2,
            upscale_mode=UpscaleMode.SUBTLE,
        )
    )
    plain = source_image().resize((side, side), Image.Resampling.LANCZOS)
    assert _sharpness(big) > 1.2 * _sharpness(plain)


async def test_creative_upscale_adds_seeded_detail_subtle_adds_none() -> None:
    base = request(Action.UPSCALE, width=512, height=512, upscale_factor=2, seeds=(1, 2))
    subtle = await images(replace(base, upscale_mode=UpscaleMode.SUBTLE))
    creative = await images(replace(base, upscale_mode=UpscaleMode.CREATIVE))
    assert distance(subtle[0], subtle[1]) == 0.0
    assert distance(creative[0], creative[1]) > 0.5
    assert _sharpness(creative[0]) > 1.2 * _sharpness(subtle[0])
    again = await images(replace(base, upscale_mode=UpscaleMode.CREATIVE))
    assert [pixels(i).tobytes() for i in again] == [pixels(i).tobytes() for i in creative]


# Img2img and variation


async def test_img2img_runs_from_the_source_to_a_fresh_render() -> None:
    fresh = await one(request(prompt="a snowy forest"))
    at = {
        s: await one(request(Action.IMG2IMG, prompt="a snowy forest", strength=s))
        for s in (0.0, 0.5, 1.0)
    }
    assert distance(at[0.0], source_image()) == 0.0
    assert distance(at[1.0], fresh) == 0.0
    apart = distance(source_image(), fresh)
    assert distance(at[0.5], source_image()) < 0.75 * apart
    assert distance(at[0.5], fresh) < 0.75 * apart


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
async def test_a_subtle_variation_stays_closer_to_the_source_than_a_strong_one(seed: int) -> None:
    def vary(strength: VariationStrength) -> GenerationRequest:
        return request(Action.VARIATION, strength=strength.strength, seeds=(seed,))

    subtle = await one(vary(VariationStrength.SUBTLE))
    strong = await one(vary(VariationStrength.STRONG))
    near, far = distance(subtle, source_image()), distance(strong, source_image())
    assert 1.0 < near < 0.8 * far


async def test_variations_differ_by_seed_and_repeat_by_seed() -> None:
    req = request(Action.VARIATION, strength=0.35, seeds=(1, 2, 3))
    first, second = await images(req), await images(req)
    assert [pixels(i).tobytes() for i in first] == [pixels(i).tobytes() for i in second]
    assert min(distance(a, b) for i, a in enumerate(first) for b in first[i + 1 :]) > 2.0


async def test_a_remix_prompt_changes_the_variation() -> None:
    same = await one(request(Action.VARIATION, strength=0.75))
    remix = await one(request(Action.VARIATION, strength=0.75, prompt="neon city at night"))
    assert distance(same, remix) > 2.0


# Zoom out and pan


def _red_source() -> bytes:
    """Mostly red, with structure: a red field, a darker band, a yellow disc."""
    image = Image.new("RGB", (SIDE, SIDE), (200, 30, 25))
    image.paste((120, 15, 20), (0, 170, SIDE, 200))
    disc = Image.new("L", (SIDE, SIDE), 0)
    ImageDraw.Draw(disc).ellipse((90, 40, 150, 100), fill=255)
    image.paste((240, 210, 60), (0, 0), disc)
    return encode_png(image)


async def test_zoom_out_keeps_the_shrunk_source_in_the_centre() -> None:
    canvas = zoom_out_canvas(SIDE, SIDE, 2.0)
    out = await one(request(Action.ZOOM_OUT, canvas=canvas))
    box = canvas.source
    inside = out.crop((box.left, box.top, box.right, box.bottom))
    # Another resampler's shrink: equal within the resampling error (the box left to
    # the blurred extension would be over 2 levels off).
    shrunk = source_image().resize((box.width, box.height), Image.Resampling.BICUBIC)
    assert distance(inside, shrunk) < 1.0
    # Around it, a painted scene, not a flat fill.
    ring = pixels(out)[: box.top]
    assert ring.std() > 5.0


async def test_zoom_out_continues_the_sources_colours() -> None:
    canvas = zoom_out_canvas(SIDE, SIDE, 2.0)
    # A prompt whose own render is green and blue: the red around the box is the source's.
    zoom = request(Action.ZOOM_OUT, canvas=canvas, source_image=_red_source(),
                   prompt="a green forest by a blue lake")  # fmt: skip
    out = pixels(await one(zoom))
    box = canvas.source
    outside = np.ones(out.shape[:2], dtype=bool)
    outside[box.top : box.bottom, box.left : box.right] = False
    red, green, blue = (out[:, :, c][outside].mean() for c in range(3))
    assert red > green + 40 and red > blue + 40
    # Right next to the box the scene carries on: the first row above it is close to
    # the box's own top row.
    edge = np.abs(out[box.top - 1, box.left : box.right] - out[box.top, box.left : box.right])
    assert edge.mean() < 12.0


@pytest.mark.parametrize("direction", list(Direction))
async def test_pan_keeps_every_source_pixel(direction: Direction) -> None:
    canvas = pan_canvas(SIDE, SIDE, direction)
    out = await one(
        request(
            Action.PAN, canvas=canvas, direction=direction, width=canvas.width, height=canvas.height
        )
    )
    box = canvas.source
    assert out.size == (canvas.width, canvas.height) != (SIDE, SIDE)
    inside = out.crop((box.left, box.top, box.right, box.bottom))
    assert pixels(inside).tobytes() == pixels(source_image()).tobytes()
    added = pixels(out).copy()
    added[box.top : box.bottom, box.left : box.right] = np.nan
    assert np.nanstd(added) > 5.0


async def test_outpainting_differs_by_seed_outside_the_box_only() -> None:
    canvas = pan_canvas(SIDE, SIDE, Direction.RIGHT)
    first, second = await images(
        request(
            Action.PAN,
            canvas=canvas,
            direction=Direction.RIGHT,
            width=canvas.width,
            height=canvas.height,
            seeds=(1, 2),
        )
    )
    a, b = pixels(first), pixels(second)
    assert np.array_equal(a[:, :SIDE], b[:, :SIDE])
    assert np.abs(a[:, SIDE:] - b[:, SIDE:]).mean() > 2.0


# Vary region


async def test_vary_region_repaints_only_the_masked_pixels() -> None:
    boxes = [Box(40, 50, 120, 80), Box(180, 160, 50, 60)]
    mask = rectangles_mask(SIDE, SIDE, boxes)
    first, second = await images(
        request(Action.VARY_REGION, mask=mask, prompt="a castle", seeds=(1, 2))
    )
    keep = np.asarray(decode(mask)) == 0
    src = pixels(source_image())
    for out in (first, second):
        assert np.array_equal(pixels(out)[keep], src[keep])
        assert np.abs(pixels(out)[~keep] - src[~keep]).mean() > 3.0
    assert np.abs(pixels(first)[~keep] - pixels(second)[~keep]).mean() > 1.0


async def test_vary_region_paints_in_the_sources_palette() -> None:
    mask = rectangles_mask(SIDE, SIDE, [Box(60, 60, 120, 100)])
    out = pixels(
        await one(
            request(
                Action.VARY_REGION, mask=mask, source_image=_red_source(), prompt="a blue ocean"
            )
        )
    )
    painted = out[np.asarray(decode(mask)) > 0]
    assert painted[:, 0].mean() > painted[:, 2].mean() + 40


# Blend


@pytest.mark.parametrize("count", [2, 5])
async def test_blend_mixes_the_sources_one_image_per_seed(count: int) -> None:
    prompts = ["red desert dunes", "blue ocean at night", "green forest", "snow", "neon city"]
    sources = tuple(_source(p, 5, (300, 200)) for p in prompts[:count])
    out = await images(
        request(Action.BLEND, source_images=sources, width=192, height=128, seeds=(1, 2))
    )
    assert distance(out[0], out[1]) > 2.0
    fitted = [pixels(decode(s).resize((192, 128), Image.Resampling.BILINEAR)) for s in sources]
    means = np.array([f.mean(axis=(0, 1)) for f in fitted])
    unrelated = pixels(decode(_source("a purple castle", 9, (192, 128))))
    for image in out:
        mean = pixels(image).mean(axis=(0, 1))
        assert np.all(mean >= means.min(axis=0) - 4) and np.all(mean <= means.max(axis=0) + 4)
        # The sources show in it: it is nearer them than a picture none of them made.
        near = np.mean([np.abs(pixels(image) - f).mean() for f in fitted])
        assert near < np.mean([np.abs(unrelated - f).mean() for f in fitted])


async def test_blend_refuses_a_single_source() -> None:
    with pytest.raises(PermanentProviderError, match="blend takes 2 to 5"):
        await generate(request(Action.BLEND, source_images=(SOURCE,)))


# Describe


async def describe(image: Image.Image) -> tuple[str, ...]:
    result = await generate(request(Action.DESCRIBE, source_image=encode_png(image)))
    assert result.images == ()
    return result.texts


async def test_describe_gives_four_distinct_prompts_naming_the_dominant_colour() -> None:
    texts = await describe(decode(_red_source()))
    assert len(texts) == 4 and len(set(texts)) == 4
    assert all(t.strip() and "red" in t for t in texts)
    assert all(t.endswith(" --ar 1:1") for t in texts)
    assert texts == await describe(decode(_red_source()))


async def test_describe_reads_the_palette_it_is_given() -> None:
    blue = Image.new("RGB", (300, 200), (30, 70, 200))
    blue.paste((240, 240, 235), (0, 150, 300, 200))
    texts = await describe(blue)
    assert all("blue" in t and "red" not in t for t in texts)
    assert all(t.endswith(" --ar 3:2") for t in texts)


async def test_describe_finds_the_horizon_and_the_light() -> None:
    scene = Image.new("RGB", (256, 128), (90, 150, 230))  # sky
    scene.paste((40, 140, 50), (0, 90, 256, 128))  # a low green ground
    scene.paste((255, 250, 220), (200, 10, 230, 30))  # a sun, upper right
    first, photo, *_ = await describe(scene)
    assert "low horizon" in first and "green" in first
    assert "upper right" in photo
    assert first.endswith(" --ar 2:1")


async def test_describe_of_a_dark_image_says_so() -> None:
    texts = await describe(Image.new("RGB", (128, 128), (12, 14, 30)))
    assert "dark" in texts[0] or "night" in texts[0]


# Tuning and style reference


async def test_tuning_left_out_renders_exactly_as_imagine_did() -> None:
    out = await one(request(tuning={"quality": 2}))
    plain = render_image(PROMPT, None, "none", 1, SIDE, SIDE)
    assert pixels(out).tobytes() == pixels(plain).tobytes()


def _wrap_seam(image: Image.Image) -> float:
    a = pixels(image)
    return float(np.abs(a[:, 0] - a[:, -1]).mean() + np.abs(a[0] - a[-1]).mean())


async def test_tile_makes_the_picture_wrap_seamlessly() -> None:
    plain = await one(request())
    tiled = await one(request(tuning={"tile": True}))
    a = pixels(tiled)
    neighbours = float(np.abs(np.diff(a, axis=1)).mean() + np.abs(np.diff(a, axis=0)).mean())
    assert _wrap_seam(tiled) <= 1.5 * neighbours + 1.0
    assert _wrap_seam(plain) > 3 * _wrap_seam(tiled)


async def test_chaos_spreads_the_seeds_further() -> None:
    def spread(group: list[Image.Image]) -> float:
        return float(np.mean([distance(a, b) for i, a in enumerate(group) for b in group[i + 1 :]]))

    seeds = (1, 2, 3, 4)
    calm = await images(request(seeds=seeds))
    wild = await images(request(seeds=seeds, tuning={"chaos": 100}))
    assert spread(wild) > 1.15 * spread(calm)


async def test_weird_and_stylize_change_the_picture() -> None:
    plain = await one(request(style="cinematic"))
    for tuning in ({"weird": 2000}, {"stylize": 0}, {"stylize": 1000}):
        assert distance(await one(request(style="cinematic", tuning=tuning)), plain) > 3.0


async def test_a_style_reference_lends_its_palette() -> None:
    red = encode_png(Image.new("RGB", (64, 64), (210, 40, 30)))
    plain = pixels(await one(request(prompt="a blue lake")))
    styled = pixels(await one(request(prompt="a blue lake", style_image=red)))

    def redness(a: Pixels) -> float:
        return float((a[:, :, 0] - a[:, :, 2]).mean())

    assert redness(styled) > redness(plain) + 30


# Bad input


@pytest.mark.parametrize("action", [Action.UPSCALE, Action.VARIATION, Action.DESCRIBE])
async def test_a_source_action_without_a_source_is_rejected(action: Action) -> None:
    with pytest.raises(PermanentProviderError, match="needs a source image"):
        await generate(request(action, source_image=None))


async def test_an_undecodable_source_is_rejected() -> None:
    with pytest.raises(PermanentProviderError, match="does not decode"):
        await generate(request(Action.VARIATION, source_image=b"\x89PNG\r\n\x1a\n broken"))


async def test_a_pan_without_a_matching_canvas_is_rejected() -> None:
    with pytest.raises(PermanentProviderError, match="canvas"):
        await generate(request(Action.PAN, canvas=zoom_out_canvas(SIDE, SIDE, 2), width=384))


async def test_actions_render_the_same_in_a_render_process() -> None:
    mask = rectangles_mask(SIDE, SIDE, [Box(10, 10, 60, 60)])
    region = request(Action.VARY_REGION, mask=mask)
    described = request(Action.DESCRIBE)
    provider = BuiltinProvider(processes=1)
    try:
        pooled = await provider.generate(region, _ignore, NoCorrelation())
        texts = (await provider.generate(described, _ignore, NoCorrelation())).texts
    finally:
        provider.close()
    assert pooled.images[0].data == (await generate(region)).images[0].data
    assert texts == (await generate(described)).texts
