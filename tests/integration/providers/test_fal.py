"""Contract tests: the fal adapter against the fal queue emulator (a real process on
loopback), and the emulator itself as a stand-in for queue.fal.run."""

from __future__ import annotations

import io
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from imagegate.domain.actions import Direction, UpscaleMode, pan_canvas, zoom_out_canvas
from imagegate.domain.params import Mode, OutputFormat
from imagegate.providers.base import Action, GenerationRequest, NoCorrelation
from imagegate.providers.errors import (
    ModeratedError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    RetryableProviderError,
)
from imagegate.providers.fal import FalProvider, app_root, snap_side
from imagegate.providers.http import ProviderConfig, ResultExpiredError
from tests.support.adapters import adapter_factory
from tests.support.pictures import box_mask, decoded, max_difference, png, scene
from tests.support.sandbox import SandboxProcess
from tests.support.server import wait_until

KEY = "contract-key-id:contract-key-secret"
DEV = "fal-ai/flux/dev"
Make = Callable[..., FalProvider]


@pytest.fixture
def sandbox(sandboxes: Callable[[str], SandboxProcess]) -> SandboxProcess:
    return sandboxes("fal")


@pytest.fixture
async def make(sandbox: SandboxProcess) -> AsyncIterator[Make]:
    async with adapter_factory(FalProvider, "fal", sandbox.url, KEY) as build:
        yield build


def request(prompt: str = "a lighthouse on a cliff", **fields: Any) -> GenerationRequest:
    values: dict[str, Any] = {
        "negative_prompt": None,
        "width": 512,
        "height": 384,
        "seeds": (11,),
        "style": "none",
        "mode": Mode.DRAFT,
        "model": DEV,
        **fields,
    }
    return GenerationRequest(prompt=prompt, **values)


class Recorder:
    def __init__(self) -> None:
        self.values: list[float] = []

    async def __call__(self, fraction: float) -> None:
        self.values.append(fraction)


async def ignore(_: float) -> None:
    pass


def api(sandbox: SandboxProcess, key: str = KEY) -> httpx.Client:
    return httpx.Client(base_url=sandbox.url, headers={"Authorization": f"Key {key}"}, timeout=10)


def submit(sandbox: SandboxProcess, prompt: str = "a lighthouse", model: str = DEV) -> str:
    with api(sandbox) as client:
        response = client.post(f"/{model}", json={"prompt": prompt, "seed": 11})
    assert response.status_code == 200, response.text
    request_id: str = response.json()["request_id"]
    return request_id


# The adapter's contract ------------------------------------------------------------


async def test_one_request_makes_the_whole_batch(make: Make, sandbox: SandboxProcess) -> None:
    correlation = NoCorrelation()
    result = await make().generate(request(seeds=(11, 12, 13)), ignore, correlation)
    assert [image.seed for image in result.images] == [11, 12, 13]
    for image in result.images:
        with Image.open(io.BytesIO(image.data)) as decoded:
            assert (decoded.format, decoded.size) == ("PNG", (512, 384))
        assert (image.width, image.height, image.content_type) == (512, 384, "image/png")
    assert correlation.recorded == [result.provider_job_id]
    assert sandbox.stats()["submissions"] == 1
    assert sandbox.stats()["images"] == 3


async def test_sizes_snap_to_multiples_of_16(make: Make) -> None:
    assert (snap_side(1000), snap_side(600), snap_side(100), snap_side(9000)) == (
        992, 608, 256, 4096,
    )  # fmt: skip
    result = await make().generate(request(width=1000, height=600), ignore, NoCorrelation())
    (image,) = result.images
    assert (image.width, image.height) == (992, 608)


@pytest.mark.parametrize(
    ("model", "fmt", "content_type"),
    [
        (DEV, OutputFormat.PNG, "image/png"),
        ("fal-ai/flux/schnell", OutputFormat.WEBP, "image/png"),  # no WebP on fal
        ("fal-ai/fast-sdxl", OutputFormat.JPEG, "image/jpeg"),  # SDXL calls it ``format``
    ],
)
async def test_models_and_output_formats(
    make: Make, model: str, fmt: OutputFormat, content_type: str
) -> None:
    job = request(model=model, output_format=fmt, negative_prompt="fog")
    (image,) = (await make().generate(job, ignore, NoCorrelation())).images
    assert image.content_type == content_type


