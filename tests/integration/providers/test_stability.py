"""Contract tests: the Stability adapter against the Stability emulator (a real process
on loopback), and the emulator itself as a stand-in for api.stability.ai."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from imagegate.domain.actions import Box, Direction, UpscaleMode, pan_canvas, zoom_out_canvas
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
from imagegate.providers.stability import StabilityProvider, aspect_ratio
from tests.support.adapters import adapter_factory
from tests.support.pictures import BLUE, YELLOW, decoded, near, two_tone
from tests.support.sandbox import SandboxProcess

KEY = "sk-contract-tests"
TILE = (200, 80, 40)
Make = Callable[..., StabilityProvider]


@pytest.fixture
def sandbox(sandboxes: Callable[[str], SandboxProcess]) -> SandboxProcess:
    return sandboxes("stability")


@pytest.fixture
async def make(sandbox: SandboxProcess) -> AsyncIterator[Make]:
    async with adapter_factory(StabilityProvider, "stability", sandbox.url, KEY) as build:
        yield build


def request(prompt: str = "a lighthouse on a cliff", **fields: Any) -> GenerationRequest:
    values: dict[str, Any] = {
        "negative_prompt": "fog",
        "width": 1024,
        "height": 576,
        "seeds": (11,),
        "style": "cinematic",
        "mode": Mode.STANDARD,
        "model": "core",
        **fields,
    }
    return GenerationRequest(prompt=prompt, **values)


def png(width: int = 64, height: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(out, format="PNG")
    return out.getvalue()


def upscale(model: str, prompt: str = "a red tile", **fields: Any) -> GenerationRequest:
    """An upscale of a 64x64 source to 256x256 (x4)."""
    values = {"width": 256, "height": 256, "upscale_factor": 4, **fields}
    return request(prompt, model=model, action=Action.UPSCALE, source_image=png(), **values)


class Recorder:
    def __init__(self) -> None:
        self.values: list[float] = []

    async def __call__(self, fraction: float) -> None:
        self.values.append(fraction)


async def ignore(_: float) -> None:
    pass


def api(sandbox: SandboxProcess, key: str = KEY, accept: str = "application/json") -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}", "Accept": accept}
    return httpx.Client(base_url=sandbox.url, headers=headers, timeout=10)


# The adapter's contract ------------------------------------------------------------


async def test_one_call_per_seed_at_the_snapped_ratio(make: Make, sandbox: SandboxProcess) -> None:
    progress = Recorder()
    correlation = NoCorrelation()
    result = await make().generate(request(seeds=(11, 12, 13)), progress, correlation)
    assert [image.seed for image in result.images] == [11, 12, 13]
    for image in result.images:
        with Image.open(io.BytesIO(image.data)) as decoded:
            assert decoded.size == (1344, 768)  # 1024x576 is 16:9, which the API draws so
            assert decoded.format == "PNG"
        assert (image.width, image.height, image.content_type) == (1344, 768, "image/png")
    assert progress.values == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert correlation.recorded == []  # synchronous: nothing to resume
    assert result.provider_job_id
    assert sandbox.stats()["submissions"] == 3


@pytest.mark.parametrize(
    ("model", "fmt", "content_type"),
    [
        ("ultra", OutputFormat.JPEG, "image/jpeg"),
        ("core", OutputFormat.WEBP, "image/webp"),
        ("sd3.5-large", OutputFormat.JPEG, "image/jpeg"),
        ("sd3.5-medium", OutputFormat.WEBP, "image/png"),  # sd3 encodes no WebP
    ],
)
async def test_models_and_output_formats(
    make: Make, model: str, fmt: OutputFormat, content_type: str
) -> None:
    result = await make().generate(
        request(model=model, output_format=fmt, width=512, height=768), ignore, NoCorrelation()
    )
    (image,) = result.images
    assert image.content_type == content_type
    assert (image.width, image.height) == (832, 1216)  # 2:3


def test_aspect_ratio_snaps_to_the_nearest_allowed() -> None:
    assert aspect_ratio(1024, 1024) == "1:1"
    assert aspect_ratio(1920, 1080) == "16:9"
    assert aspect_ratio(1000, 1500) == "2:3"
    assert aspect_ratio(1200, 1000) == "5:4"
    assert aspect_ratio(1100, 1000) == "1:1"
    assert aspect_ratio(2560, 1080) == "21:9"
    assert aspect_ratio(256, 1024) == "9:21"  # beyond the widest ratio: the widest


async def test_seed_zero_reports_the_seed_stability_chose(make: Make) -> None:
    (image,) = (await make().generate(request(seeds=(0,)), ignore, NoCorrelation())).images
    assert image.seed != 0


@pytest.mark.parametrize(
    ("model", "action", "endpoint"),
    [("ultra", Action.VARIATION, "generate/ultra"), ("sd3.5-large", Action.IMG2IMG, "generate/sd3"),
     ("core", Action.VARIATION, "generate/ultra")],  # core takes no image: ultra does it
)  # fmt: skip
async def test_img2img_and_variation_send_the_source_and_return_the_exact_size(
    make: Make, sandbox: SandboxProcess, model: str, action: Action, endpoint: str
) -> None:
    job = request(model=model, action=action, source_image=png(300, 200), strength=0.6,
                  width=300, height=200, seeds=(1, 2))  # fmt: skip
    result = await make().generate(job, ignore, NoCorrelation())
    assert [decoded(i).size for i in result.images] == [(300, 200)] * 2
    assert sandbox.stats()[endpoint] == 2


async def test_a_provider_with_only_core_cannot_vary(sandbox: SandboxProcess) -> None:
    config = ProviderConfig(name="s", type="stability", base_url=sandbox.url, api_key=KEY,
                            models=("core",))  # fmt: skip
    provider = StabilityProvider(config)
    try:
        for action in (Action.VARIATION, Action.IMG2IMG):
            job = request(model="core", action=action, source_image=png())
            with pytest.raises(PermanentProviderError, match="text only"):
                await provider.generate(job, ignore, NoCorrelation())
    finally:
        await provider.aclose()
    assert sandbox.stats().get("requests", 0) == 0


@pytest.mark.parametrize(
    ("job", "endpoint"),
    [({"model": "upscale-fast"}, "upscale/fast"),
     ({"model": "upscale-conservative"}, "upscale/conservative"),
     # A subtle x4 of a small source is fast's; a subtle x2 only conservative can make.
     ({"model": "core", "upscale_mode": UpscaleMode.SUBTLE}, "upscale/fast"),
     ({"model": "core", "upscale_mode": UpscaleMode.SUBTLE, "upscale_factor": 2,
       "width": 128, "height": 128}, "upscale/conservative")],
)  # fmt: skip
async def test_synchronous_upscales_return_exactly_the_size_asked_for(
    make: Make, sandbox: SandboxProcess, job: dict[str, Any], endpoint: str
) -> None:
    progress = Recorder()
    asked = upscale(**job)
    result = await make().generate(asked, progress, NoCorrelation())
    (image,) = result.images
    picture = decoded(image)
    assert picture.size == (asked.width, asked.height)
    assert near(picture.getpixel((asked.width // 2, asked.height // 2)), TILE)
    assert progress.values == [1.0]
    assert sandbox.stats()[endpoint] == 1


async def test_a_creative_upscale_polls_202_then_200(make: Make, sandbox: SandboxProcess) -> None:
    sandbox.faults(job_duration_ms=300)
    job = upscale("core", upscale_mode=UpscaleMode.CREATIVE, upscale_factor=2, width=128,
                  height=128)  # fmt: skip
    result = await make().generate(job, ignore, NoCorrelation())
    assert decoded(result.images[0]).size == (128, 128)
    stats = sandbox.stats()
    assert stats["upscale/creative"] == 1 and stats["polls"] >= 2  # at least one 202


def test_emulator_answers_404_for_an_unknown_result(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        response = client.get("/v2beta/results/" + "e" * 64)
    assert response.status_code == 404
    body = response.json()
    assert body["name"] == "not_found" and body["errors"] and body["id"]


# Outpaint and inpaint ------------------------------------------------------------


async def test_zoom_out_outpaints_around_the_shrunk_source(
    make: Make, sandbox: SandboxProcess
) -> None:
    canvas = zoom_out_canvas(256, 256, 2.0)
    job = request(action=Action.ZOOM_OUT, source_image=png(256, 256), canvas=canvas,
                  width=256, height=256, seeds=(3,))  # fmt: skip
    (image,) = (await make().generate(job, ignore, NoCorrelation())).images
    picture = decoded(image)
    assert picture.size == (256, 256) and image.seed == 3
    assert near(picture.getpixel((128, 128)), TILE)  # the source, at half size
    assert not near(picture.getpixel((8, 8)), TILE)  # the painted border
    assert sandbox.stats()["edit/outpaint"] == 1


async def test_pan_keeps_the_source_and_paints_the_new_side(make: Make) -> None:
    canvas = pan_canvas(128, 128, Direction.RIGHT)
    job = request(action=Action.PAN, direction=Direction.RIGHT, source_image=png(128, 128),
                  canvas=canvas, width=canvas.width, height=canvas.height)  # fmt: skip
    (image,) = (await make().generate(job, ignore, NoCorrelation())).images
    picture = decoded(image)
    assert picture.size == (192, 128)
    assert picture.getpixel((10, 64)) == TILE  # the source, pixel for pixel
    assert not near(picture.getpixel((185, 64)), TILE)


async def test_vary_region_inpaints_only_the_mask(make: Make, sandbox: SandboxProcess) -> None:
    mask = rectangles_mask(128, 128, [Box(64, 0, 64, 128)])
    job = request(action=Action.VARY_REGION, source_image=two_tone(128, 128), mask=mask,
                  width=128, height=128, seeds=(1, 2))  # fmt: skip
    result = await make().generate(job, ignore, NoCorrelation())
    for image in result.images:
        picture = decoded(image)
        assert picture.getpixel((10, 64)) == BLUE  # unmasked: untouched
        assert not near(picture.getpixel((120, 64)), YELLOW)
    assert sandbox.stats()["edit/inpaint"] == 2


async def test_a_moderated_inpaint_is_never_retried(make: Make) -> None:
    job = request("a fox sandbox:moderate", action=Action.VARY_REGION,
                  source_image=png(128, 128), mask=rectangles_mask(128, 128, [Box(0, 0, 9, 9)]),
                  width=128, height=128)  # fmt: skip
    with pytest.raises(ModeratedError):
        await make().generate(job, ignore, NoCorrelation())


async def test_an_outpaint_of_a_source_too_small_for_the_api_is_permanent(make: Make) -> None:
    # Zoomed out 2x, a 96x96 source is 48 pixels a side: the API wants at least 64.
    job = request(action=Action.ZOOM_OUT, source_image=png(96, 96),
                  canvas=zoom_out_canvas(96, 96, 2.0), width=96, height=96)  # fmt: skip
    with pytest.raises(PermanentProviderError, match="at least 64 pixels"):
        await make().generate(job, ignore, NoCorrelation())


def test_emulator_checks_edit_forms(sandbox: SandboxProcess) -> None:
    tile = ("tile.png", png(128, 128), "image/png")
    with api(sandbox) as client:
        no_pads = client.post("/v2beta/stable-image/edit/outpaint", data={"left": "2001"},
                              files={"image": tile})  # fmt: skip
        none = client.post("/v2beta/stable-image/edit/outpaint", files={"image": tile})
        no_prompt = client.post("/v2beta/stable-image/edit/inpaint", files={"image": tile})
    assert no_pads.status_code == none.status_code == no_prompt.status_code == 400
    assert no_pads.json()["errors"] == ["left: must be an integer between 0 and 2000"]
    assert none.json()["errors"] == ["left, right, up, down: at least one must be greater than 0"]
    assert no_prompt.json()["errors"] == ["prompt: is required"]
    assert sandbox.stats().get("submissions", 0) == 0


async def test_creative_upscale_records_its_id_before_the_result_exists(
    make: Make, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=400)
    states: list[int] = []

    class Watching(NoCorrelation):
        async def record(self, provider_job_id: str) -> None:
            await super().record(provider_job_id)
            with api(sandbox) as client:
                states.append(client.get(f"/v2beta/results/{provider_job_id}").status_code)

    correlation = Watching()
    progress = Recorder()
    result = await make().generate(upscale("upscale-creative"), progress, correlation)
    assert states == [202]  # recorded while the job was still running
    assert result.provider_job_id == correlation.recorded[0]
    assert len(result.provider_job_id) == 64
    assert decoded(result.images[0]).size == (256, 256)
    assert progress.values == [0.1, 1.0]


@pytest.mark.parametrize("duration_ms", [0, 300], ids=["finished", "running"])
async def test_creative_upscale_resumes_a_recorded_job_without_paying_again(
    make: Make, sandbox: SandboxProcess, duration_ms: int
) -> None:
    sandbox.faults(job_duration_ms=duration_ms)
    with api(sandbox) as client:
        submitted = client.post(
            "/v2beta/stable-image/upscale/creative",
            data={"prompt": "a red tile"},
            files={"image": ("tile.png", png(), "image/png")},
        )
    job_id = submitted.json()["id"]
    correlation = NoCorrelation(existing=job_id)
    result = await make().generate(upscale("upscale-creative"), ignore, correlation)
    assert result.provider_job_id == job_id
    assert correlation.recorded == []
    assert sandbox.stats()["submissions"] == 1


async def test_creative_upscale_submits_anew_when_the_recorded_job_is_gone(
    make: Make, sandbox: SandboxProcess
) -> None:
    correlation = NoCorrelation(existing="f" * 64)
    result = await make().generate(upscale("upscale-creative"), ignore, correlation)
    assert correlation.recorded == [result.provider_job_id]
    assert sandbox.stats()["submissions"] == 1


async def test_creative_upscale_that_outlasts_the_timeout_is_resumable(
    make: Make, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=60_000)
    correlation = NoCorrelation()
    with pytest.raises(RetryableProviderError) as caught:
        await make(timeout_s=0.3).generate(upscale("upscale-creative"), ignore, correlation)
    assert caught.value.resumable
    assert caught.value.provider_job_id == correlation.recorded[0]


# Every injected fault maps to its place in the taxonomy ----------------------------


async def test_rate_limit_carries_retry_after(make: Make, sandbox: SandboxProcess) -> None:
    sandbox.faults(error_status=429, error_count=1, retry_after_s=7)
    with pytest.raises(RateLimitedError) as caught:
        await make().generate(request(), ignore, NoCorrelation())
    assert caught.value.retry_after == 7


@pytest.mark.parametrize("marker", ["sandbox:500", "sandbox:503", "sandbox:fail"])
async def test_server_errors_are_retryable(make: Make, marker: str) -> None:
    with pytest.raises(RetryableProviderError) as caught:
        await make().generate(request(f"a cliff {marker}"), ignore, NoCorrelation())
    assert not isinstance(caught.value, RateLimitedError)
    assert not caught.value.resumable  # synchronous: there is no job to go back to


async def test_a_hung_request_times_out_as_retryable(make: Make) -> None:
    started = time.monotonic()
    with pytest.raises(RetryableProviderError):
        await make(timeout_s=0.5).generate(request("sandbox:timeout"), ignore, NoCorrelation())
    assert time.monotonic() - started < 5


async def test_a_malformed_answer_is_an_unclassified_error(make: Make) -> None:
    with pytest.raises(ProviderError) as caught:
        await make().generate(request("sandbox:malformed"), ignore, NoCorrelation())
    assert type(caught.value) is ProviderError
    assert caught.value.retryable


@pytest.mark.parametrize("marker", ["sandbox:moderate", "sandbox:filtered"])
async def test_moderation_verdicts(make: Make, marker: str) -> None:
    # moderate: the prompt is refused (403); filtered: the output is (CONTENT_FILTERED).
    with pytest.raises(ModeratedError) as caught:
        await make().generate(request(f"a cliff {marker}"), ignore, NoCorrelation())
    assert not caught.value.retryable


async def test_filtered_creative_upscale_is_moderated(make: Make) -> None:
    with pytest.raises(ModeratedError):
        job = upscale("upscale-creative", prompt="a tile sandbox:filtered")
        await make().generate(job, ignore, NoCorrelation())


async def test_expired_creative_result(make: Make) -> None:
    job = upscale("upscale-creative", prompt="a tile sandbox:expired")
    with pytest.raises(ResultExpiredError) as caught:
        await make().generate(job, ignore, NoCorrelation())
    assert not caught.value.resumable


async def test_failed_creative_job_is_retryable_but_not_resumed(make: Make) -> None:
    job = upscale("upscale-creative", prompt="a tile sandbox:fail")
    with pytest.raises(RetryableProviderError) as caught:
        await make().generate(job, ignore, NoCorrelation())
    assert not caught.value.resumable


@pytest.mark.parametrize(
    "case", ["wrong key", "too large", "empty prompt", "unknown model", "no source"]
)
async def test_requests_that_can_never_succeed_are_permanent(
    make: Make, sandbox: SandboxProcess, case: str
) -> None:
    provider, job = make(), request()
    if case == "wrong key":
        provider = make(api_key="not-a-stability-key")
    elif case == "too large":
        sandbox.faults(error_status=413, error_count=1)
    elif case == "empty prompt":
        job = request(" ")
    elif case == "unknown model":
        job = request(model="sdxl-1.0")
    else:
        job = request(model="upscale-fast", action=Action.UPSCALE)
    with pytest.raises(PermanentProviderError):
        await provider.generate(job, ignore, NoCorrelation())


def test_capabilities_follow_the_configured_models(make: Make) -> None:
    everything = make().capabilities()
    assert everything.actions == (
        Action.IMAGINE, Action.IMG2IMG, Action.UPSCALE, Action.VARIATION, Action.ZOOM_OUT,
        Action.PAN, Action.VARY_REGION,
    )  # fmt: skip
    assert everything.tuning == frozenset() and not everything.style_reference
    assert "cinematic" in everything.styles and "watercolor" not in everything.styles
    only_core = StabilityProvider(
        ProviderConfig(name="s", type="stability", models=("core",))
    ).capabilities()
    assert only_core.actions == (Action.IMAGINE, Action.ZOOM_OUT, Action.PAN, Action.VARY_REGION)
    credits = make().estimate_credits
    assert credits(request(seeds=(1, 2), mode=Mode.DRAFT)) == 2
    assert credits(request(seeds=(1, 2), mode=Mode.STANDARD)) == 4


# The emulator as a stand-in --------------------------------------------------------


def test_emulator_checks_the_key_as_the_api_does(sandbox: SandboxProcess) -> None:
    with api(sandbox, key="wrong") as client:
        response = client.post("/v2beta/stable-image/generate/core", data={"prompt": "x"})
    assert response.status_code == 401
    body = response.json()
    assert body["name"] == "unauthorized" and body["errors"] and body["id"]


def test_emulator_lists_every_validation_problem(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        response = client.post(
            "/v2beta/stable-image/generate/sd3",
            data={"prompt": "", "aspect_ratio": "7:3", "output_format": "webp", "seed": "-1"},
            files={"none": ("", b"")},
        )
    assert response.status_code == 400
    body = response.json()
    assert body["name"] == "bad_request"
    assert [e.split(":")[0] for e in body["errors"]] == [
        "prompt", "aspect_ratio", "output_format", "seed",
    ]  # fmt: skip
    assert sandbox.stats().get("submissions", 0) == 0  # refused before it is paid for


def test_emulator_answers_raw_bytes_for_image_accept(sandbox: SandboxProcess) -> None:
    with api(sandbox, accept="image/*") as client:
        response = client.post(
            "/v2beta/stable-image/generate/ultra",
            data={"prompt": "a red fox", "aspect_ratio": "9:16", "seed": "42"},
            files={"none": ("", b"")},
        )
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.headers["finish-reason"] == "SUCCESS"
    assert response.headers["seed"] == "42"
    with Image.open(io.BytesIO(response.content)) as image:
        assert image.size == (768, 1344)


def test_emulator_counts_submissions_polls_and_jobs(sandbox: SandboxProcess) -> None:
    sandbox.faults(job_duration_ms=60_000)
    with api(sandbox) as client:
        job = client.post(
            "/v2beta/stable-image/upscale/creative",
            data={"prompt": "a tile"},
            files={"image": ("tile.png", png(), "image/png")},
        ).json()["id"]
        running = client.get(f"/v2beta/results/{job}")
        refused = client.post(
            "/v2beta/stable-image/generate/core",
            data={"prompt": "sandbox:503"},
            files={"none": ("", b"")},
        )
    assert running.status_code == 202 and running.json() == {"id": job, "status": "in-progress"}
    assert refused.status_code == 503 and refused.json()["errors"]
    stats = sandbox.stats()
    assert (stats["submissions"], stats["polls"], stats["jobs"]) == (2, 1, 1)


def test_emulator_json_image_is_base64(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        response = client.post(
            "/v2beta/stable-image/upscale/fast",
            data={"output_format": "webp"},
            files={"image": ("tile.png", png(48, 32), "image/png")},
        )
    assert response.headers["content-type"].startswith("application/json; type=image/webp")
    body = response.json()
    assert body["finish_reason"] == "SUCCESS"
    with Image.open(io.BytesIO(base64.b64decode(body["image"]))) as image:
        assert (image.format, image.size) == ("WEBP", (192, 128))
