"""Contract tests: the OpenAI adapter against the OpenAI Images emulator (a real
process on loopback), and the emulator itself as a stand-in for api.openai.com."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from PIL import Image

from imagegate.domain.actions import Box, Direction, pan_canvas, zoom_out_canvas
from imagegate.domain.params import Mode, OutputFormat
from imagegate.imaging import rectangles_mask
from imagegate.providers.base import Action, GenerationRequest, NoCorrelation
from imagegate.providers.errors import (
    ModeratedError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    RetryableProviderError,
)
from imagegate.providers.http import ProviderConfig, ResultExpiredError
from imagegate.providers.openai import OpenAIProvider, duration_s, snap_size
from imagegate.sandbox.openai import API_KEY
from tests.support.adapters import adapter_factory
from tests.support.pictures import BLUE, YELLOW, decoded, near, two_tone
from tests.support.sandbox import SandboxProcess

Make = Callable[..., OpenAIProvider]
GPT_SIZES = ((1024, 1024), (1536, 1024), (1024, 1536))


@pytest.fixture
def sandbox(sandboxes: Callable[[str], SandboxProcess]) -> SandboxProcess:
    return sandboxes("openai")


@pytest.fixture
async def make(sandbox: SandboxProcess) -> AsyncIterator[Make]:
    async with adapter_factory(OpenAIProvider, "openai", sandbox.url + "/v1", API_KEY) as build:
        yield build


def request(prompt: str = "a lighthouse at dusk", **fields: Any) -> GenerationRequest:
    values: dict[str, Any] = {
        "negative_prompt": None, "width": 1024, "height": 1024, "seeds": (7,),
        "style": "none", "mode": Mode.DRAFT, "model": "gpt-image-1", **fields,
    }  # fmt: skip
    return GenerationRequest(prompt=prompt, **values)


class Progress:
    def __init__(self) -> None:
        self.values: list[float] = []

    async def __call__(self, fraction: float) -> None:
        self.values.append(fraction)


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 160)).save(out, format="PNG")
    return out.getvalue()


@asynccontextmanager
async def only(*models: str, sandbox: SandboxProcess) -> AsyncIterator[OpenAIProvider]:
    config = ProviderConfig(name="openai", type="openai", base_url=sandbox.url + "/v1",
                            api_key=API_KEY, models=models)  # fmt: skip
    provider = OpenAIProvider(config)
    try:
        yield provider
    finally:
        await provider.aclose()


def form_png(width: int, height: int, mode: str = "RGBA", alpha: int = 255) -> bytes:
    out = io.BytesIO()
    colour = (40, 90, 160, alpha)[: len(mode)] if mode != "L" else 128
    Image.new(mode, (width, height), colour).save(out, format="PNG")
    return out.getvalue()


def api(sandbox: SandboxProcess, key: str | None = API_KEY) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=sandbox.url + "/v1", headers=headers, timeout=10)


# The adapter against the emulator


async def test_gpt_image_returns_each_image_at_the_snapped_size(
    make: Make, sandbox: SandboxProcess
) -> None:
    progress = Progress()
    result = await make().generate(
        request(width=1200, height=800, seeds=(3, 4), output_format=OutputFormat.WEBP),
        progress, NoCorrelation(),
    )  # fmt: skip
    assert [image.seed for image in result.images] == [3, 4]
    for image in result.images:
        assert (image.width, image.height, image.content_type) == (1536, 1024, "image/webp")
        with Image.open(io.BytesIO(image.data)) as decoded:
            assert (decoded.format, decoded.size) == ("WEBP", (1536, 1024))
    assert result.provider_job_id is not None and result.provider_job_id.startswith("req_")
    assert progress.values == [1.0]
    assert sandbox.stats()["submissions"] == 1  # n=2 in one call


async def test_dalle3_makes_one_call_per_image(make: Make, sandbox: SandboxProcess) -> None:
    progress = Progress()
    result = await make().generate(
        request(model="dall-e-3", width=1600, height=900, seeds=(1, 2, 3)), progress,
        NoCorrelation(),
    )  # fmt: skip
    assert [(i.width, i.height, i.seed) for i in result.images] == [
        (1792, 1024, 1), (1792, 1024, 2), (1792, 1024, 3),
    ]  # fmt: skip
    assert all(image.content_type == "image/png" for image in result.images)
    assert progress.values == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert result.provider_job_id is not None
    assert len(set(result.provider_job_id.split(","))) == 3
    assert sandbox.stats()["submissions"] == 3


async def test_dalle3_url_outputs_are_downloaded(make: Make, sandbox: SandboxProcess) -> None:
    result = await make(response_format="url").generate(
        request(model="dall-e-3", width=768, height=1344), Progress(), NoCorrelation()
    )
    (image,) = result.images
    assert (image.width, image.height) == (1024, 1792)
    assert Image.open(io.BytesIO(image.data)).size == (1024, 1792)


async def test_vary_edits_the_source_with_gpt_image(make: Make, sandbox: SandboxProcess) -> None:
    varied = request(action=Action.VARIATION, source_image=png(640, 480), strength=0.3, seeds=(9,))
    result = await make().generate(varied, Progress(), NoCorrelation())
    assert [(i.width, i.height, i.seed) for i in result.images] == [(1024, 1024, 9)]
    assert sandbox.stats()["submissions"] == 1


async def test_vary_with_dalle2_sends_a_square_png_to_variations(make: Make) -> None:
    varied = request(
        model="dall-e-2", action=Action.VARIATION, source_image=png(300, 200), seeds=(1, 2),
        width=512, height=512,
    )  # fmt: skip
    result = await make().generate(varied, Progress(), NoCorrelation())
    assert [(i.width, i.height) for i in result.images] == [(512, 512), (512, 512)]


async def test_what_openai_cannot_do_is_refused_before_any_call(
    make: Make, sandbox: SandboxProcess
) -> None:
    provider = make()
    for action in (Action.UPSCALE, Action.DESCRIBE):
        with pytest.raises(
            PermanentProviderError, match=f"no configured OpenAI model can {action}"
        ):
            await provider.generate(
                request(action=action, source_image=png(64, 64)), Progress(), NoCorrelation()
            )
    with pytest.raises(PermanentProviderError, match="vary_region needs a mask"):
        await provider.generate(
            request(action=Action.VARY_REGION, source_image=png(64, 64)), Progress(),
            NoCorrelation(),
        )  # fmt: skip
    async with only("dall-e-2", "dall-e-3", sandbox=sandbox) as dalle:
        for action in (Action.IMG2IMG, Action.BLEND):
            with pytest.raises(PermanentProviderError, match=f"can {action}"):
                await dalle.generate(
                    request(model="dall-e-2", action=action, source_image=png(64, 64),
                            source_images=(png(64, 64), png(64, 64))),
                    Progress(), NoCorrelation(),
                )  # fmt: skip
    assert sandbox.stats().get("requests", 0) == 0


async def test_a_synchronous_call_records_nothing_and_resumes_nothing(
    make: Make, sandbox: SandboxProcess
) -> None:
    correlation = NoCorrelation(existing="req_from_an_earlier_attempt")
    result = await make().generate(request(), Progress(), correlation)
    assert len(result.images) == 1
    assert correlation.recorded == []
    assert sandbox.stats()["submissions"] == 1


async def test_capabilities_are_honest(make: Make, sandbox: SandboxProcess) -> None:
    capabilities = make().capabilities()
    assert capabilities.seeds is False and capabilities.negative_prompt is False
    assert set(capabilities.models) == {"gpt-image-1", "dall-e-3", "dall-e-2"}
    assert capabilities.actions == (
        Action.IMAGINE, Action.IMG2IMG, Action.VARIATION, Action.ZOOM_OUT, Action.PAN,
        Action.VARY_REGION, Action.BLEND,
    )  # fmt: skip
    assert capabilities.tuning == frozenset() and not capabilities.style_reference
    async with only("dall-e-3", sandbox=sandbox) as dalle3:
        assert dalle3.capabilities().actions == (Action.IMAGINE,)
    async with only("dall-e-2", sandbox=sandbox) as dalle2:
        assert set(dalle2.capabilities().actions) == {
            Action.IMAGINE, Action.VARIATION, Action.ZOOM_OUT, Action.PAN, Action.VARY_REGION,
        }  # fmt: skip
    assert make().estimate_credits(request(seeds=(1, 2), mode=Mode.STANDARD)) == 4


def test_sizes_snap_to_the_nearest_aspect_then_area() -> None:
    assert snap_size(GPT_SIZES, 1024, 1024) == (1024, 1024)
    assert snap_size(GPT_SIZES, 1920, 1080) == (1536, 1024)
    assert snap_size(GPT_SIZES, 512, 2048) == (1024, 1536)
    squares = ((256, 256), (512, 512), (1024, 1024))
    assert snap_size(squares, 512, 512) == (512, 512)
    assert snap_size(squares, 300, 200) == (256, 256)


def test_rate_limit_reset_durations() -> None:
    assert duration_s("6m0s") == 360.0
    assert duration_s("1.5s") == 1.5
    assert duration_s("20ms") == pytest.approx(0.02)
    assert duration_s("") is None


# Each action against the emulator: sizes exact, the kept pixels kept


@pytest.mark.parametrize("model", ["gpt-image-1", "dall-e-2"])
async def test_vary_region_repaints_only_the_masked_half(
    make: Make, sandbox: SandboxProcess, model: str
) -> None:
    # The right (yellow) half is masked: it is repainted, the blue half is kept.
    mask = rectangles_mask(96, 64, [Box(48, 0, 48, 64)])
    job = request(model=model, action=Action.VARY_REGION, source_image=two_tone(96, 64),
                  mask=mask, width=96, height=64, seeds=(5, 6))  # fmt: skip
    result = await make().generate(job, Progress(), NoCorrelation())
    assert [(i.width, i.height, i.seed) for i in result.images] == [(96, 64, 5), (96, 64, 6)]
    for image in result.images:
        picture = decoded(image)
        assert picture.size == (96, 64)
        assert near(picture.getpixel((12, 32)), BLUE)
        assert not near(picture.getpixel((84, 32)), YELLOW)
    assert sandbox.stats()["submissions"] == 1


@pytest.mark.parametrize("model", ["gpt-image-1", "dall-e-2"])
async def test_zoom_out_keeps_the_source_in_the_centre(make: Make, model: str) -> None:
    canvas = zoom_out_canvas(96, 96, 2.0)
    source = png(96, 96)  # all one colour: (40, 90, 160)
    job = request(model=model, action=Action.ZOOM_OUT, source_image=source, canvas=canvas,
                  width=96, height=96)  # fmt: skip
    (image,) = (await make().generate(job, Progress(), NoCorrelation())).images
    picture = decoded(image)
    assert picture.size == (96, 96)
    assert near(picture.getpixel((48, 48)), (40, 90, 160))
    assert not near(picture.getpixel((4, 4)), (40, 90, 160))  # the painted border


async def test_pan_extends_the_canvas_and_keeps_the_source(make: Make) -> None:
    canvas = pan_canvas(64, 64, Direction.LEFT)
    job = request(action=Action.PAN, direction=Direction.LEFT, source_image=png(64, 64),
                  canvas=canvas, width=canvas.width, height=canvas.height)  # fmt: skip
    (image,) = (await make().generate(job, Progress(), NoCorrelation())).images
    picture = decoded(image)
    assert picture.size == (canvas.width, canvas.height) and canvas.width > 64
    assert near(picture.getpixel((canvas.width - 16, 32)), (40, 90, 160))  # the source
    assert not near(picture.getpixel((2, 32)), (40, 90, 160))  # the new left side


@pytest.mark.parametrize("action", [Action.IMG2IMG, Action.VARIATION])
async def test_img2img_and_variation_edit_the_source_at_the_exact_size(
    make: Make, action: Action
) -> None:
    job = request(action=action, source_image=two_tone(80, 60), strength=0.35, width=80,
                  height=60, seeds=(1, 2, 3))  # fmt: skip
    result = await make().generate(job, Progress(), NoCorrelation())
    assert [decoded(i).size for i in result.images] == [(80, 60)] * 3


async def test_a_variation_of_a_dalle3_image_is_made_by_gpt_image(
    make: Make, sandbox: SandboxProcess
) -> None:
    job = request(model="dall-e-3", action=Action.VARIATION, source_image=png(64, 64),
                  width=64, height=64, output_format=OutputFormat.WEBP)  # fmt: skip
    (image,) = (await make().generate(job, Progress(), NoCorrelation())).images
    assert (image.content_type, decoded(image).size) == ("image/webp", (64, 64))


async def test_blend_sends_every_image_to_gpt_image(make: Make, sandbox: SandboxProcess) -> None:
    sources = (two_tone(40, 40), png(64, 32), two_tone(30, 60))
    job = request("", action=Action.BLEND, source_images=sources, width=96, height=64)
    (image,) = (await make().generate(job, Progress(), NoCorrelation())).images
    assert decoded(image).size == (96, 64)
    assert sandbox.stats()["submissions"] == 1


async def test_a_moderated_edit_is_never_retried(make: Make) -> None:
    mask = rectangles_mask(64, 64, [Box(0, 0, 32, 32)])
    job = request("a fox sandbox:moderate", action=Action.VARY_REGION, source_image=png(64, 64),
                  mask=mask, width=64, height=64)  # fmt: skip
    with pytest.raises(ModeratedError) as caught:
        await make().generate(job, Progress(), NoCorrelation())
    assert not caught.value.retryable and caught.value.provider_job_id


async def test_an_edit_the_api_refuses_is_permanent(make: Make) -> None:
    # dall-e-2 limits prompts to 1,000 characters; the emulator answers 400.
    job = request("x" * 1001, model="dall-e-2", action=Action.VARY_REGION,
                  source_image=png(64, 64), mask=rectangles_mask(64, 64, [Box(0, 0, 8, 8)]),
                  width=64, height=64)  # fmt: skip
    with pytest.raises(PermanentProviderError, match="string_above_max_length"):
        await make().generate(job, Progress(), NoCorrelation())


# Injected faults, each read into the taxonomy


async def test_429_is_rate_limited_with_retry_after(make: Make, sandbox: SandboxProcess) -> None:
    sandbox.faults(error_status=429, error_count=1, retry_after_s=7)
    with pytest.raises(RateLimitedError) as caught:
        await make().generate(request(), Progress(), NoCorrelation())
    assert caught.value.retry_after == 7.0
    assert caught.value.provider_job_id is not None  # the x-request-id
    assert sandbox.stats().get("submissions", 0) == 0


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(make: Make, status: int) -> None:
    with pytest.raises(RetryableProviderError) as caught:
        await make().generate(request(f"a fox sandbox:{status}"), Progress(), NoCorrelation())
    assert not isinstance(caught.value, RateLimitedError)
    assert f"HTTP {status}" in caught.value.message


async def test_a_hung_call_fails_retryable_within_the_timeout(make: Make) -> None:
    started = time.monotonic()
    with pytest.raises(RetryableProviderError, match="timed out"):
        await make(timeout_s=1.0).generate(
            request("a fox sandbox:timeout"), Progress(), NoCorrelation()
        )
    assert time.monotonic() - started < 5


async def test_a_malformed_body_is_an_unclassified_error(make: Make) -> None:
    with pytest.raises(ProviderError) as caught:
        await make().generate(request("a fox sandbox:malformed"), Progress(), NoCorrelation())
    assert caught.value.retryable
    assert not isinstance(caught.value, PermanentProviderError | ModeratedError)


@pytest.mark.parametrize(("model", "code"), [
    ("gpt-image-1", "moderation_blocked"), ("dall-e-3", "content_policy_violation"),
])  # fmt: skip
async def test_moderation_is_never_retried(make: Make, model: str, code: str) -> None:
    with pytest.raises(ModeratedError) as caught:
        await make().generate(
            request("a fox sandbox:moderate", model=model), Progress(), NoCorrelation()
        )
    assert not caught.value.retryable
    assert caught.value.provider_job_id is not None


async def test_an_expired_result_url(make: Make) -> None:
    with pytest.raises(ResultExpiredError):
        await make(response_format="url").generate(
            request("a fox sandbox:expired", model="dall-e-3"), Progress(), NoCorrelation()
        )


async def test_a_failed_generation_is_retryable(make: Make) -> None:
    with pytest.raises(RetryableProviderError, match="HTTP 500"):
        await make().generate(request("a fox sandbox:fail"), Progress(), NoCorrelation())


async def test_a_wrong_key_is_permanent(make: Make, sandbox: SandboxProcess) -> None:
    with pytest.raises(PermanentProviderError, match="invalid_api_key"):
        await make(api_key="sk-not-the-key").generate(request(), Progress(), NoCorrelation())
    assert sandbox.stats().get("submissions", 0) == 0


async def test_a_request_the_api_rejects_is_permanent(make: Make) -> None:
    with pytest.raises(PermanentProviderError, match="invalid_value"):
        await make(quality={"draft": "ultra"}).generate(request(), Progress(), NoCorrelation())


# The emulator itself, as a user's integration sees it


def test_emulator_auth_answers_openais_401s(sandbox: SandboxProcess) -> None:
    body = {"model": "gpt-image-1", "prompt": "a fox"}
    with api(sandbox, key=None) as client:
        missing = client.post("/images/generations", json=body)
    with api(sandbox, key="sk-wrong-1234") as client:
        wrong = client.post("/images/generations", json=body)
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["error"]["code"] is None
    assert wrong.json()["error"] == {
        "message": wrong.json()["error"]["message"], "type": "invalid_request_error",
        "param": None, "code": "invalid_api_key",
    }  # fmt: skip
    assert "sk-wrong-1234" not in wrong.json()["error"]["message"]  # masked, as OpenAI does


def test_emulator_validates_like_the_api(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        n = client.post("/images/generations", json={"model": "dall-e-3", "prompt": "x", "n": 2})
        size = client.post("/images/generations", json={"model": "gpt-image-1", "prompt": "x",
                                                        "size": "1792x1024"})  # fmt: skip
        url = client.post("/images/generations", json={"model": "gpt-image-1", "prompt": "x",
                                                       "response_format": "url"})  # fmt: skip
    assert n.status_code == size.status_code == url.status_code == 400
    assert n.json()["error"]["param"] == "n"
    assert (size.json()["error"]["param"], size.json()["error"]["code"]) == (
        "size",
        "invalid_value",
    )
    assert url.json()["error"]["code"] == "unknown_parameter"
    assert n.headers["x-request-id"].startswith("req_")


def test_emulator_counts_requests_submissions_and_jobs(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        ok = client.post("/images/generations", json={"model": "dall-e-2", "prompt": "x", "n": 2})
        refused = client.post("/images/generations", json={"prompt": "x sandbox:503"})
    assert ok.status_code == 200 and refused.status_code == 503
    assert int(ok.headers["x-ratelimit-remaining-requests"]) < int(
        ok.headers["x-ratelimit-limit-requests"]
    )
    stats = sandbox.stats()
    assert (stats["requests"], stats["submissions"], stats["jobs"]) == (2, 1, 1)
    assert stats["images"] == 2


def test_emulator_url_outputs_expire(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        fresh = client.post("/images/generations", json={"model": "dall-e-3", "prompt": "x"})
        stale = client.post("/images/generations",
                            json={"model": "dall-e-3", "prompt": "x sandbox:expired"})  # fmt: skip
        assert client.get(fresh.json()["data"][0]["url"]).headers["content-type"] == "image/png"
        expired = client.get(stale.json()["data"][0]["url"])
    assert expired.status_code == 403
    assert "<Code>AuthenticationFailed</Code>" in expired.text


def test_emulator_checks_edit_files_like_the_api(sandbox: SandboxProcess) -> None:
    def edit(model: str, files: list[Any], **fields: Any) -> dict[str, Any]:
        with api(sandbox) as client:
            response = client.post(
                "/images/edits", data={"model": model, "prompt": "a boat", **fields}, files=files
            )
        assert response.status_code == 400, response.text
        error: dict[str, Any] = response.json()["error"]
        return error

    image = ("image", ("in.png", form_png(64, 64), "image/png"))
    small_mask = edit("gpt-image-1", [image, ("mask", ("m.png", form_png(32, 32), "image/png"))])
    assert small_mask["param"] == "mask" and "does not match image size" in small_mask["message"]
    no_alpha = edit("gpt-image-1", [image, ("mask", ("m.png", form_png(64, 64, "L"), "image/png"))])
    assert no_alpha["param"] == "mask" and "alpha" in no_alpha["message"]
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64)).save(jpeg, format="JPEG")
    jpeg_mask = edit("gpt-image-1", [image, ("mask", ("m.jpg", jpeg.getvalue(), "image/jpeg"))])
    assert jpeg_mask["param"] == "mask"
    many = [("image[]", (f"{i}.png", form_png(16, 16), "image/png")) for i in range(17)]
    assert edit("gpt-image-1", many)["code"] == "array_above_max_length"
    not_square = edit("dall-e-2", [("image", ("in.png", form_png(64, 32, alpha=0), "image/png"))])
    assert "square" in not_square["message"]
    dalle_jpeg = edit("dall-e-2", [("image", ("in.jpg", jpeg.getvalue(), "image/jpeg"))])
    assert "PNG" in dalle_jpeg["message"]
    # No mask, and an image with no alpha channel: nothing says where to paint.
    rgb = ("image", ("in.png", form_png(64, 64, "RGB"), "image/png"))
    opaque = edit("dall-e-2", [rgb])
    assert opaque["code"] == "invalid_image_format"
    assert sandbox.stats().get("submissions", 0) == 0


def test_emulator_edits_return_images_of_the_requested_size(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        response = client.post(
            "/images/edits",
            data={"model": "dall-e-2", "prompt": "a boat", "size": "256x256",
                  "response_format": "b64_json", "n": "2"},
            files=[("image", ("in.png", form_png(64, 64, alpha=0), "image/png"))],
        )  # fmt: skip
    assert response.status_code == 200, response.text
    for item in response.json()["data"]:
        with Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))) as image:
            assert image.size == (256, 256)