async def test_a_style_joins_the_prompt(make: Make, sandbox: SandboxProcess) -> None:
    result = await make().generate(request("a fox", style="anime"), ignore, NoCorrelation())
    with api(sandbox) as client:
        output = client.get(f"/fal-ai/flux/requests/{result.provider_job_id}").json()
    assert output["prompt"] == "a fox, anime style"


def test_requests_live_under_the_app_not_the_endpoint() -> None:
    assert app_root("fal-ai/flux/dev") == "fal-ai/flux"
    assert app_root("fal-ai/fast-sdxl") == "fal-ai/fast-sdxl"
    assert app_root("workflows/someone/my-flow/run") == "workflows/someone/my-flow"
    with pytest.raises(PermanentProviderError):
        app_root("flux")


async def test_records_the_request_id_before_it_completes(
    make: Make, sandbox: SandboxProcess
) -> None:
    # Long enough that a busy machine's scheduling cannot outlast it: what matters is
    # that the id is recorded while the request still runs, not how fast we look.
    sandbox.faults(job_duration_ms=1500)
    states: list[str] = []

    class Watching(NoCorrelation):
        async def record(self, provider_job_id: str) -> None:
            await super().record(provider_job_id)
            with api(sandbox) as client:
                status = client.get(f"/fal-ai/flux/requests/{provider_job_id}/status")
            states.append(status.json()["status"])

    correlation = Watching()
    result = await make().generate(request(), ignore, correlation)
    assert len(states) == 1 and states[0] in {"IN_QUEUE", "IN_PROGRESS"}, states
    assert correlation.recorded == [result.provider_job_id]


async def test_progress_follows_the_queue_and_the_runner_logs(
    make: Make, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=800)
    progress = Recorder()
    await make().generate(request(seeds=(1, 2)), progress, NoCorrelation())
    values = progress.values
    assert values == sorted(values) and len(set(values)) == len(values)  # only forwards
    assert values[0] == 0.05 and values[-1] == 1.0
    assert any(0.1 < v < 0.9 for v in values)  # from the runner's step counter
    assert values[-2:] == [0.95, 1.0]  # one step per downloaded image


@pytest.mark.parametrize("duration_ms", [0, 400], ids=["finished", "running"])
async def test_resumes_a_recorded_request_without_paying_again(
    make: Make, sandbox: SandboxProcess, duration_ms: int
) -> None:
    sandbox.faults(job_duration_ms=duration_ms)
    request_id = submit(sandbox)
    correlation = NoCorrelation(existing=request_id)
    result = await make().generate(request(), ignore, correlation)
    assert result.provider_job_id == request_id
    assert correlation.recorded == []
    assert sandbox.stats()["submissions"] == 1


async def test_submits_anew_when_fal_does_not_know_the_recorded_request(
    make: Make, sandbox: SandboxProcess
) -> None:
    correlation = NoCorrelation(existing="00000000-0000-4000-8000-000000000000")
    result = await make().generate(request(), ignore, correlation)
    assert correlation.recorded == [result.provider_job_id]
    assert sandbox.stats()["submissions"] == 1


async def test_submits_anew_when_the_recorded_requests_images_are_gone(
    make: Make, sandbox: SandboxProcess
) -> None:
    gone = submit(sandbox, "a lighthouse sandbox:expired")
    correlation = NoCorrelation(existing=gone)
    result = await make().generate(request(), ignore, correlation)
    assert result.provider_job_id != gone
    assert sandbox.stats()["submissions"] == 2


async def test_a_request_that_outlasts_the_timeout_is_resumable(
    make: Make, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=60_000)
    correlation = NoCorrelation()
    with pytest.raises(RetryableProviderError) as caught:
        await make(timeout_s=0.3).generate(request(), ignore, correlation)
    assert caught.value.resumable
    assert caught.value.provider_job_id == correlation.recorded[0]


async def test_cancel(make: Make, sandbox: SandboxProcess) -> None:
    sandbox.faults(job_duration_ms=60_000)
    running = submit(sandbox)
    provider = make()
    assert await provider.cancel(running, DEV) is True
    assert await provider.cancel(running, DEV) is False  # now ALREADY_COMPLETED
    assert await provider.cancel("00000000-0000-4000-8000-000000000000") is False
    with api(sandbox) as client:
        status = client.get(f"/fal-ai/flux/requests/{running}/status").json()
        result = client.get(f"/fal-ai/flux/requests/{running}")
    assert status["status"] == "COMPLETED" and status["error_type"] == "client_cancelled"
    assert result.status_code == 499


