"""Contract tests: the Replicate adapter against the Replicate emulator (a real
process on loopback), and the emulator itself as a stand-in for api.replicate.com."""

from __future__ import annotations

import asyncio
import base64
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
from imagegate.providers.http import ResultExpiredError
from imagegate.providers.replicate import ReplicateProvider
from imagegate.providers.replicate_inputs import BLIP, FILL_MODEL, IMG2PROMPT, SDXL, UPSCALER
from tests.support.adapters import adapter_factory
from tests.support.pictures import box_mask, decoded, max_difference, scene
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
    upscale = request(
        action=Action.UPSCALE, source_image=png(64, 48), upscale_factor=2, width=128, height=96
    )
    [image] = (await make().generate(upscale, ignore, NoCorrelation())).images
    assert (image.width, image.height, image.content_type) == (128, 96, "image/png")


async def test_vary_on_a_model_without_image_input_uses_flux_dev(
    make: Make, sandbox: SandboxProcess
) -> None:
    vary = request(
        action=Action.VARIATION, source_image=png(320, 240), strength=0.4, width=320, height=240
    )
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


# -- the workflow actions, a model each -------------------------------------------------


def prediction_of(sandbox: SandboxProcess, prediction_id: str | None) -> dict[str, Any]:
    with api(sandbox) as client:
        body: dict[str, Any] = client.get(f"/predictions/{prediction_id}").json()
    return body


def test_capabilities_list_the_actions_that_have_a_model(make: Make) -> None:
    assert make().capabilities().actions == (
        Action.IMAGINE, Action.IMG2IMG, Action.VARIATION, Action.UPSCALE, Action.ZOOM_OUT,
        Action.PAN, Action.VARY_REGION, Action.DESCRIBE,
    )  # fmt: skip
    trimmed = make(models={"pan": "", "zoom_out": "", "describe": ""}).capabilities()
    assert Action.PAN not in trimmed.actions and Action.DESCRIBE not in trimmed.actions
    assert Action.VARY_REGION in trimmed.actions and Action.BLEND not in trimmed.actions


async def test_an_action_without_a_model_is_refused_before_submitting(
    make: Make, sandbox: SandboxProcess
) -> None:
    provider = make(models={"describe": ""})
    describe = request(action=Action.DESCRIBE, source_image=scene(64, 64))
    with pytest.raises(PermanentProviderError, match=r"options\.models\.describe"):
        await provider.generate(describe, ignore, NoCorrelation())
    assert sandbox.stats().get("submissions", 0) == 0


@pytest.mark.parametrize("factor", [2, 4])
async def test_upscale_is_exactly_factor_times_the_source(
    make: Make, sandbox: SandboxProcess, factor: int
) -> None:
    source = scene(60, 44)
    upscale = request(
        action=Action.UPSCALE, source_image=source, upscale_factor=factor,
        width=60 * factor, height=44 * factor,
    )  # fmt: skip
    result = await make().generate(upscale, ignore, NoCorrelation())
    [image] = result.images
    assert decoded(image).size == (60 * factor, 44 * factor)
    sent = prediction_of(sandbox, result.provider_job_id)
    assert sent["version"] == UPSCALER.split(":")[1] and sent["input"]["scale"] == factor
    assert sent["input"]["image"].startswith("data:image/png;base64,")


async def test_a_creative_upscale_runs_the_creative_model_when_one_is_configured(
    make: Make, sandbox: SandboxProcess
) -> None:
    creative = request(
        action=Action.UPSCALE, source_image=scene(40, 30), upscale_factor=2, width=80,
        height=60, upscale_mode=UpscaleMode.CREATIVE,
    )  # fmt: skip
    plain = await make().generate(creative, ignore, NoCorrelation())
    assert prediction_of(sandbox, plain.provider_job_id)["model"] == "nightmareai/real-esrgan"
    other = "nightmareai/real-esrgan:" + "0" * 64  # a version the emulator does not have
    with pytest.raises(PermanentProviderError, match="Invalid version"):
        await make(models={"upscale_creative": other}).generate(creative, ignore, NoCorrelation())


