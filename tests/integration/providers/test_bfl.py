"""Contract tests: the Black Forest Labs adapter against the BFL emulator (a real
process on loopback), and the emulator itself as a stand-in for api.bfl.ai."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from PIL import Image

from imagegate.domain.actions import Box, Direction, pan_canvas, zoom_out_canvas
from imagegate.domain.params import Mode, OutputFormat
from imagegate.imaging import rectangles_mask
from imagegate.providers.base import Action, GenerationRequest, NoCorrelation
from imagegate.providers.bfl import BFLProvider, aspect_ratio, snap_pixels
from imagegate.providers.errors import (
    ModeratedError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    RetryableProviderError,
)
from imagegate.providers.http import ProviderConfig, ResultExpiredError
from imagegate.sandbox.bfl import API_KEY
from tests.support.adapters import adapter_factory
from tests.support.pictures import BLUE, YELLOW, decoded, near, two_tone
from tests.support.sandbox import SandboxProcess

Make = Callable[..., BFLProvider]
ORANGE = (200, 120, 40)


@pytest.fixture
def sandbox(sandboxes: Callable[[str], SandboxProcess]) -> SandboxProcess:
    return sandboxes("bfl")


@pytest.fixture
async def make(sandbox: SandboxProcess) -> AsyncIterator[Make]:
    async with adapter_factory(BFLProvider, "bfl", sandbox.url + "/v1", API_KEY) as build:
        yield build


def request(prompt: str = "a lighthouse at dusk", **fields: Any) -> GenerationRequest:
    values: dict[str, Any] = {
        "negative_prompt": None, "width": 1024, "height": 768, "seeds": (7,),
        "style": "none", "mode": Mode.STANDARD, "model": "flux-pro-1.1", **fields,
    }  # fmt: skip
    return GenerationRequest(prompt=prompt, **values)


class Progress:
    def __init__(self) -> None:
        self.values: list[float] = []

    async def __call__(self, fraction: float) -> None:
        self.values.append(fraction)


def api(sandbox: SandboxProcess, key: str | None = API_KEY) -> httpx.Client:
    headers = {"x-key": key} if key else {}
    return httpx.Client(base_url=sandbox.url + "/v1", headers=headers, timeout=10)


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, format="PNG")
    return out.getvalue()


class WatchingCorrelation(NoCorrelation):
    """Notes what BFL says of each task at the moment its id is recorded."""

    def __init__(self, sandbox: SandboxProcess, existing: str | None = None) -> None:
        super().__init__(existing)
        self.sandbox = sandbox
        self.statuses: list[str] = []

    async def record(self, provider_job_id: str) -> None:
        await super().record(provider_job_id)
        async with httpx.AsyncClient(base_url=self.sandbox.url + "/v1", timeout=10) as client:
            answer = await client.get(
                "/get_result", params={"id": provider_job_id.split(",")[-1]},
                headers={"x-key": API_KEY},
            )  # fmt: skip
        self.statuses.append(answer.json()["status"])


# The adapter against the emulator


async def test_one_task_per_image_with_its_seed(make: Make, sandbox: SandboxProcess) -> None:
    sandbox.faults(job_duration_ms=300)
    correlation = WatchingCorrelation(sandbox)
    result = await make().generate(
        request(width=1000, height=700, seeds=(11, 12)), Progress(), correlation
    )
    assert [(i.width, i.height, i.seed) for i in result.images] == [(992, 704, 11), (992, 704, 12)]
    for image in result.images:
        assert image.content_type == "image/png"
        with Image.open(io.BytesIO(image.data)) as decoded:
            assert (decoded.format, decoded.size) == ("PNG", (992, 704))
    # Each id was recorded while its task was still running, before any result.
    assert correlation.statuses == ["Pending", "Pending"]
    first, second = correlation.recorded
    assert second.startswith(first + ",") and result.provider_job_id == second
    assert sandbox.stats()["submissions"] == 2


async def test_jpeg_is_asked_for_and_returned(make: Make) -> None:
    result = await make().generate(
        request(output_format=OutputFormat.JPEG), Progress(), NoCorrelation()
    )
    assert result.images[0].content_type == "image/jpeg"


async def test_progress_follows_the_tasks_and_only_grows(
    make: Make, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=400)
    progress = Progress()
    await make().generate(request(seeds=(1, 2)), progress, NoCorrelation())
    assert progress.values == sorted(set(progress.values))
    assert any(0 < value < 1 for value in progress.values)
    assert progress.values[-1] == 1.0


async def test_ultra_is_sized_by_aspect_ratio(make: Make) -> None:
    result = await make().generate(
        request(model="flux-pro-1.1-ultra", width=1600, height=900), Progress(), NoCorrelation()
    )
    (image,) = result.images
    assert image.width * image.height > 3_500_000
    assert image.width / image.height == pytest.approx(16 / 9, rel=0.02)


async def test_vary_with_kontext_sends_the_source(make: Make, sandbox: SandboxProcess) -> None:
    varied = request(
        model="flux-kontext-pro", action=Action.VARIATION, source_image=png(300, 200),
        width=768, height=512, seeds=(5,),
    )  # fmt: skip
    result = await make().generate(varied, Progress(), NoCorrelation())
    (image,) = result.images
    assert image.seed == 5 and decoded(image).size == (768, 512)  # Kontext drew ~1 MP
    assert sandbox.stats()["flux-kontext-pro"] == 1


async def test_resuming_a_finished_task_does_not_submit(
    make: Make, sandbox: SandboxProcess
) -> None:
    first = await make().generate(request(seeds=(21,)), Progress(), NoCorrelation())
    assert first.provider_job_id is not None
    correlation = NoCorrelation(existing=first.provider_job_id)
    again = await make().generate(request(seeds=(21,)), Progress(), correlation)
    assert again.provider_job_id == first.provider_job_id
    assert again.images[0].data == first.images[0].data
    assert correlation.recorded == []
    assert sandbox.stats()["submissions"] == 1


async def test_resuming_a_running_task_polls_it(make: Make, sandbox: SandboxProcess) -> None:
    sandbox.faults(job_duration_ms=300)
    with api(sandbox) as client:
        task_id = client.post("/flux-dev", json={"prompt": "a fox", "seed": 4}).json()["id"]
    progress = Progress()
    result = await make().generate(
        request(model="flux-dev", seeds=(4,)), progress, NoCorrelation(existing=task_id)
    )
    assert result.provider_job_id == task_id and result.images[0].seed == 4
    assert progress.values[-1] == 1.0
    stats = sandbox.stats()
    assert stats["submissions"] == 1 and stats["polls"] >= 2


async def test_a_task_bfl_no_longer_knows_is_submitted_anew(
    make: Make, sandbox: SandboxProcess
) -> None:
    correlation = NoCorrelation(existing="0b6f3c1e-0000-4000-8000-000000000000")
    result = await make().generate(request(), Progress(), correlation)
    assert correlation.recorded == [result.provider_job_id]
    assert result.provider_job_id != correlation.existing
    assert sandbox.stats()["submissions"] == 1


async def test_a_partly_submitted_job_submits_only_the_rest(
    make: Make, sandbox: SandboxProcess
) -> None:
    with api(sandbox) as client:
        known = client.post("/flux-pro-1.1", json={"prompt": "a", "seed": 1}).json()["id"]
    correlation = NoCorrelation(existing=known)
    result = await make().generate(request(seeds=(1, 2)), Progress(), correlation)
    assert result.provider_job_id is not None
    assert result.provider_job_id.split(",")[0] == known
    assert correlation.recorded == [result.provider_job_id]
    assert sandbox.stats()["submissions"] == 2


async def test_a_refused_later_submission_leaves_the_recorded_tasks_to_resume(
    make: Make, sandbox: SandboxProcess
) -> None:
    with api(sandbox) as client:
        known = client.post("/flux-pro-1.1", json={"prompt": "a", "seed": 1}).json()["id"]
    sandbox.faults(error_status=429, error_count=1, retry_after_s=1)
    with pytest.raises(RateLimitedError) as caught:
        await make().generate(request(seeds=(1, 2)), Progress(), NoCorrelation(existing=known))
    assert caught.value.resumable  # the next attempt polls ``known`` instead of paying again
    result = await make().generate(request(seeds=(1, 2)), Progress(), NoCorrelation(known))
    assert result.provider_job_id is not None and result.provider_job_id.startswith(known)
    assert sandbox.stats()["submissions"] == 2


def test_capabilities_are_honest(make: Make) -> None:
    capabilities = make().capabilities()
    assert capabilities.seeds is True and capabilities.negative_prompt is False
    assert capabilities.actions == (
        Action.IMAGINE, Action.IMG2IMG, Action.VARIATION, Action.ZOOM_OUT, Action.PAN,
        Action.VARY_REGION, Action.BLEND,
    )  # fmt: skip
    assert capabilities.style_reference and capabilities.tuning == frozenset()
    text_only = BFLProvider(ProviderConfig(name="b", type="bfl", models=("flux-pro-1.1",)))
    assert text_only.capabilities().actions == (Action.IMAGINE, Action.VARIATION)
    assert make().estimate_credits(request(seeds=(1, 2, 3), mode=Mode.DRAFT)) == 3


def test_sizes_snap_to_multiples_of_32_within_bounds() -> None:
    assert snap_pixels(1024, 768) == (1024, 768)
    assert snap_pixels(1000, 700) == (992, 704)
    assert snap_pixels(2048, 1024) == (1440, 736)
    assert snap_pixels(100, 200) == (256, 512)
    assert aspect_ratio(1600, 900) == "16:9"
    assert aspect_ratio(1000, 100) == "7:3"  # clamped to 21:9
    assert aspect_ratio(777, 1000) == "7:9"


# The actions: fill, expand, Kontext, the image prompt


def region(prompt: str = "a red door", **fields: Any) -> GenerationRequest:
    mask = rectangles_mask(128, 96, [Box(64, 0, 64, 96)])
    values = {"action": Action.VARY_REGION, "source_image": two_tone(128, 96), "mask": mask,
              "width": 128, "height": 96, **fields}  # fmt: skip
    return request(prompt, **values)


async def test_vary_region_goes_to_fill_and_repaints_only_the_mask(
    make: Make, sandbox: SandboxProcess
) -> None:
    result = await make().generate(region(seeds=(1, 2)), Progress(), NoCorrelation())
    for image in result.images:
        picture = decoded(image)
        assert picture.size == (128, 96)
        assert near(picture.getpixel((10, 48)), BLUE)  # unmasked: kept
        assert not near(picture.getpixel((120, 48)), YELLOW)  # masked: repainted
    assert sandbox.stats()["flux-pro-1.0-fill"] == 2  # the job's model was flux-pro-1.1


async def test_zoom_out_expands_around_the_shrunk_source(
    make: Make, sandbox: SandboxProcess
) -> None:
    job = request(action=Action.ZOOM_OUT, source_image=png(128, 128), width=128, height=128,
                  canvas=zoom_out_canvas(128, 128, 2.0))  # fmt: skip
    (image,) = (await make().generate(job, Progress(), NoCorrelation())).images
    picture = decoded(image)
    assert picture.size == (128, 128)
    assert near(picture.getpixel((64, 64)), ORANGE) and not near(picture.getpixel((3, 3)), ORANGE)
    assert sandbox.stats()["flux-pro-1.0-expand"] == 1


async def test_pan_up_keeps_the_source_below_the_new_part(make: Make) -> None:
    canvas = pan_canvas(96, 64, Direction.UP)
    job = request(action=Action.PAN, direction=Direction.UP, source_image=png(96, 64),
                  canvas=canvas, width=canvas.width, height=canvas.height)  # fmt: skip
    (image,) = (await make().generate(job, Progress(), NoCorrelation())).images
    picture = decoded(image)
    assert picture.size == (96, 96)
    assert near(picture.getpixel((48, 90)), ORANGE) and not near(picture.getpixel((48, 4)), ORANGE)


async def test_img2img_and_blend_go_to_kontext(make: Make, sandbox: SandboxProcess) -> None:
    img2img = request(action=Action.IMG2IMG, source_image=png(200, 150), strength=0.5,
                      width=200, height=150)  # fmt: skip
    (image,) = (await make().generate(img2img, Progress(), NoCorrelation())).images
    assert decoded(image).size == (200, 150)
    blend = request(action=Action.BLEND, width=120, height=80,
                    source_images=(png(64, 64), two_tone(80, 40), png(30, 60)))  # fmt: skip
    (image,) = (await make().generate(blend, Progress(), NoCorrelation())).images
    assert decoded(image).size == (120, 80)
    assert sandbox.stats()["flux-kontext-pro"] == 2


async def test_what_flux_cannot_do_is_refused_before_any_call(
    make: Make, sandbox: SandboxProcess
) -> None:
    five = request(action=Action.BLEND, source_images=tuple(png(32, 32) for _ in range(5)))
    with pytest.raises(PermanentProviderError, match="2 to 4 images"):
        await make().generate(five, Progress(), NoCorrelation())
    for action in (Action.UPSCALE, Action.DESCRIBE):
        with pytest.raises(PermanentProviderError, match=f"no configured FLUX model can {action}"):
            await make().generate(
                request(action=action, source_image=png(32, 32)), Progress(), NoCorrelation()
            )
    with pytest.raises(PermanentProviderError, match="needs a mask"):
        await make().generate(region(mask=None), Progress(), NoCorrelation())
    assert sandbox.stats().get("requests", 0) == 0


async def test_a_style_reference_is_the_image_prompt(make: Make, sandbox: SandboxProcess) -> None:
    job = request(model="flux-pro-1.1-ultra", style_image=png(64, 64), style_weight=250,
                  width=1024, height=1024)  # fmt: skip
    (image,) = (await make().generate(job, Progress(), NoCorrelation())).images
    assert image.width == image.height
    broken = request(style_image=b"not an image")  # the emulator checks it, as BFL does
    with pytest.raises(PermanentProviderError, match="422"):
        await make().generate(broken, Progress(), NoCorrelation())


@pytest.mark.parametrize(
    ("marker", "error"),
    [("sandbox:402", PermanentProviderError), ("sandbox:429", RateLimitedError),
     ("sandbox:moderate", ModeratedError)],
)  # fmt: skip
async def test_fill_fails_as_bfl_does(make: Make, marker: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        await make().generate(region(f"a door {marker}"), Progress(), NoCorrelation())


def test_emulator_validates_fill_and_expand(sandbox: SandboxProcess) -> None:
    image = base64.b64encode(png(64, 64)).decode()
    with api(sandbox) as client:
        far = client.post("/flux-pro-1.0-expand", json={"image": image, "top": 3000})
        no_image = client.post("/flux-pro-1.0-fill", json={"prompt": "a door"})
        bad_mask = client.post("/flux-pro-1.0-fill", json={"image": image, "mask": "AAAA"})
    assert far.status_code == no_image.status_code == bad_mask.status_code == 422
    assert far.json()["detail"][0]["loc"] == ["body", "top"]
    assert no_image.json()["detail"][0]["loc"] == ["body", "image"]
    assert bad_mask.json()["detail"][0]["loc"] == ["body", "mask"]
    assert sandbox.stats().get("submissions", 0) == 0


# Injected faults, each read into the taxonomy


async def test_429_is_rate_limited_with_retry_after(make: Make, sandbox: SandboxProcess) -> None:
    sandbox.faults(error_status=429, error_count=1, retry_after_s=3)
    with pytest.raises(RateLimitedError) as caught:
        await make().generate(request(), Progress(), NoCorrelation())
    assert caught.value.retry_after == 3.0
    stats = sandbox.stats()
    assert stats["requests"] == 1 and stats.get("submissions", 0) == 0 and stats["jobs"] == 0


async def test_out_of_credits_is_permanent(make: Make) -> None:
    with pytest.raises(PermanentProviderError, match="402"):
        await make().generate(request("a fox sandbox:402"), Progress(), NoCorrelation())


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_retryable(make: Make, status: int) -> None:
    with pytest.raises(RetryableProviderError) as caught:
        await make().generate(request(f"a fox sandbox:{status}"), Progress(), NoCorrelation())
    assert not isinstance(caught.value, RateLimitedError)


async def test_a_hung_submission_fails_retryable_within_the_timeout(make: Make) -> None:
    started = time.monotonic()
    with pytest.raises(RetryableProviderError, match="timed out") as caught:
        await make(timeout_s=1.0).generate(
            request("a fox sandbox:timeout"), Progress(), NoCorrelation()
        )
    assert not caught.value.resumable  # no task was created
    assert time.monotonic() - started < 5


async def test_a_task_that_runs_too_long_is_retryable_and_resumable(
    make: Make, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=60_000)
    correlation = NoCorrelation()
    with pytest.raises(RetryableProviderError) as caught:
        await make(timeout_s=0.5).generate(request(), Progress(), correlation)
    assert caught.value.resumable
    assert caught.value.provider_job_id == correlation.recorded[-1]


async def test_a_malformed_body_is_an_unclassified_error(make: Make) -> None:
    with pytest.raises(ProviderError) as caught:
        await make().generate(request("a fox sandbox:malformed"), Progress(), NoCorrelation())
    assert caught.value.retryable
    assert not isinstance(caught.value, PermanentProviderError | ModeratedError)


async def test_request_moderated_is_never_retried(make: Make) -> None:
    correlation = NoCorrelation()
    with pytest.raises(ModeratedError, match="Request Moderated") as caught:
        await make().generate(request("a fox sandbox:moderate"), Progress(), correlation)
    assert not caught.value.retryable and not caught.value.resumable
    assert caught.value.provider_job_id == correlation.recorded[0]


async def test_content_moderated_wins_over_the_other_images(
    make: Make, sandbox: SandboxProcess
) -> None:
    sandbox.faults(moderation=True, job_duration_ms=100)
    with pytest.raises(ModeratedError, match="Content Moderated"):
        await make().generate(request(seeds=(1, 2)), Progress(), NoCorrelation())


async def test_an_expired_sample_url(make: Make) -> None:
    with pytest.raises(ResultExpiredError):
        await make().generate(request("a fox sandbox:expired"), Progress(), NoCorrelation())


async def test_a_failed_task_is_an_unclassified_error(make: Make) -> None:
    with pytest.raises(ProviderError, match="Error") as caught:
        await make().generate(request("a fox sandbox:fail"), Progress(), NoCorrelation())
    assert type(caught.value) is ProviderError
    assert caught.value.retryable and not caught.value.resumable


async def test_a_wrong_key_is_permanent(make: Make, sandbox: SandboxProcess) -> None:
    with pytest.raises(PermanentProviderError, match="403"):
        await make(api_key="not-the-key").generate(request(), Progress(), NoCorrelation())
    assert sandbox.stats().get("submissions", 0) == 0


# The emulator itself, as a user's integration sees it


def test_emulator_auth_answers_bfls_403s(sandbox: SandboxProcess) -> None:
    with api(sandbox, key=None) as client:
        missing = client.post("/flux-dev", json={"prompt": "x"})
    with api(sandbox, key="wrong") as client:
        wrong = client.post("/flux-dev", json={"prompt": "x"})
        poll = client.get("/get_result", params={"id": "x"})
    assert missing.status_code == wrong.status_code == poll.status_code == 403
    assert missing.json() == {"detail": "Not authenticated"}
    assert wrong.json() == {"detail": "Not authenticated - Invalid Authentication"}


def test_emulator_validates_with_422s(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        width = client.post("/flux-pro-1.1", json={"prompt": "x", "width": 1000})
        ratio = client.post("/flux-pro-1.1-ultra", json={"prompt": "x", "aspect_ratio": "4:1"})
        unknown = client.post("/flux-nonexistent", json={"prompt": "x"})
    assert width.status_code == ratio.status_code == 422
    (error,) = width.json()["detail"]
    assert (error["loc"], error["type"]) == (["body", "width"], "multiple_of")
    assert ratio.json()["detail"][0]["loc"] == ["body", "aspect_ratio"]
    assert unknown.status_code == 404


def test_emulator_tasks_poll_and_deliver(sandbox: SandboxProcess) -> None:
    source = base64.b64encode(png(64, 64)).decode()
    with api(sandbox) as client:
        submitted = client.post("/flux-kontext-pro", json={"prompt": "x", "input_image": source})
        polled = client.get(submitted.json()["polling_url"])
        sample = httpx.get(polled.json()["result"]["sample"], timeout=10)
        unknown = client.get("/get_result", params={"id": "no-such-task"})
    assert set(submitted.json()) == {"id", "polling_url"}
    assert polled.json()["status"] == "Ready" and polled.json()["id"] == submitted.json()["id"]
    assert sample.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(sample.content)).size == (1024, 1024)
    assert unknown.json()["status"] == "Task not found"
    stats = sandbox.stats()
    assert (stats["submissions"], stats["polls"], stats["jobs"]) == (1, 2, 1)


def test_emulator_sample_urls_expire(sandbox: SandboxProcess) -> None:
    with api(sandbox) as client:
        task = client.post("/flux-dev", json={"prompt": "x sandbox:expired"}).json()
        result = client.get(task["polling_url"]).json()["result"]
    expired = httpx.get(result["sample"], timeout=10)
    assert expired.status_code == 403 and "AuthenticationFailed" in expired.text
