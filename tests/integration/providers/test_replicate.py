"""Contract tests: the Replicate adapter against the Replicate emulator (a real
process on loopback), and the emulator itself as a stand-in for api.replicate.com."""

from __future__ import annotations

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
from imagegate.providers.http import ResultExpiredError
from imagegate.providers.replicate import ReplicateProvider
from imagegate.providers.replicate_inputs import SDXL
from tests.support.adapters import adapter_factory
from tests.support.sandbox import SandboxProcess

KEY = "r8_contract_tests"
SCHNELL = "black-forest-labs/flux-schnell"
Make = Callable[..., ReplicateProvider]


@pytest.fixture
def sandbox(sandboxes: Callable[[str], SandboxProcess]) -> SandboxProcess:
    return sandboxes("replicate")


@pytest.fixture
async def make(sandbox: SandboxProcess) -> AsyncIterator[Make]:
    async with adapter_factory(ReplicateProvider, "replicate", sandbox.url + "/v1", KEY) as build:
        yield build


def request(prompt: str = "a lighthouse at dusk", **fields: Any) -> GenerationRequest:
    values: dict[str, Any] = {
        "negative_prompt": None,
        "width": 512,
        "height": 512,
        "seeds": (7,),
        "style": "none",
        "mode": Mode.DRAFT,
        "model": SCHNELL,
        **fields,
    }
    return GenerationRequest(prompt=prompt, **values)


async def ignore(_: float) -> None:
    pass


def api(sandbox: SandboxProcess, key: str = KEY) -> httpx.Client:
    return httpx.Client(
        base_url=sandbox.url + "/v1", headers={"Authorization": f"Bearer {key}"}, timeout=10
    )


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(buffer, "PNG")
    return buffer.getvalue()


# -- the happy path --------------------------------------------------------------------


async def test_flux_images_are_decoded_at_the_snapped_size(
    make: Make, sandbox: SandboxProcess
) -> None:
    correlation = NoCorrelation()
    flux = request(seeds=(7, 8), output_format=OutputFormat.WEBP)
    result = await make().generate(flux, ignore, correlation)

    assert [image.seed for image in result.images] == [7, 8]
    for image in result.images:
        assert (image.width, image.height, image.content_type) == (512, 512, "image/webp")
        with Image.open(io.BytesIO(image.data)) as decoded:
            assert decoded.format == "WEBP" and decoded.size == (512, 512)
    assert result.provider_job_id and correlation.recorded == [result.provider_job_id]
    assert result.cost_usd == 0.0
    assert sandbox.stats()["submissions"] == 1


async def test_aspect_ratio_is_snapped_to_the_nearest_listed_ratio(make: Make) -> None:
    wide = request(width=1920, height=1080, mode=Mode.STANDARD, output_format=OutputFormat.JPEG)
    [image] = (await make().generate(wide, ignore, NoCorrelation())).images
    # 16:9 at one megapixel, as FLUX renders it; JPEG is spelled "jpg" on the wire.
    assert (image.width, image.height, image.content_type) == (1344, 768, "image/jpeg")


async def test_versioned_sdxl_gets_pixels_snapped_to_8_and_a_negative_prompt(
    make: Make, sandbox: SandboxProcess
) -> None:
    sdxl = request(model=SDXL, width=1001, height=596, negative_prompt="blurry")
    result = await make().generate(sdxl, ignore, NoCorrelation())

    [image] = result.images
    assert (image.width, image.height, image.content_type) == (1000, 600, "image/png")
    with api(sandbox) as client:
        prediction = client.get(f"/predictions/{result.provider_job_id}").json()
    assert prediction["version"] == SDXL.split(":")[1]
    assert prediction["input"]["negative_prompt"] == "blurry"
    assert (prediction["input"]["width"], prediction["input"]["height"]) == (1000, 600)