# Every injected fault maps to its place in the taxonomy ----------------------------


async def test_rate_limit_carries_retry_after(make: Make, sandbox: SandboxProcess) -> None:
    sandbox.faults(error_status=429, error_count=1, retry_after_s=9)
    with pytest.raises(RateLimitedError) as caught:
        await make().generate(request(), ignore, NoCorrelation())
    assert caught.value.retry_after == 9


@pytest.mark.parametrize("marker", ["sandbox:500", "sandbox:503"])
async def test_server_errors_are_retryable(make: Make, marker: str) -> None:
    with pytest.raises(RetryableProviderError) as caught:
        await make().generate(request(f"a cliff {marker}"), ignore, NoCorrelation())
    assert not isinstance(caught.value, RateLimitedError)


async def test_a_failed_run_is_retryable_and_not_resumed(make: Make) -> None:
    correlation = NoCorrelation()
    with pytest.raises(RetryableProviderError) as caught:
        await make().generate(request("a cliff sandbox:fail"), ignore, correlation)
    assert not caught.value.resumable
    assert caught.value.provider_job_id == correlation.recorded[0]


async def test_a_hung_submission_times_out_as_retryable(make: Make) -> None:
    started = time.monotonic()
    with pytest.raises(RetryableProviderError):
        await make(timeout_s=0.5).generate(request("sandbox:timeout"), ignore, NoCorrelation())
    assert time.monotonic() - started < 5


async def test_a_malformed_answer_is_an_unclassified_error(make: Make) -> None:
    with pytest.raises(ProviderError) as caught:
        await make().generate(request("sandbox:malformed"), ignore, NoCorrelation())
    assert type(caught.value) is ProviderError
    assert caught.value.retryable


@pytest.mark.parametrize("marker", ["sandbox:moderate", "sandbox:policy"])
async def test_moderation_verdicts(make: Make, marker: str) -> None:
    # moderate: the safety checker flags the output; policy: the model refuses the prompt.
    with pytest.raises(ModeratedError) as caught:
        await make().generate(request(f"a cliff {marker}"), ignore, NoCorrelation())
    assert not caught.value.retryable


async def test_without_the_safety_checker_nothing_is_flagged(make: Make) -> None:
    provider = make(safety_checker=False)
    result = await provider.generate(request("a cliff sandbox:moderate"), ignore, NoCorrelation())
    assert len(result.images) == 1


async def test_expired_image_urls(make: Make) -> None:
    with pytest.raises(ResultExpiredError) as caught:
        await make().generate(request("a cliff sandbox:expired"), ignore, NoCorrelation())
    assert not caught.value.resumable


@pytest.mark.parametrize("case", ["wrong key", "invalid input", "too many", "not imagine"])
async def test_requests_that_can_never_succeed_are_permanent(
    make: Make, sandbox: SandboxProcess, case: str
) -> None:
    provider, job = make(), request()
    if case == "wrong key":
        provider = make(api_key="no-secret-here")
    elif case == "invalid input":
        job = request("")  # the model's schema refuses it: the result is a 422
    elif case == "too many":
        job = request(seeds=(1, 2, 3, 4, 5))
    else:
        job = request(action=Action.UPSCALE, source_image=b"x")
    with pytest.raises(PermanentProviderError):
        await provider.generate(job, ignore, NoCorrelation())


def test_capabilities(make: Make) -> None:
    caps = make().capabilities()
    assert caps.models == ("fal-ai/flux/dev", "fal-ai/flux/schnell", "fal-ai/fast-sdxl")
    assert caps.max_images == 4
    assert caps.actions == (
        Action.IMAGINE, Action.IMG2IMG, Action.VARIATION, Action.UPSCALE, Action.ZOOM_OUT,
        Action.PAN, Action.VARY_REGION, Action.DESCRIBE,
    )  # fmt: skip
    assert Action.PAN not in make(models={"pan": ""}).capabilities().actions
    assert caps.negative_prompt  # fast-sdxl takes one
    flux_only = FalProvider(ProviderConfig(name="f", type="fal", models=(DEV,))).capabilities()
    assert not flux_only.negative_prompt
    assert make().estimate_credits(request(seeds=(1, 2, 3), mode=Mode.STANDARD)) == 6


