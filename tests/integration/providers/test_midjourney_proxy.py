"""Contract tests: the midjourney_proxy adapter against its emulator (a real process on
loopback speaking the midjourney-proxy protocol)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import httpx
import pytest
from PIL import Image, ImageChops, ImageStat

from imagegate.domain.actions import Direction, UpscaleMode, pan_canvas, zoom_out_canvas
from imagegate.domain.params import Mode
from imagegate.providers.base import Action, GenerationRequest, NoCorrelation
from imagegate.providers.config import ConfigError
from imagegate.providers.errors import (
    ModeratedError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    RetryableProviderError,
)
from imagegate.providers.http import ProviderConfig
from imagegate.providers.midjourney_proxy import MidjourneyProxyProvider, prompt_for
from imagegate.sandbox.midjourney_proxy import API_SECRET
from tests.support.adapters import adapter_factory
from tests.support.pictures import decoded
from tests.support.sandbox import SandboxProcess

Make = Callable[..., MidjourneyProxyProvider]


@pytest.fixture
def sandbox(sandboxes: Callable[[str], SandboxProcess]) -> SandboxProcess:
    return sandboxes("midjourney_proxy")


@pytest.fixture
async def make(sandbox: SandboxProcess) -> AsyncIterator[Make]:
    async with adapter_factory(
        MidjourneyProxyProvider, "midjourney_proxy", sandbox.url, API_SECRET
    ) as build:
        yield build


def request(prompt: str = "a lighthouse at dusk", **fields: Any) -> GenerationRequest:
    values: dict[str, Any] = {
        "negative_prompt": None, "width": 768, "height": 512, "seeds": (7, 8, 9, 10),
        "style": "none", "mode": Mode.STANDARD, "model": "v7", **fields,
    }  # fmt: skip
    return GenerationRequest(prompt=prompt, **values)


class Progress:
    def __init__(self) -> None:
        self.values: list[float] = []

    async def __call__(self, fraction: float) -> None:
        self.values.append(fraction)


def upstream(sandbox: SandboxProcess, path: str, **json: Any) -> Any:
    """A call straight to the emulator, as another client of the upstream would."""
    headers = {"mj-api-secret": API_SECRET}
    with httpx.Client(base_url=sandbox.url, headers=headers, timeout=10) as client:
        response = client.post(path, json=json) if json else client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


def upstream_image(task: dict[str, Any]) -> Image.Image:
    """The picture a Task's ``imageUrl`` serves, as the upstream drew it."""
    response = httpx.get(task["imageUrl"], timeout=10)
    assert response.status_code == 200
    return decoded(response.content)


async def test_imagine_splits_the_grid_into_four_images(
    make: Make, sandbox: SandboxProcess
) -> None:
    correlation = NoCorrelation()
    result = await make().generate(request(), Progress(), correlation)
    assert [(i.width, i.height, i.seed) for i in result.images] == [
        (768, 512, 7), (768, 512, 8), (768, 512, 9), (768, 512, 10),
    ]  # fmt: skip
    pictures = [decoded(i) for i in result.images]
    assert all(p.size == (768, 512) for p in pictures)
    # Four different quadrants, not one picture four times.
    assert len({i.data for i in result.images}) == 4
    assert correlation.recorded == [result.provider_job_id]
    assert sandbox.stats()["submissions"] == 1
    task = upstream(sandbox, f"/mj/task/{result.provider_job_id}/fetch")
    assert task["properties"]["finalPrompt"] == "a lighthouse at dusk --ar 3:2 --seed 7 --v 7"


async def test_fewer_seeds_take_the_first_quadrants(make: Make) -> None:
    four = await make().generate(request(), Progress(), NoCorrelation())
    two = await make().generate(request(seeds=(7, 8)), Progress(), NoCorrelation())
    assert [i.data for i in two.images] == [i.data for i in four.images[:2]]


def test_the_prompt_carries_the_flags() -> None:
    asked = request(
        "a  fox\nin snow", negative_prompt="people, cars", model="niji6", width=1456,
        height=816, seeds=(2**32 + 5,), tuning={"stylize": 250, "chaos": 10, "raw": True},
    )  # fmt: skip
    assert prompt_for(asked) == (
        "a fox in snow --ar 16:9 --seed 5 --no people, cars --niji 6 --s 250 --c 10 --style raw"
    )
    assert prompt_for(request(mode=Mode.DRAFT)).endswith("--v 7 --draft")


async def test_a_banned_prompt_is_moderated(make: Make, sandbox: SandboxProcess) -> None:
    with pytest.raises(ModeratedError, match="code 24"):
        await make().generate(request("a thing sandbox:banned"), Progress(), NoCorrelation())
    assert sandbox.stats().get("submissions", 0) == 0