async def test_config_options_override_input_fields(make: Make, sandbox: SandboxProcess) -> None:
    provider = make(input={"megapixels": "1", "go_fast": True})
    result = await provider.generate(request(), ignore, NoCorrelation())
    assert (result.images[0].width, result.images[0].height) == (1024, 1024)
    with api(sandbox) as client:
        sent = client.get(f"/predictions/{result.provider_job_id}").json()["input"]
    assert sent["go_fast"] is True and sent["seed"] == 7


async def test_upscale_runs_real_esrgan_on_the_source_image(make: Make) -> None:
    upscale = request(action=Action.UPSCALE, source_image=png(64, 48), upscale_factor=2)
    [image] = (await make().generate(upscale, ignore, NoCorrelation())).images
    assert (image.width, image.height, image.content_type) == (128, 96, "image/png")


async def test_vary_on_a_model_without_image_input_uses_flux_dev(
    make: Make, sandbox: SandboxProcess
) -> None:
    vary = request(action=Action.VARIATION, source_image=png(320, 240), strength=0.4)
    result = await make().generate(vary, ignore, NoCorrelation())
    assert (result.images[0].width, result.images[0].height) == (320, 240)
    with api(sandbox) as client:
        prediction = client.get(f"/predictions/{result.provider_job_id}").json()
    assert prediction["model"] == "black-forest-labs/flux-dev"
    assert prediction["input"]["prompt_strength"] == 0.4


async def test_more_images_than_the_model_makes_is_refused_before_submitting(
    make: Make, sandbox: SandboxProcess
) -> None:
    with pytest.raises(PermanentProviderError, match="at most 4"):
        await make().generate(request(seeds=(1, 2, 3, 4, 5)), ignore, NoCorrelation())
    assert sandbox.stats().get("submissions", 0) == 0


async def test_cost_comes_from_predict_time_when_a_price_is_configured(make: Make) -> None:
    result = await make(price_per_second=0.5).generate(request(), ignore, NoCorrelation())
    assert result.cost_usd > 0


# -- Prefer: wait, progress, correlation ----------------------------------------------


async def test_prefer_wait_answers_a_fast_model_without_a_poll(
    make: Make, sandbox: SandboxProcess
) -> None:
    await make().generate(request(), ignore, NoCorrelation())
    assert sandbox.stats().get("polls", 0) == 0

    sandbox.reset()
    await make(prefer_wait_s=0).generate(request(), ignore, NoCorrelation())
    assert sandbox.stats()["polls"] >= 1


async def test_progress_follows_the_logs_and_never_goes_back(
    make: Make, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=800)
    seen: list[float] = []

    async def progress(value: float) -> None:
        seen.append(value)

    await make(prefer_wait_s=0).generate(request(), progress, NoCorrelation())
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert any(0 < value < 1 for value in seen), seen


class WatchingCorrelation(NoCorrelation):
    """Notes the prediction's status at the moment its id is recorded."""

    def __init__(self, sandbox: SandboxProcess, existing: str | None = None) -> None:
        super().__init__(existing)
        self.sandbox = sandbox
        self.status_when_recorded: str | None = None

    async def record(self, provider_job_id: str) -> None:
        await super().record(provider_job_id)
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}) as client:
            url = f"{self.sandbox.url}/v1/predictions/{provider_job_id}"
            self.status_when_recorded = (await client.get(url)).json()["status"]


async def test_the_prediction_id_is_recorded_before_it_completes(
    make: Make, sandbox: SandboxProcess
) -> None:
    # Longer than the adapter's Prefer: wait, so the create answers while it runs.
    sandbox.faults(job_duration_ms=2500)
    correlation = WatchingCorrelation(sandbox)
    result = await make(prefer_wait_s=1).generate(request(), ignore, correlation)
    assert correlation.recorded == [result.provider_job_id]
    assert correlation.status_when_recorded in {"starting", "processing"}