# The emulator as a stand-in --------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "detail"),
    [
        (None, "Missing authorization header"),
        ("Key only-an-id", "No user found for Key ID and Secret"),
        (f"Bearer {KEY}", "No user found for Key ID and Secret"),
    ],
)
def test_emulator_checks_the_key(sandbox: SandboxProcess, header: str | None, detail: str) -> None:
    headers = {"Authorization": header} if header else {}
    response = httpx.post(f"{sandbox.url}/{DEV}", json={"prompt": "x"}, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"detail": detail}
    assert sandbox.stats().get("submissions", 0) == 0


def test_emulator_queue_round_trip(sandbox: SandboxProcess) -> None:
    sandbox.faults(job_duration_ms=300)
    with api(sandbox) as client:
        queued = client.post(f"/{DEV}", json={"prompt": "a fox", "num_images": 2})
        body = queued.json()
        assert set(body) >= {"request_id", "status_url", "response_url", "cancel_url"}
        assert body["status_url"].endswith(f"/fal-ai/flux/requests/{body['request_id']}/status")
        early = client.get(body["response_url"])
        assert early.status_code == 400  # no result before the request completes
        assert client.get(body["status_url"]).status_code == 202
        # Under the endpoint's full path the request is unknown, as on fal.
        assert client.get(f"/{DEV}/requests/{body['request_id']}/status").status_code == 404
        done = wait_until(
            lambda: _completed(client.get(body["status_url"], params={"logs": 1})), 10
        )
        result = client.get(body["response_url"]).json()
    assert done.status_code == 200
    assert done.json()["status"] == "COMPLETED" and done.json()["logs"]
    assert len(result["images"]) == 2 and result["has_nsfw_concepts"] == [False, False]
    assert isinstance(result["seed"], int) and result["prompt"] == "a fox"
    image = httpx.get(result["images"][1]["url"])  # the CDN needs no key
    assert image.status_code == 200 and image.headers["content-type"] == "image/jpeg"


def _completed(response: httpx.Response) -> httpx.Response | None:
    return response if response.status_code == 200 else None