async def test_a_full_queue_is_rate_limited(make: Make) -> None:
    with pytest.raises(RateLimitedError, match="code 23"):
        await make().generate(request("a thing sandbox:queuefull"), Progress(), NoCorrelation())


async def test_a_server_error_is_retryable(make: Make) -> None:
    with pytest.raises(RetryableProviderError) as raised:
        await make().generate(request("a thing sandbox:503"), Progress(), NoCorrelation())
    assert not isinstance(raised.value, PermanentProviderError | ModeratedError)


async def test_a_failed_task_is_an_unclassified_error(make: Make) -> None:
    correlation = NoCorrelation()
    with pytest.raises(ProviderError) as raised:
        await make().generate(request("a thing sandbox:fail"), Progress(), correlation)
    error = raised.value
    assert type(error) is ProviderError and "injected" in error.message
    assert error.provider_job_id == correlation.recorded[0]


async def test_a_task_waiting_for_a_modal_step_is_rejected(make: Make) -> None:
    with pytest.raises(PermanentProviderError, match="modal step"):
        await make().generate(request("a thing sandbox:modal"), Progress(), NoCorrelation())


async def test_output_filters_are_moderated(make: Make, sandbox: SandboxProcess) -> None:
    parent = await make().generate(request(), Progress(), NoCorrelation())
    sandbox.faults(moderation=True)
    with pytest.raises(ModeratedError, match="output filters"):
        await make().generate(_upscale(parent.provider_job_id, 1), Progress(), NoCorrelation())


async def test_a_wrong_secret_is_rejected(make: Make) -> None:
    with pytest.raises(PermanentProviderError, match="HTTP 401"):
        await make(api_key="wrong").generate(request(), Progress(), NoCorrelation())


async def test_progress_follows_the_task_and_only_grows(
    make: Make, sandbox: SandboxProcess
) -> None:
    sandbox.faults(job_duration_ms=500)
    progress = Progress()
    await make().generate(request(), progress, NoCorrelation())
    assert progress.values == sorted(set(progress.values))
    assert any(0 < value < 1 for value in progress.values)
    assert progress.values[-1] == 1.0


async def test_resuming_polls_the_recorded_task(make: Make, sandbox: SandboxProcess) -> None:
    sandbox.faults(job_duration_ms=300)
    submitted = upstream(sandbox, "/mj/submit/imagine", prompt="a fox --ar 3:2 --seed 7 --v 7")
    correlation = NoCorrelation(existing=submitted["result"])
    result = await make().generate(request("a fox"), Progress(), correlation)
    assert result.provider_job_id == submitted["result"] and len(result.images) == 4
    assert correlation.recorded == []
    stats = sandbox.stats()
    assert stats["submissions"] == 1 and stats["polls"] >= 2


async def test_a_task_the_upstream_forgot_is_submitted_anew(
    make: Make, sandbox: SandboxProcess
) -> None:
    correlation = NoCorrelation(existing="1733000000000000")
    result = await make().generate(request(), Progress(), correlation)
    assert correlation.recorded == [result.provider_job_id] != ["1733000000000000"]
    assert sandbox.stats()["submissions"] == 1


def _upscale(parent: str | None, index: int, **fields: Any) -> GenerationRequest:
    values: dict[str, Any] = {
        "action": Action.UPSCALE, "width": 1536, "height": 1024, "seeds": (8,),
        "upscale_factor": 2, "upscale_mode": UpscaleMode.SUBTLE, "source_index": index,
        "parent_provider_job_id": parent, "source_image": b"unused", **fields,
    }  # fmt: skip
    return request(**values)


async def test_an_upscale_presses_the_parents_u_button(make: Make, sandbox: SandboxProcess) -> None:
    adapter = make()
    parent = await adapter.generate(request(), Progress(), NoCorrelation())
    child = await adapter.generate(_upscale(parent.provider_job_id, 2), Progress(), NoCorrelation())
    (image,) = child.images
    assert (image.width, image.height) == (1536, 1024)
    task = upstream(sandbox, f"/mj/task/{child.provider_job_id}/fetch")
    assert (task["action"], task["parentId"]) == ("UPSCALE", parent.provider_job_id)
    # It is the parent's second picture, enlarged.
    shrunk = decoded(image).resize((768, 512))
    difference = ImageStat.Stat(ImageChops.difference(shrunk, decoded(parent.images[1])))
    assert max(difference.mean) < 8
    other = ImageStat.Stat(ImageChops.difference(shrunk, decoded(parent.images[0])))
    assert max(other.mean) > max(difference.mean)
    assert sandbox.stats()["action"] == 1