async def test_resuming_a_finished_prediction_does_not_submit_again(
    make: Make, sandbox: SandboxProcess
) -> None:
    provider = make()
    first = await provider.generate(request(), ignore, NoCorrelation())
    assert first.provider_job_id

    again = NoCorrelation(existing=first.provider_job_id)
    resumed = await provider.generate(request(), ignore, again)
    assert resumed.provider_job_id == first.provider_job_id
    assert resumed.images[0].data == first.images[0].data
    assert again.recorded == []
    assert sandbox.stats()["submissions"] == 1


async def test_resuming_a_running_prediction_polls_it_to_the_end(
    make: Make, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=700)
    with api(sandbox) as client:
        created = client.post(
            f"/models/{SCHNELL}/predictions",
            json={"input": {"prompt": "a kite", "seed": 3, "megapixels": "0.25"}},
        ).json()
    assert created["status"] == "starting"

    result = await make().generate(request(), ignore, NoCorrelation(existing=created["id"]))
    assert result.provider_job_id == created["id"] and len(result.images) == 1
    stats = sandbox.stats()
    assert stats["submissions"] == 1 and stats["polls"] >= 2


async def test_an_unknown_prediction_is_submitted_anew(make: Make, sandbox: SandboxProcess) -> None:
    correlation = NoCorrelation(existing="gonegonegonegonegonegonego")
    result = await make().generate(request(), ignore, correlation)
    assert correlation.recorded == [result.provider_job_id]
    assert sandbox.stats()["submissions"] == 1


async def test_cancel_ends_a_running_prediction(make: Make, sandbox: SandboxProcess) -> None:
    sandbox.faults(job_duration_ms=30_000)
    provider = make(prefer_wait_s=0)
    with api(sandbox) as client:
        created = client.post(f"/models/{SCHNELL}/predictions", json={"input": {"prompt": "x"}})
        prediction_id = created.json()["id"]
        await provider.cancel(prediction_id)
        assert client.get(f"/predictions/{prediction_id}").json()["status"] == "canceled"
    with pytest.raises(ProviderError, match="canceled") as caught:
        await provider.generate(request(), ignore, NoCorrelation(existing=prediction_id))
    assert not caught.value.resumable


# -- faults ----------------------------------------------------------------------------


async def test_throttling_is_rate_limited_with_retry_after_from_the_header(make: Make) -> None:
    with pytest.raises(RateLimitedError) as caught:
        await make().generate(request("sandbox:429 a cat"), ignore, NoCorrelation())
    assert caught.value.retry_after == 1.0


async def test_throttling_without_the_header_takes_the_wait_from_the_body(
    make: Make, sandbox: SandboxProcess
) -> None:
    sandbox.faults(error_status=429, error_count=1)
    with pytest.raises(RateLimitedError) as caught:
        await make().generate(request(), ignore, NoCorrelation())
    assert caught.value.retry_after == 30.0


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(make: Make, status: int) -> None:
    with pytest.raises(RetryableProviderError) as caught:
        await make().generate(request(f"sandbox:{status}"), ignore, NoCorrelation())
    assert not isinstance(caught.value, RateLimitedError)
    assert caught.value.retryable and not caught.value.resumable


async def test_a_hanging_create_is_retryable_within_the_timeout(make: Make) -> None:
    started = time.monotonic()
    with pytest.raises(RetryableProviderError, match="timed out"):
        await make(timeout_s=1.0).generate(request("sandbox:timeout"), ignore, NoCorrelation())
    assert time.monotonic() - started < 5


async def test_a_malformed_body_is_an_unclassified_error(make: Make) -> None:
    with pytest.raises(ProviderError) as caught:
        await make().generate(request("sandbox:malformed"), ignore, NoCorrelation())
    assert type(caught.value) is ProviderError and caught.value.retryable


async def test_an_nsfw_verdict_is_moderated_and_never_retried(make: Make) -> None:
    correlation = NoCorrelation()
    with pytest.raises(ModeratedError, match="NSFW") as caught:
        await make().generate(request("sandbox:moderate"), ignore, correlation)
    assert not caught.value.retryable
    assert caught.value.provider_job_id == correlation.recorded[0]