async def test_img2img_sends_the_source_and_its_strength(
    make: Make, sandbox: SandboxProcess
) -> None:
    source = scene(256, 192)
    near = request(action=Action.IMG2IMG, source_image=source, strength=0.1, width=256, height=192)
    far = request(action=Action.IMG2IMG, source_image=source, strength=0.9, width=256, height=192)
    near_result = await make().generate(near, ignore, NoCorrelation())
    far_result = await make().generate(far, ignore, NoCorrelation())
    sent = prediction_of(sandbox, near_result.provider_job_id)
    assert sent["model"] == "black-forest-labs/flux-dev" and sent["input"]["prompt_strength"] == 0.1
    original = decoded(source)
    near_image, far_image = decoded(near_result.images[0]), decoded(far_result.images[0])
    assert near_image.size == far_image.size == (256, 192)
    # A low strength stays near the source, a high one moves away from it.
    assert max_difference(near_image, original) < max_difference(far_image, original)


async def test_vary_region_repaints_only_the_masked_pixels(
    make: Make, sandbox: SandboxProcess
) -> None:
    source, mask = scene(128, 96), box_mask(128, 96, (32, 16, 96, 64))
    vary = request(
        action=Action.VARY_REGION, source_image=source, mask=mask, width=128, height=96,
        output_format=OutputFormat.PNG,
    )  # fmt: skip
    result = await make().generate(vary, ignore, NoCorrelation())
    image, original = decoded(result.images[0]), decoded(source)
    assert image.size == (128, 96)
    assert image.crop((0, 0, 128, 16)).tobytes() == original.crop((0, 0, 128, 16)).tobytes()
    assert image.crop((32, 16, 96, 64)).tobytes() != original.crop((32, 16, 96, 64)).tobytes()
    sent = prediction_of(sandbox, result.provider_job_id)["input"]
    assert sent["mask"].startswith("data:image/png;base64,") and sent["output_format"] == "png"
    assert prediction_of(sandbox, result.provider_job_id)["model"] == FILL_MODEL


async def test_zoom_out_keeps_the_source_shrunk_in_the_centre(make: Make) -> None:
    source = scene(128, 128)
    canvas = zoom_out_canvas(128, 128, 2.0)
    zoom = request(
        action=Action.ZOOM_OUT, source_image=source, canvas=canvas, width=128, height=128,
        output_format=OutputFormat.PNG,
    )  # fmt: skip
    [image] = (await make().generate(zoom, ignore, NoCorrelation())).images
    box = canvas.source
    centre = decoded(image).crop((box.left, box.top, box.right, box.bottom))
    shrunk = decoded(source).resize((box.width, box.height), Image.Resampling.LANCZOS)
    assert decoded(image).size == (128, 128)
    assert max_difference(centre, shrunk) <= 2


async def test_pan_left_keeps_the_source_on_the_right(make: Make) -> None:
    source = scene(96, 64)
    canvas = pan_canvas(96, 64, Direction.LEFT)
    pan = request(
        action=Action.PAN, source_image=source, canvas=canvas, direction=Direction.LEFT,
        width=canvas.width, height=canvas.height, output_format=OutputFormat.WEBP,
    )  # fmt: skip
    [image] = (await make().generate(pan, ignore, NoCorrelation())).images
    # FLUX Fill pro encodes jpg or png only: a WebP job gets PNG, lossless.
    assert image.content_type == "image/png"
    wide = decoded(image)
    assert wide.size == (canvas.width, 64)
    kept = wide.crop((canvas.source.left, 0, canvas.width, 64))
    assert kept.tobytes() == decoded(source).tobytes()


# -- a model that makes fewer images per prediction: one prediction per seed -----------

SEEDS = (11, 12, 13, 14)


def fill_job(action: Action, **fields: Any) -> GenerationRequest:
    """A four-image fill job at 96x64: a region repaint, or a 2x zoom out."""
    source = scene(96, 64)
    if action is Action.VARY_REGION:
        values: dict[str, Any] = {"mask": box_mask(96, 64, (24, 16, 72, 48))}
    else:
        values = {"canvas": zoom_out_canvas(96, 64, 2.0)}
    values = {"seeds": SEEDS, "output_format": OutputFormat.PNG, **values, **fields}
    return request(action=action, source_image=source, width=96, height=64, **values)


def ids_of(provider_job_id: str | None) -> list[str]:
    return (provider_job_id or "").split(",")