def test_emulator_validation_surfaces_in_the_result(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        queued = client.post("/fal-ai/fast-sdxl", json={"prompt": "x", "num_images": 9}).json()
        result = client.get(queued["response_url"])
    assert result.status_code == 422
    (problem,) = result.json()["detail"]
    assert problem["loc"] == ["body", "num_images"] and problem["type"] and problem["msg"]


def test_emulator_counts_submissions_polls_and_jobs(sandbox: SandboxProcess) -> None:
    request_id = submit(sandbox)
    with api(sandbox) as client:
        client.get(f"/fal-ai/flux/requests/{request_id}/status")
        refused = client.post(f"/{DEV}", json={"prompt": "sandbox:503"})
    assert refused.status_code == 503
    assert refused.headers["x-fal-error-type"] == "runner_scheduling_failure"
    stats = sandbox.stats()
    assert (stats["submissions"], stats["polls"], stats["jobs"]) == (2, 1, 1)


# The workflow actions, a model id each ---------------------------------------------


def action(
    kind: Action, source: bytes, width: int, height: int, **fields: Any
) -> GenerationRequest:
    return request(action=kind, source_image=source, width=width, height=height, **fields)


@pytest.mark.parametrize("factor", [2, 4])
async def test_upscale_is_exactly_factor_times_the_source(make: Make, factor: int) -> None:
    upscale = action(Action.UPSCALE, scene(50, 30), 50 * factor, 30 * factor, upscale_factor=factor)
    [image] = (await make().generate(upscale, ignore, NoCorrelation())).images
    assert decoded(image).size == (50 * factor, 30 * factor) and image.content_type == "image/png"


async def test_a_creative_upscale_runs_the_clarity_upscaler(
    make: Make, sandbox: SandboxProcess
) -> None:
    creative = action(
        Action.UPSCALE, scene(40, 40), 80, 80, upscale_factor=2, upscale_mode=UpscaleMode.CREATIVE
    )
    result = await make().generate(creative, ignore, NoCorrelation())
    assert decoded(result.images[0]).size == (80, 80)
    with api(sandbox) as client:
        status = client.get(f"/fal-ai/clarity-upscaler/requests/{result.provider_job_id}/status")
    assert status.status_code == 200  # the request lives under the clarity app


async def test_img2img_strength_moves_away_from_the_source(make: Make) -> None:
    source = scene(128, 96)
    near = action(Action.IMG2IMG, source, 128, 96, strength=0.1)
    far = action(Action.VARIATION, source, 128, 96, strength=0.9, seeds=(3, 4))
    near_result = await make().generate(near, ignore, NoCorrelation())
    far_result = await make().generate(far, ignore, NoCorrelation())
    assert [image.seed for image in far_result.images] == [3, 4]
    original = decoded(source)
    near_image, far_image = decoded(near_result.images[0]), decoded(far_result.images[0])
    assert near_image.size == far_image.size == (128, 96)
    assert max_difference(near_image, original) < max_difference(far_image, original)


async def test_vary_region_keeps_the_unmasked_pixels(make: Make) -> None:
    source = scene(96, 96)
    vary = action(
        Action.VARY_REGION, source, 96, 96, mask=box_mask(96, 96, (0, 48, 96, 96)),
        output_format=OutputFormat.PNG, seeds=(1, 2),
    )  # fmt: skip
    images = (await make().generate(vary, ignore, NoCorrelation())).images
    assert len(images) == 2
    for image in images:
        kept = decoded(image).crop((0, 0, 96, 48))
        assert kept.tobytes() == decoded(source).crop((0, 0, 96, 48)).tobytes()


async def test_zoom_out_and_pan_keep_the_source(make: Make) -> None:
    source = scene(64, 64)
    zoom = zoom_out_canvas(64, 64, 2.0)
    zoomed = action(Action.ZOOM_OUT, source, 64, 64, canvas=zoom, output_format=OutputFormat.PNG)
    [image] = (await make().generate(zoomed, ignore, NoCorrelation())).images
    box = zoom.source
    shrunk = decoded(source).resize((box.width, box.height), Image.Resampling.LANCZOS)
    centre = decoded(image).crop((box.left, box.top, box.right, box.bottom))
    assert max_difference(centre, shrunk) <= 2
    pan = pan_canvas(64, 64, Direction.DOWN)
    panned = action(
        Action.PAN, source, 64, pan.height, canvas=pan, direction=Direction.DOWN,
        output_format=OutputFormat.PNG,
    )  # fmt: skip
    [image] = (await make().generate(panned, ignore, NoCorrelation())).images
    assert decoded(image).size == (64, pan.height)
    assert decoded(image).crop((0, 0, 64, 64)).tobytes() == decoded(source).tobytes()


async def test_describe_makes_four_suggestions_from_florences_caption(make: Make) -> None:
    green = png(Image.new("RGB", (40, 80), (60, 160, 70)))
    result = await make().generate(action(Action.DESCRIBE, green, 40, 80), ignore, NoCorrelation())
    assert result.images == () and len(result.texts) == 4 and len(set(result.texts)) == 4
    assert result.texts[0] == "a tall picture in green tones"
    assert result.texts[1].startswith("The image shows a tall picture in green tones.")


async def test_an_action_without_a_model_is_refused_before_submitting(
    make: Make, sandbox: SandboxProcess
) -> None:
    with pytest.raises(PermanentProviderError, match=r"options\.models\.describe"):
        await make(models={"describe": ""}).generate(
            action(Action.DESCRIBE, scene(8, 8), 8, 8), ignore, NoCorrelation()
        )
    assert sandbox.stats().get("submissions", 0) == 0


async def test_a_model_that_refuses_the_input_is_permanent(make: Make) -> None:
    # FLUX Fill refuses a mask of another size than the image (a 422 in the result).
    vary = action(Action.VARY_REGION, scene(32, 32), 32, 32, mask=box_mask(16, 16, (0, 0, 8, 8)))
    with pytest.raises(PermanentProviderError, match="422"):
        await make().generate(vary, ignore, NoCorrelation())


def test_emulator_checks_an_action_models_input(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        queued = client.post(
            "/fal-ai/flux-pro/v1/fill", json={"prompt": "a cat", "image_url": "https://x/y.png"}
        ).json()
        result = client.get(f"/fal-ai/flux-pro/requests/{queued['request_id']}")
    assert result.status_code == 422
    problems = {(p["loc"][1], p["type"]) for p in result.json()["detail"]}
    assert problems == {("image_url", "image_load_error"), ("mask_url", "missing")}
