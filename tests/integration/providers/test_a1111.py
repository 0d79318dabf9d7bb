"""Contract tests: the AUTOMATIC1111 adapter against the WebUI emulator (a real process
on loopback), and the emulator itself as a stand-in for a WebUI started with --api."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat

from imagegate.domain.actions import Box, Direction, UpscaleMode, pan_canvas, zoom_out_canvas
from imagegate.domain.params import Mode
from imagegate.imaging import rectangles_mask
from imagegate.providers.a1111 import A1111Provider
from imagegate.providers.base import Action, GenerationRequest, NoCorrelation
from imagegate.providers.errors import (
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    RetryableProviderError,
)
from tests.support.adapters import adapter_factory
from tests.support.sandbox import SandboxProcess

Make = Callable[..., A1111Provider]


@pytest.fixture
def sandbox(sandboxes: Callable[[str], SandboxProcess]) -> SandboxProcess:
    return sandboxes("a1111")


@pytest.fixture
async def make(sandbox: SandboxProcess) -> AsyncIterator[Make]:
    async with adapter_factory(A1111Provider, "a1111", sandbox.url, None) as build:
        yield build


@pytest.fixture
def api_auth(sandbox: SandboxProcess) -> Iterator[str]:
    """The emulator started as with ``--api-auth tester:secret``."""
    response = httpx.post(sandbox.url + "/_sandbox/api-auth", json={"api_auth": "tester:secret"})
    assert response.status_code == 200
    yield "tester:secret"
    sandbox.reset()


def request(prompt: str = "a lighthouse at dusk", **fields: Any) -> GenerationRequest:
    values: dict[str, Any] = {
        "negative_prompt": None,
        "width": 256,
        "height": 256,
        "seeds": (7,),
        "style": "none",
        "mode": Mode.DRAFT,
        "model": "default",
        **fields,
    }
    return GenerationRequest(prompt=prompt, **values)


async def ignore(_: float) -> None:
    pass


def png(width: int, height: int, colour: tuple[int, int, int] = (40, 90, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def decoded(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.convert("RGB")


def distance(a: Image.Image, b: Image.Image, box: tuple[int, int, int, int] | None = None) -> float:
    """Mean absolute difference per channel (0-255), over ``box`` if given."""
    if box is not None:
        a, b = a.crop(box), b.crop(box)
    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


async def one_image(provider: A1111Provider, req: GenerationRequest) -> Image.Image:
    [image] = (await provider.generate(req, ignore, NoCorrelation())).images
    assert (image.width, image.height) == (req.width, req.height)
    picture = decoded(image.data)
    assert picture.size == (req.width, req.height)
    return picture


# -- imagine, img2img, variation -------------------------------------------------------


async def test_txt2img_images_are_decoded_with_the_seeds_the_webui_used(
    make: Make, sandbox: SandboxProcess
) -> None:
    result = await make().generate(
        request(seeds=(5, 6), width=300, height=201), ignore, NoCorrelation()
    )

    assert [image.seed for image in result.images] == [5, 6]
    for image in result.images:
        # The WebUI made 304x200 (nearest multiples of 8); the adapter returns the size asked.
        assert (image.width, image.height, image.content_type) == (300, 201, "image/png")
        with Image.open(io.BytesIO(image.data)) as picture:
            assert picture.format == "PNG" and picture.size == (300, 201)
    assert result.provider_job_id is None and result.cost_usd == 0.0
    stats = sandbox.stats()
    assert (stats["submissions"], stats["jobs"]) == (1, 1)


async def test_a_named_model_becomes_a_checkpoint_override(make: Make) -> None:
    result = await make().generate(request(model="sd_xl_base_1.0"), ignore, NoCorrelation())
    assert len(result.images) == 1

    with pytest.raises(PermanentProviderError, match="not found"):
        await make().generate(request(model="no_such_checkpoint"), ignore, NoCorrelation())


async def test_payload_options_override_the_body(make: Make) -> None:
    with pytest.raises(PermanentProviderError, match="Sampler not found"):
        await make(payload={"sampler_name": "Nonexistent"}).generate(
            request(), ignore, NoCorrelation()
        )


async def test_a_payload_that_changes_the_size_is_refused(make: Make) -> None:
    with pytest.raises(PermanentProviderError, match="made 512x256 for 256x256"):
        await make(payload={"width": 512}).generate(request(), ignore, NoCorrelation())


async def test_img2img_sends_the_strength_as_denoising(make: Make) -> None:
    source = png(320, 240)
    near = await one_image(
        make(), request(action=Action.IMG2IMG, source_image=source, strength=0.2, width=320,
                        height=240)
    )  # fmt: skip
    far = await one_image(
        make(), request(action=Action.IMG2IMG, source_image=source, strength=0.9, width=320,
                        height=240)
    )  # fmt: skip

    assert distance(near, decoded(source)) < distance(far, decoded(source)) / 2


async def test_img2img_to_another_size_crops_the_source_rather_than_stretching(
    make: Make,
) -> None:
    # A source half red, half blue, cropped to a square: its middle, both colours.
    wide = Image.new("RGB", (400, 200), (200, 30, 30))
    wide.paste((30, 30, 200), (200, 0, 400, 200))
    buffer = io.BytesIO()
    wide.save(buffer, "PNG")
    req = request(action=Action.IMG2IMG, source_image=buffer.getvalue(), strength=0.05,
                  width=200, height=200)  # fmt: skip

    picture = await one_image(make(), req)

    assert picture.getpixel((20, 100))[0] > 150 and picture.getpixel((180, 100))[2] > 150


async def test_a_variation_moves_as_far_as_its_strength_with_its_seed(make: Make) -> None:
    source = png(256, 192)
    made = []
    for strength, seed in ((0.35, 7), (0.75, 7), (0.35, 7), (0.35, 8)):
        req = request(action=Action.VARIATION, source_image=source, width=256, height=192,
                      strength=strength, seeds=(seed,))  # fmt: skip
        made.append(await one_image(make(), req))
    subtle, strong, again, other = made

    original = decoded(source)
    assert distance(subtle, original) < distance(strong, original)
    assert subtle.tobytes() == again.tobytes() and subtle.tobytes() != other.tobytes()


async def test_a_source_the_webui_cannot_read_is_permanent(make: Make) -> None:
    bad = request(action=Action.IMG2IMG, source_image=b"not an image", strength=0.5)
    with pytest.raises(PermanentProviderError, match="Invalid encoded image"):
        await make().generate(bad, ignore, NoCorrelation())


async def test_out_of_memory_during_img2img_is_retryable(make: Make) -> None:
    req = request("sandbox:fail", action=Action.VARIATION, source_image=png(64, 64), strength=0.5)
    with pytest.raises(RetryableProviderError, match="out of memory"):
        await make().generate(req, ignore, NoCorrelation())


# -- vary region, zoom out, pan --------------------------------------------------------

MASK_BOX = (64, 48, 160, 128)


def region_request(**fields: Any) -> GenerationRequest:
    values: dict[str, Any] = {
        "action": Action.VARY_REGION, "source_image": png(256, 192), "width": 256,
        "height": 192, "mask": rectangles_mask(256, 192, [Box(64, 48, 96, 80)]), **fields,
    }  # fmt: skip
    return request("a red door", **values)


@pytest.mark.parametrize("full_res", [True, False])
async def test_vary_region_repaints_the_mask_and_keeps_every_other_pixel(
    make: Make, full_res: bool
) -> None:
    picture = await one_image(make(inpaint_full_res=full_res), region_request())

    original = decoded(png(256, 192))
    x1, y1, x2, y2 = MASK_BOX
    assert distance(picture, original, (x1 + 8, y1 + 8, x2 - 8, y2 - 8)) > 20
    # mask_blur 4 softens a few pixels around the mask; beyond that, the source exactly.
    outside = Image.new("L", picture.size, 255)
    outside.paste(0, (x1 - 16, y1 - 16, x2 + 16, y2 + 16))
    changed = ImageChops.difference(picture, original)
    assert Image.composite(changed, Image.new("RGB", picture.size), outside).getbbox() is None


async def test_a_mask_of_another_size_is_refused_before_the_call(
    make: Make, sandbox: SandboxProcess
) -> None:
    wrong = region_request(mask=rectangles_mask(128, 96, [Box(0, 0, 10, 10)]))
    with pytest.raises(PermanentProviderError, match="mask is 128x96, the source 256x192"):
        await make().generate(wrong, ignore, NoCorrelation())
    assert sandbox.stats().get("submissions", 0) == 0


async def test_zoom_out_paints_around_the_shrunk_source(make: Make) -> None:
    canvas = zoom_out_canvas(256, 192, 2.0)
    req = request(action=Action.ZOOM_OUT, source_image=png(256, 192), canvas=canvas,
                  width=256, height=192)  # fmt: skip

    picture = await one_image(make(), req)

    box = canvas.source
    inner = (box.left + 16, box.top + 16, box.right - 16, box.bottom - 16)
    assert distance(picture, decoded(png(256, 192)), inner) == 0
    assert distance(picture, decoded(png(256, 192)), (0, 0, 256, box.top - 8)) > 20


async def test_pan_keeps_the_source_pixel_for_pixel_beside_the_new_side(make: Make) -> None:
    canvas = pan_canvas(128, 96, Direction.LEFT)
    req = request(action=Action.PAN, source_image=png(128, 96), canvas=canvas,
                  width=canvas.width, height=canvas.height)  # fmt: skip

    picture = await one_image(make(), req)

    left = canvas.source.left
    source = decoded(png(128, 96))
    assert picture.size == (192, 96) and left == 64
    # Beyond the mask's blur at the seam, the source as it was.
    assert (
        picture.crop((left + 16, 0, 192, 96)).tobytes() == source.crop((16, 0, 128, 96)).tobytes()
    )
    assert distance(picture.crop((0, 0, left - 8, 96)), source.crop((0, 0, left - 8, 96))) > 20


# -- upscale ---------------------------------------------------------------------------


async def test_upscale_returns_exactly_factor_times_the_source(make: Make) -> None:
    # 61x45 x2: the upscaler floors to 120x88; the adapter returns the 122x90 asked.
    odd = request(action=Action.UPSCALE, source_image=png(61, 45), upscale_factor=2,
                  upscale_mode=UpscaleMode.SUBTLE, width=122, height=90)  # fmt: skip
    picture = await one_image(make(), odd)
    assert picture.getpixel((0, 0)) == picture.getpixel((121, 89)) == (40, 90, 200)

    four = request(action=Action.UPSCALE, source_image=png(64, 48), upscale_factor=4,
                   upscale_mode=UpscaleMode.SUBTLE, width=256, height=192)  # fmt: skip
    await one_image(make(), four)


async def test_a_creative_upscale_adds_an_img2img_pass(make: Make, sandbox: SandboxProcess) -> None:
    fields: dict[str, Any] = {
        "action": Action.UPSCALE, "source_image": png(64, 48), "upscale_factor": 2,
        "width": 128, "height": 96,
    }  # fmt: skip
    subtle = await one_image(make(), request(upscale_mode=UpscaleMode.SUBTLE, **fields))
    assert sandbox.stats()["jobs"] == 1
    creative = await one_image(make(), request(upscale_mode=UpscaleMode.CREATIVE, **fields))

    assert sandbox.stats()["jobs"] == 3  # the subtle one, then extras + img2img
    # Denoised at 0.3: near the enlarged source, yet not the same.
    assert 0 < distance(creative, subtle) < 0.5 * distance(creative, Image.new("RGB", (128, 96)))


async def test_an_unknown_upscaler_is_permanent(make: Make) -> None:
    upscale = request(action=Action.UPSCALE, source_image=png(64, 48), upscale_factor=2,
                      width=128, height=96)  # fmt: skip
    with pytest.raises(PermanentProviderError, match="could not find upscaler"):
        await make(upscaler="Imaginary 9x").generate(upscale, ignore, NoCorrelation())
    # The same through a style preset's options, over the configured ones.
    preset = replace(upscale, options={"upscaler": "Imaginary 9x"})
    with pytest.raises(PermanentProviderError, match="could not find upscaler"):
        await make().generate(preset, ignore, NoCorrelation())


async def test_the_none_upscaler_enlarges_nothing_and_is_refused(make: Make) -> None:
    upscale = request(action=Action.UPSCALE, source_image=png(64, 48), upscale_factor=2,
                      width=128, height=96)  # fmt: skip
    with pytest.raises(PermanentProviderError, match=r"made 64x48 of an upscale to 128x96"):
        await make(upscaler="None").generate(upscale, ignore, NoCorrelation())


# -- describe, blend, options ----------------------------------------------------------


async def test_describe_composes_four_prompts_from_the_caption(make: Make) -> None:
    req = request(action=Action.DESCRIBE, source_image=png(300, 200, (30, 60, 210)))
    result = await make().generate(req, ignore, NoCorrelation())

    assert result.images == () and len(result.texts) == 4 == len(set(result.texts))
    assert result.texts[0].startswith("a wide picture of blue")
    assert result.texts[1] == "a wide picture of blue shapes"

    tags = await make(interrogator="deepdanbooru").generate(req, ignore, NoCorrelation())
    assert tags.texts[0].startswith("blue_theme") and len(set(tags.texts)) == 4


async def test_blend_is_not_offered(make: Make) -> None:
    provider = make()
    assert Action.BLEND not in provider.capabilities().actions
    with pytest.raises(PermanentProviderError, match="blend is not supported"):
        await provider.generate(
            request(action=Action.BLEND, source_images=(png(64, 64), png(64, 64))),
            ignore,
            NoCorrelation(),
        )


async def test_a_preset_option_the_adapter_does_not_know_is_permanent(make: Make) -> None:
    with pytest.raises(PermanentProviderError, match=r"options\.steps: unknown option"):
        await make().generate(request(options={"steps": 3}), ignore, NoCorrelation())


# -- progress, correlation, interrupt --------------------------------------------------


async def test_progress_is_polled_while_the_call_runs_and_never_goes_back(
    make: Make, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=800)
    seen: list[float] = []

    async def progress(value: float) -> None:
        seen.append(value)

    await make().generate(request(), progress, NoCorrelation())
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert any(0 < value < 1 for value in seen), seen
    assert sandbox.stats()["polls"] >= 2


async def test_there_is_no_job_id_so_an_earlier_attempt_is_submitted_again(
    make: Make, sandbox: SandboxProcess
) -> None:
    correlation = NoCorrelation(existing="anything")
    result = await make().generate(request(), ignore, correlation)
    assert correlation.recorded == [] and result.provider_job_id is None
    assert sandbox.stats()["submissions"] == 1


async def test_interrupt_ends_the_running_generation_early(
    make: Make, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=20_000)
    provider = make()
    started = time.monotonic()
    running = asyncio.create_task(provider.generate(request(), ignore, NoCorrelation()))
    async with httpx.AsyncClient(base_url=sandbox.url) as client:
        while (await client.get("/sdapi/v1/progress")).json()["state"]["job_count"] == 0:
            assert time.monotonic() - started < 10, "the generation never started"
            await asyncio.sleep(0.02)
    await provider.interrupt()
    result = await asyncio.wait_for(running, timeout=10)
    assert len(result.images) == 1 and time.monotonic() - started < 15


# -- faults ----------------------------------------------------------------------------


async def test_429_is_rate_limited_with_retry_after(make: Make) -> None:
    with pytest.raises(RateLimitedError) as caught:
        await make().generate(request("sandbox:429"), ignore, NoCorrelation())
    assert caught.value.retry_after == 1.0


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(make: Make, status: int) -> None:
    with pytest.raises(RetryableProviderError) as caught:
        await make().generate(request(f"sandbox:{status}"), ignore, NoCorrelation())
    assert not isinstance(caught.value, RateLimitedError)


async def test_out_of_memory_is_retryable(make: Make) -> None:
    with pytest.raises(RetryableProviderError, match="out of memory"):
        await make().generate(request("sandbox:fail"), ignore, NoCorrelation())


async def test_a_hanging_call_is_retryable_within_the_timeout(make: Make) -> None:
    started = time.monotonic()
    with pytest.raises(RetryableProviderError, match="timed out"):
        await make(timeout_s=1.0).generate(request("sandbox:timeout"), ignore, NoCorrelation())
    assert time.monotonic() - started < 5


async def test_a_malformed_body_is_an_unclassified_error(make: Make) -> None:
    with pytest.raises(ProviderError) as caught:
        await make().generate(request("sandbox:malformed"), ignore, NoCorrelation())
    assert type(caught.value) is ProviderError and caught.value.retryable


async def test_the_webui_has_no_moderation_to_trigger(make: Make) -> None:
    # The marker asks for a moderation verdict; a WebUI has none to give.
    result = await make().generate(request("sandbox:moderate"), ignore, NoCorrelation())
    assert len(result.images) == 1


async def test_credentials_are_required_when_the_webui_has_api_auth(
    make: Make, api_auth: str
) -> None:
    for key in (None, "tester:wrong"):
        with pytest.raises(PermanentProviderError, match="401"):
            await make(api_key=key).generate(request(), ignore, NoCorrelation())
    result = await make(api_key=api_auth).generate(request(), ignore, NoCorrelation())
    assert len(result.images) == 1


# -- the emulator itself, over HTTP ----------------------------------------------------


def test_emulator_answers_as_the_webui_does(sandbox: SandboxProcess) -> None:
    response = httpx.post(
        sandbox.url + "/sdapi/v1/txt2img",
        json={
            "prompt": "a fox",
            "seed": 11,
            "batch_size": 2,
            "width": 130,
            "height": 64,
            "steps": 3,
            "sampler_name": "DPM++ 2M",
        },
        timeout=10,
    )
    assert response.status_code == 200
    body = response.json()
    info = json.loads(body["info"])
    assert info["all_seeds"] == [11, 12] and (info["width"], info["height"]) == (128, 64)
    assert body["parameters"]["sampler_name"] == "DPM++ 2M" and len(body["images"]) == 2
    idle = httpx.get(sandbox.url + "/sdapi/v1/progress", timeout=10).json()
    assert idle["progress"] == 0 and idle["state"]["job_count"] == 0


def test_emulator_reports_validation_and_webui_errors_in_their_shapes(
    sandbox: SandboxProcess,
) -> None:
    invalid = httpx.post(sandbox.url + "/sdapi/v1/txt2img", json={"width": "wide"}, timeout=10)
    assert invalid.status_code == 422
    [problem] = invalid.json()["detail"]
    assert problem["loc"] == ["body", "width"]
    too_big = httpx.post(
        sandbox.url + "/sdapi/v1/extra-single-image",
        json={"image": "", "upscaling_resize": 9},
        timeout=10,
    )
    assert too_big.status_code == 422
    sampler = httpx.post(
        sandbox.url + "/sdapi/v1/txt2img", json={"sampler_name": "Nope"}, timeout=10
    )
    assert sampler.status_code == 404
    assert sampler.json() == {
        "error": "HTTPException",
        "detail": "Sampler not found",
        "body": "",
        "errors": "404: Sampler not found",
    }


def test_emulator_basic_auth_matches_api_auth(sandbox: SandboxProcess, api_auth: str) -> None:
    missing = httpx.get(sandbox.url + "/sdapi/v1/sd-models", timeout=10)
    wrong = httpx.get(sandbox.url + "/sdapi/v1/sd-models", auth=("tester", "nope"), timeout=10)
    right = httpx.get(sandbox.url + "/sdapi/v1/sd-models", auth=("tester", "secret"), timeout=10)
    assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 200)
    assert wrong.headers["www-authenticate"] == "Basic"
    assert wrong.json()["detail"] == "Incorrect username or password"
    assert [m["model_name"] for m in right.json()] == ["v1-5-pruned-emaonly", "sd_xl_base_1.0"]


def test_emulator_counts_submissions_and_jobs(sandbox: SandboxProcess) -> None:
    refused = httpx.post(sandbox.url + "/sdapi/v1/txt2img", json={"prompt": "sandbox:503"})
    done = httpx.post(sandbox.url + "/sdapi/v1/txt2img", json={"prompt": "ok", "steps": 2})
    assert (refused.status_code, done.status_code) == (503, 200)
    stats = sandbox.stats()
    assert (stats["submissions"], stats["jobs"]) == (2, 1)


def b64png(width: int, height: int, colour: tuple[int, int, int] = (40, 90, 200)) -> str:
    return base64.b64encode(png(width, height, colour)).decode()


def extras(sandbox: SandboxProcess, **fields: Any) -> httpx.Response:
    body = {"image": b64png(61, 45), "upscaler_1": "Lanczos", **fields}
    return httpx.post(sandbox.url + "/sdapi/v1/extra-single-image", json=body, timeout=10)


def image_of(answer: httpx.Response, key: str = "image") -> Image.Image:
    assert answer.status_code == 200, answer.text
    encoded = answer.json()[key]
    return decoded(base64.b64decode(encoded[0] if isinstance(encoded, list) else encoded))


def test_emulator_extras_sizes_follow_the_webui_upscaler(sandbox: SandboxProcess) -> None:
    # Each side floored to a multiple of 8, as Upscaler.upscale does.
    assert image_of(extras(sandbox, upscaling_resize=2)).size == (120, 88)
    to_size = {"resize_mode": 1, "upscaling_resize_w": 122, "upscaling_resize_h": 90}
    assert image_of(extras(sandbox, upscaling_crop=False, **to_size)).size == (120, 88)
    cropped = image_of(extras(sandbox, **to_size))  # crop to fit: centred on black
    assert cropped.size == (122, 90) and cropped.getpixel((0, 0)) == (0, 0, 0)
    assert cropped.getpixel((61, 45)) == (40, 90, 200)
    assert image_of(extras(sandbox, upscaler_1="None")).size == (61, 45)
    missing = extras(sandbox, upscaler_2="Nope")
    assert (missing.status_code, missing.json()) == (500, {
        "error": "AssertionError", "detail": "", "body": "",
        "errors": "could not find upscaler named Nope",
    })  # fmt: skip


def test_emulator_inpaints_only_the_masked_area_at_the_init_size(sandbox: SandboxProcess) -> None:
    mask = rectangles_mask(200, 100, [Box(20, 20, 30, 30)])
    body: dict[str, Any] = {
        "prompt": "a window", "init_images": [b64png(200, 100)], "width": 64, "height": 64,
        "mask": base64.b64encode(mask).decode(), "steps": 2, "seed": 3,
    }  # fmt: skip
    url = sandbox.url + "/sdapi/v1/img2img"

    only_masked = image_of(httpx.post(url, json=body, timeout=10), "images")
    whole = image_of(
        httpx.post(url, json={**body, "inpaint_full_res": False}, timeout=10), "images"
    )

    assert only_masked.size == (200, 100) and whole.size == (64, 64)
    assert only_masked.getpixel((150, 80)) == (40, 90, 200) != only_masked.getpixel((35, 35))


def test_emulator_refuses_img2img_as_the_webui_does(sandbox: SandboxProcess) -> None:
    url = sandbox.url + "/sdapi/v1/img2img"
    bad_mask = httpx.post(url, json={"init_images": [b64png(8, 8)], "mask": "%%"}, timeout=10)
    assert (bad_mask.status_code, bad_mask.json()["detail"]) == (500, "Invalid encoded image")
    no_init = httpx.post(url, json={"prompt": "x"}, timeout=10)
    assert (no_init.status_code, no_init.json()["detail"]) == (404, "Init image not found")
    typed = httpx.post(url, json={"init_images": [], "inpainting_fill": "lots"}, timeout=10)
    assert typed.status_code == 422
    assert [problem["loc"] for problem in typed.json()["detail"]] == [["body", "inpainting_fill"]]


def test_emulator_interrogates_the_colours(sandbox: SandboxProcess) -> None:
    url = sandbox.url + "/sdapi/v1/interrogate"
    red = httpx.post(url, json={"image": b64png(40, 80, (210, 20, 20))}, timeout=10)
    assert red.status_code == 200
    assert red.json()["caption"].startswith("a tall picture of red shapes")
    tags = httpx.post(url, json={"image": b64png(40, 40), "model": "deepdanbooru"}, timeout=10)
    assert tags.json()["caption"].split(", ")[0] == "blue_theme"
    unknown = httpx.post(url, json={"image": b64png(8, 8), "model": "blip"}, timeout=10)
    assert (unknown.status_code, unknown.json()["detail"]) == (404, "Model not found")
    empty = httpx.post(url, json={}, timeout=10)
    assert (empty.status_code, empty.json()["detail"]) == (500, "Invalid encoded image")