@pytest.mark.parametrize("action", [Action.ZOOM_OUT, Action.VARY_REGION])
async def test_four_fill_images_are_four_predictions_of_one_seed_each(
    make: Make, sandbox: SandboxProcess, action: Action
) -> None:
    seen: list[float] = []

    async def progress(value: float) -> None:
        seen.append(value)

    correlation = NoCorrelation()
    result = await make().generate(fill_job(action), progress, correlation)

    assert [image.seed for image in result.images] == list(SEEDS)
    for image in result.images:
        assert decoded(image).size == (96, 64) and image.content_type == "image/png"
    assert len({image.data for image in result.images}) == 4  # four seeds, four pictures
    ids = ids_of(result.provider_job_id)
    assert len(set(ids)) == 4 and correlation.recorded[-1] == result.provider_job_id
    sent = [prediction_of(sandbox, prediction_id) for prediction_id in ids]
    assert [p["input"]["seed"] for p in sent] == list(SEEDS)
    assert all(p["model"] == FILL_MODEL and "num_outputs" not in p["input"] for p in sent)
    assert sandbox.stats()["submissions"] == 4
    assert seen == sorted(seen) and seen[-1] == 1.0 and seen.count(1.0) == 1


class Crash(Exception):
    """The worker dying between two records."""


class CrashingCorrelation(NoCorrelation):
    """Records, then crashes once ``after`` prediction ids are recorded."""

    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    async def record(self, provider_job_id: str) -> None:
        await super().record(provider_job_id)
        if len(ids_of(provider_job_id)) == self.after:
            raise Crash(provider_job_id)


async def test_a_crash_after_two_of_four_predictions_resumes_them_and_makes_two_more(
    make: Make, sandbox: SandboxProcess
) -> None:
    crashing = CrashingCorrelation(after=2)
    with pytest.raises(Crash):
        await make().generate(fill_job(Action.ZOOM_OUT), ignore, crashing)
    first_two = crashing.recorded[-1]
    assert len(ids_of(first_two)) == 2 and sandbox.stats()["submissions"] == 2

    correlation = NoCorrelation(existing=first_two)
    result = await make().generate(fill_job(Action.ZOOM_OUT), ignore, correlation)

    ids = ids_of(result.provider_job_id)
    assert ids[:2] == ids_of(first_two) and len(set(ids)) == 4
    assert correlation.recorded == [f"{first_two},{ids[2]}", result.provider_job_id]
    assert sandbox.stats()["submissions"] == 4
    assert [image.seed for image in result.images] == list(SEEDS)
    assert [prediction_of(sandbox, i)["input"]["seed"] for i in ids] == list(SEEDS)


class SignallingCorrelation(NoCorrelation):
    """Sets ``ready`` once ``count`` prediction ids are recorded."""

    def __init__(self, count: int) -> None:
        super().__init__()
        self.count, self.ready = count, asyncio.Event()

    async def record(self, provider_job_id: str) -> None:
        await super().record(provider_job_id)
        if len(ids_of(provider_job_id)) == self.count:
            self.ready.set()


async def test_cancel_of_a_multi_prediction_job_cancels_every_prediction(
    make: Make, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=30_000)
    provider = make()
    correlation = SignallingCorrelation(count=4)
    running = asyncio.create_task(provider.generate(fill_job(Action.ZOOM_OUT), ignore, correlation))
    async with asyncio.timeout(10):
        await correlation.ready.wait()
    # As the runner does for a canceled job: interrupt the call, then cancel its ids.
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    await provider.cancel(correlation.recorded[-1])

    ids = ids_of(correlation.recorded[-1])
    assert [prediction_of(sandbox, i)["status"] for i in ids] == ["canceled"] * 4
    assert sandbox.stats()["cancels"] == 4