async def test_expired_output_urls_raise_result_expired(make: Make) -> None:
    with pytest.raises(ResultExpiredError):
        await make().generate(request("sandbox:expired"), ignore, NoCorrelation())


async def test_a_failed_prediction_is_an_unclassified_error_that_is_not_resumed(
    make: Make,
) -> None:
    with pytest.raises(ProviderError, match="E1000") as caught:
        await make().generate(request("sandbox:fail"), ignore, NoCorrelation())
    assert type(caught.value) is ProviderError
    assert caught.value.provider_job_id and not caught.value.resumable


async def test_a_wrong_api_key_is_permanent(make: Make) -> None:
    with pytest.raises(PermanentProviderError, match="401"):
        await make(api_key="not-a-token").generate(request(), ignore, NoCorrelation())


async def test_a_poll_that_fails_is_resumable(make: Make, sandbox: SandboxProcess) -> None:
    sandbox.faults(job_duration_ms=30_000)
    with pytest.raises(RetryableProviderError, match="not finished") as caught:
        await make(timeout_s=0.5).generate(request(), ignore, NoCorrelation())
    assert caught.value.resumable and caught.value.provider_job_id


# -- the emulator itself, over HTTP ----------------------------------------------------


def test_emulator_rejects_a_missing_or_malformed_token(sandbox: SandboxProcess) -> None:
    with api(sandbox, key="wrong") as client:
        response = client.post(f"/models/{SCHNELL}/predictions", json={"input": {}})
    assert response.status_code == 401
    assert response.json() == {
        "title": "Unauthenticated",
        "detail": "You did not pass a valid authentication token",
        "status": 401,
    }
    legacy = httpx.get(
        sandbox.url + "/v1/predictions", headers={"Authorization": f"Token {KEY}"}, timeout=10
    )
    assert legacy.status_code == 200


def test_emulator_reports_invalid_input_as_problem_details(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        response = client.post(f"/models/{SCHNELL}/predictions", json={"input": {"num_outputs": 9}})
        unknown = client.post("/predictions", json={"version": "nobody/nothing:abc", "input": {}})
    assert response.status_code == 422
    body = response.json()
    assert body["title"] == "Input validation failed" and body["status"] == 422
    assert {"type": "required", "field": "input", "description": "prompt is required"} in body[
        "invalid_fields"
    ]
    assert any(f["field"] == "input.num_outputs" for f in body["invalid_fields"])
    assert unknown.status_code == 422
    assert unknown.json()["title"] == "Invalid version or not permitted"


def test_emulator_counts_submissions_polls_and_jobs(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        refused = client.post(
            f"/models/{SCHNELL}/predictions", json={"input": {"prompt": "sandbox:503"}}
        )
        created = client.post(
            f"/models/{SCHNELL}/predictions",
            json={"input": {"prompt": "a cat", "megapixels": "0.25"}},
            headers={"Prefer": "wait=10"},
        )
        client.get(f"/predictions/{created.json()['id']}")
    assert refused.status_code == 503
    assert created.status_code == 201 and created.json()["status"] == "succeeded"
    stats = sandbox.stats()
    assert (stats["submissions"], stats["polls"], stats["jobs"]) == (2, 1, 1)


def test_emulator_serves_outputs_and_lists_predictions(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        created = client.post(
            f"/models/{SCHNELL}/predictions",
            json={"input": {"prompt": "a cat", "output_format": "png", "megapixels": "0.25"}},
            headers={"Prefer": "wait"},
        ).json()
        listed = client.get("/predictions").json()
    image = httpx.get(created["output"][0], timeout=10)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(image.content)).size == (512, 512)
    assert [p["id"] for p in listed["results"]] == [created["id"]]
    assert created["urls"]["get"].endswith(f"/v1/predictions/{created['id']}")