async def test_an_upscale_of_an_upscale_uses_midjourneys_2x(
    make: Make, sandbox: SandboxProcess
) -> None:
    adapter = make()
    grid = await adapter.generate(request(), Progress(), NoCorrelation())
    first = await adapter.generate(_upscale(grid.provider_job_id, 1), Progress(), NoCorrelation())
    second = await adapter.generate(
        _upscale(first.provider_job_id, 1, width=3072, height=2048), Progress(), NoCorrelation()
    )
    assert (second.images[0].width, second.images[0].height) == (3072, 2048)
    task = upstream(sandbox, f"/mj/task/{second.provider_job_id}/fetch")
    assert task["parentId"] == first.provider_job_id
    # Midjourney's 2x drew twice the U picture's pixels (not a stretch of ours).
    native = [upstream_image(upstream(sandbox, f"/mj/task/{r.provider_job_id}/fetch"))
              for r in (first, second)]  # fmt: skip
    assert native[1].size == (native[0].width * 2, native[0].height * 2)


async def test_a_follow_up_of_an_image_from_elsewhere_is_refused(
    make: Make, sandbox: SandboxProcess
) -> None:
    with pytest.raises(PermanentProviderError, match="only an image it made itself"):
        await make().generate(_upscale(None, 1), Progress(), NoCorrelation())
    assert sandbox.stats().get("submissions", 0) == 0


async def test_zoom_and_pan_need_an_upscaled_parent(make: Make, sandbox: SandboxProcess) -> None:
    adapter = make()
    grid = await adapter.generate(request(), Progress(), NoCorrelation())
    zoom = request(
        action=Action.ZOOM_OUT, canvas=zoom_out_canvas(768, 512, 2.0), source_index=3,
        parent_provider_job_id=grid.provider_job_id, source_image=b"unused",
    )  # fmt: skip
    with pytest.raises(PermanentProviderError, match="upscale it first"):
        await adapter.generate(zoom, Progress(), NoCorrelation())
    upscaled = await adapter.generate(
        _upscale(grid.provider_job_id, 3), Progress(), NoCorrelation()
    )
    zoom = replace(zoom, parent_provider_job_id=upscaled.provider_job_id)
    zoomed = await adapter.generate(zoom, Progress(), NoCorrelation())
    assert [(i.width, i.height) for i in zoomed.images] == [(768, 512)] * 4
    canvas = pan_canvas(768, 512, Direction.LEFT)
    panned = await adapter.generate(
        request(
            action=Action.PAN, canvas=canvas, direction=Direction.LEFT, source_index=1,
            width=canvas.width, height=canvas.height, source_image=b"unused",
            parent_provider_job_id=upscaled.provider_job_id,
        ),
        Progress(), NoCorrelation(),
    )  # fmt: skip
    assert {(i.width, i.height) for i in panned.images} == {(canvas.width, canvas.height)}
    actions = [
        upstream(sandbox, f"/mj/task/{r.provider_job_id}/fetch")["action"] for r in (zoomed, panned)
    ]
    assert actions == ["ZOOM", "PAN"]


async def test_a_variation_presses_the_parents_v_button(
    make: Make, sandbox: SandboxProcess
) -> None:
    adapter = make()
    grid = await adapter.generate(request(), Progress(), NoCorrelation())
    varied = await adapter.generate(
        request(action=Action.VARIATION, strength=0.75, source_index=4, source_image=b"x",
                parent_provider_job_id=grid.provider_job_id),
        Progress(), NoCorrelation(),
    )  # fmt: skip
    assert len(varied.images) == 4
    task = upstream(sandbox, f"/mj/task/{varied.provider_job_id}/fetch")
    assert (task["action"], task["parentId"]) == ("VARIATION", grid.provider_job_id)


def test_unknown_models_stop_start_up() -> None:
    config = ProviderConfig(name="mj", type="midjourney_proxy", base_url="http://x",
                            models=("v7", "dall-e-3"))  # fmt: skip
    with pytest.raises(ConfigError, match="dall-e-3"):
        MidjourneyProxyProvider(config)


def test_options_are_the_http_ones_and_checked() -> None:
    config = ProviderConfig(name="mj", type="midjourney_proxy", base_url="http://x",
                            options={"max_conections": 4})  # fmt: skip
    with pytest.raises(ConfigError, match=r"options\.max_conections: unknown option"):
        MidjourneyProxyProvider(config)
    with pytest.raises(ConfigError, match="base_url is required"):
        MidjourneyProxyProvider(ProviderConfig(name="mj", type="midjourney_proxy"))
