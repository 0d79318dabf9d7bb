"""Contract tests: the AUTOMATIC1111 adapter against the WebUI emulator (a real process
on loopback), and the emulator itself as a stand-in for a WebUI started with --api."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from imagegate.domain.params import Mode
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


def png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (40, 90, 200)).save(buffer, "PNG")
    return buffer.getvalue()


# -- the happy path --------------------------------------------------------------------


async def test_txt2img_images_are_decoded_with_the_seeds_the_webui_used(
    make: Make, sandbox: SandboxProcess
) -> None:
    result = await make().generate(
        request(seeds=(5, 6), width=300, height=201), ignore, NoCorrelation()
    )

    assert [image.seed for image in result.images] == [5, 6]
    for image in result.images:
        # Sides snapped to the nearest multiple of 8.
        assert (image.width, image.height, image.content_type) == (304, 200, "image/png")
        with Image.open(io.BytesIO(image.data)) as decoded:
            assert decoded.format == "PNG" and decoded.size == (304, 200)
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


async def test_vary_runs_img2img_on_the_source_image(make: Make) -> None:
    vary = request(action=Action.VARIATION, source_image=png(320, 240), width=320, height=240)
    [image] = (await make().generate(vary, ignore, NoCorrelation())).images
    assert (image.width, image.height, image.seed) == (320, 240, 7)


async def test_upscale_runs_extras_with_the_factor(make: Make) -> None:
    upscale = request(action=Action.UPSCALE, source_image=png(64, 48), upscale_factor=3)
    [image] = (await make().generate(upscale, ignore, NoCorrelation())).images
    assert (image.width, image.height, image.content_type) == (192, 144, "image/png")


async def test_an_unknown_upscaler_is_permanent(make: Make) -> None:
    upscale = request(action=Action.UPSCALE, source_image=png(64, 48), upscale_factor=2)
    with pytest.raises(PermanentProviderError, match="could not find upscaler"):
        await make(upscaler="Imaginary 9x").generate(upscale, ignore, NoCorrelation())


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
