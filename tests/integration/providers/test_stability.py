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

from imagegate.domain.params import Mode, OutputFormat
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
from tests.support.sandbox import SandboxProcess

KEY = "sk-contract-tests"
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
    return request(prompt, model=model, action=Action.UPSCALE, source_image=png(), **fields)


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


async def test_vary_sends_the_source_image(make: Make) -> None:
    vary = request(model="ultra", action=Action.VARIATION, source_image=png(300, 200), strength=0.6)
    (image,) = (await make().generate(vary, ignore, NoCorrelation())).images
    assert (image.width, image.height) == (1216, 832)  # the source's 3:2 shape


async def test_core_cannot_vary(make: Make) -> None:
    vary = request(model="core", action=Action.VARIATION, source_image=png())
    with pytest.raises(PermanentProviderError):
        await make().generate(vary, ignore, NoCorrelation())


@pytest.mark.parametrize(
    ("model", "size"), [("upscale-fast", (256, 256)), ("upscale-conservative", (2048, 2048))]
)
async def test_synchronous_upscales(make: Make, model: str, size: tuple[int, int]) -> None:
    progress = Recorder()
    result = await make().generate(upscale(model), progress, NoCorrelation())
    (image,) = result.images
    assert (image.width, image.height) == size
    assert progress.values == [1.0]


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
    assert (result.images[0].width, result.images[0].height) == (2048, 2048)
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
    assert set(everything.actions) == {Action.IMAGINE, Action.VARIATION, Action.UPSCALE}
    assert "cinematic" in everything.styles and "watercolor" not in everything.styles
    only_core = StabilityProvider(
        ProviderConfig(name="s", type="stability", models=("core",))
    ).capabilities()
    assert only_core.actions == (Action.IMAGINE,)
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