async def test_one_failed_prediction_fails_the_job_and_cancels_the_others(
    make: Make, sandbox: SandboxProcess
) -> None:
    # The first prediction fails at once; the three after it would run for 30 s.
    sandbox.faults(fail_jobs=True)

    class FirstFails(NoCorrelation):
        async def record(self, provider_job_id: str) -> None:
            await super().record(provider_job_id)
            if len(ids_of(provider_job_id)) == 1:
                async with httpx.AsyncClient(timeout=5) as client:
                    faults = {"job_duration_ms": 30_000}
                    await client.post(f"{sandbox.url}/_sandbox/faults", json=faults)

    correlation = FirstFails()
    with pytest.raises(ProviderError, match="E1000") as caught:
        await make().generate(fill_job(Action.VARY_REGION), ignore, correlation)

    ids = ids_of(correlation.recorded[-1])
    assert type(caught.value) is ProviderError and not caught.value.resumable
    assert caught.value.provider_job_id == ids[0] and len(ids) == 4
    statuses = [prediction_of(sandbox, i)["status"] for i in ids]
    assert statuses == ["failed", "canceled", "canceled", "canceled"]


async def test_more_images_than_a_job_has_is_refused_before_submitting(
    make: Make, sandbox: SandboxProcess
) -> None:
    with pytest.raises(PermanentProviderError, match="at most 4 images"):
        await make().generate(
            fill_job(Action.ZOOM_OUT, seeds=(1, 2, 3, 4, 5)), ignore, NoCorrelation()
        )
    assert sandbox.stats().get("submissions", 0) == 0


def test_emulator_fill_makes_one_image_whatever_num_outputs_says(sandbox: SandboxProcess) -> None:
    image, mask = scene(32, 32), box_mask(32, 32, (0, 0, 8, 8))
    data = {
        "image": "data:image/png;base64," + base64.b64encode(image).decode(),
        "mask": "data:image/png;base64," + base64.b64encode(mask).decode(),
        "num_outputs": 4,
    }
    with api(sandbox) as client:
        created = client.post(
            f"/models/{FILL_MODEL}/predictions", json={"input": data}, headers={"Prefer": "wait"}
        ).json()
    assert created["status"] == "succeeded" and isinstance(created["output"], str)
    assert decoded(httpx.get(created["output"], timeout=10).content).size == (32, 32)
    assert httpx.get(created["output"].replace("out-0", "out-1"), timeout=10).status_code == 404


async def test_a_mask_of_another_size_fails_the_prediction(make: Make) -> None:
    vary = request(
        action=Action.VARY_REGION, source_image=scene(64, 64), mask=box_mask(32, 32, (0, 0, 8, 8)),
        width=64, height=64,
    )  # fmt: skip
    with pytest.raises(ProviderError, match="does not match image size") as failed:
        await make().generate(vary, ignore, NoCorrelation())
    assert not isinstance(failed.value, PermanentProviderError | RetryableProviderError)


@pytest.mark.parametrize("model", [IMG2PROMPT, BLIP])
async def test_describe_makes_four_prompt_suggestions_from_the_caption(
    make: Make, sandbox: SandboxProcess, model: str
) -> None:
    blue = Image.new("RGB", (96, 64), (50, 90, 200))
    describe = request(action=Action.DESCRIBE, source_image=png_of(blue))
    result = await make(models={"describe": model}).generate(describe, ignore, NoCorrelation())
    assert result.images == () and len(result.texts) == 4
    assert result.texts[0].startswith("a wide picture in blue tones")
    assert all(text.startswith("a wide picture in blue tones") for text in result.texts)
    assert len(set(result.texts)) == 4 and not any("Caption:" in t for t in result.texts)
    sent = prediction_of(sandbox, result.provider_job_id)
    assert isinstance(sent["output"], str) and sent["version"] == model.split(":")[1]


def png_of(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_emulator_checks_the_fill_models_input(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        response = client.post(
            f"/models/{FILL_MODEL}/predictions",
            json={"input": {"prompt": "a cat", "output_format": "webp", "steps": 5}},
        )
    assert response.status_code == 422
    body = response.json()
    fields = {problem["field"] for problem in body["invalid_fields"]}
    assert fields == {"input", "input.output_format", "input.steps"}
    assert "image is required" in body["detail"]


async def test_an_actions_images_are_fitted_to_the_requested_size(make: Make) -> None:
    # FLUX dev answers at the input's size; the job asked for another: it is resampled.
    vary = request(action=Action.VARIATION, source_image=scene(100, 60), width=120, height=72)
    [image] = (await make().generate(vary, ignore, NoCorrelation())).images
    assert (image.width, image.height) == (120, 72) and decoded(image).size == (120, 72)
