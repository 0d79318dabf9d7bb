"""The built-in provider: the Protocol's contract, progress, and its chaos knobs."""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from imagegate.domain.params import STYLES, Mode
from imagegate.providers.base import GenerationRequest, NoCorrelation, Provider
from imagegate.providers.builtin import BuiltinProvider
from imagegate.providers.errors import RetryableProviderError


def request(
    prompt: str = "a mountain lake at sunset",
    seeds: tuple[int, ...] = (1, 2),
    mode: Mode = Mode.DRAFT,
    attempt: int = 1,
    size: tuple[int, int] = (192, 128),
) -> GenerationRequest:
    return GenerationRequest(
        prompt=prompt,
        negative_prompt=None,
        width=size[0],
        height=size[1],
        seeds=seeds,
        style="cinematic",
        mode=mode,
        model="builtin",
        attempt=attempt,
    )


class Recorder:
    def __init__(self) -> None:
        self.values: list[float] = []

    async def __call__(self, fraction: float) -> None:
        self.values.append(fraction)

    def assert_well_formed(self) -> None:
        assert self.values, "no progress reported"
        assert all(b >= a for a, b in zip(self.values, self.values[1:], strict=False))
        assert all(0.0 <= v <= 1.0 for v in self.values)
        assert self.values[-1] == 1.0


def test_it_is_a_provider() -> None:
    provider: Provider = BuiltinProvider()
    assert provider.name == "builtin"


def test_capabilities() -> None:
    caps = BuiltinProvider().capabilities()
    assert caps.models == ("builtin",)
    assert caps.max_images == 4
    assert set(caps.modes) == {Mode.DRAFT, Mode.STANDARD}
    assert caps.styles == STYLES


@pytest.mark.parametrize(("mode", "per_image"), [(Mode.DRAFT, 1), (Mode.STANDARD, 2)])
@pytest.mark.parametrize("count", [1, 4])
def test_estimate_credits(mode: Mode, per_image: int, count: int) -> None:
    req = request(seeds=tuple(range(count)), mode=mode)
    assert BuiltinProvider().estimate_credits(req) == per_image * count


async def test_generate_returns_one_png_per_seed_and_reports_progress() -> None:
    progress = Recorder()
    result = await BuiltinProvider().generate(request(seeds=(5, 6, 7)), progress, NoCorrelation())
    assert [image.seed for image in result.images] == [5, 6, 7]
    assert result.provider_job_id is None
    assert result.cost_usd == 0.0
    for image in result.images:
        assert image.content_type == "image/png"
        assert (image.width, image.height) == (192, 128)
        with Image.open(io.BytesIO(image.data)) as decoded:
            assert decoded.size == (192, 128)
    assert len({image.data for image in result.images}) == 3
    progress.assert_well_formed()
    assert len(progress.values) >= 3


async def test_generate_is_deterministic() -> None:
    first = await BuiltinProvider().generate(request(), Recorder(), NoCorrelation())
    second = await BuiltinProvider().generate(request(), Recorder(), NoCorrelation())
    assert [i.data for i in first.images] == [i.data for i in second.images]


async def test_fault_marker_fails_early_attempts_then_succeeds() -> None:
    provider = BuiltinProvider(fault_marker="__fail__", fault_attempts=2)
    for attempt in (1, 2):
        progress = Recorder()
        with pytest.raises(RetryableProviderError, match="builtin fault injected") as caught:
            await provider.generate(
                request("a lake __FAIL__ here", attempt=attempt), progress, NoCorrelation()
            )
        assert caught.value.retryable
        assert progress.values == []
    result = await provider.generate(
        request("a lake __FAIL__ here", attempt=3), Recorder(), NoCorrelation()
    )
    assert len(result.images) == 2


async def test_prompts_without_the_marker_are_unaffected() -> None:
    provider = BuiltinProvider(fault_marker="__fail__")
    result = await provider.generate(request("a calm lake"), Recorder(), NoCorrelation())
    assert len(result.images) == 2


async def test_latency_advances_progress_in_small_steps() -> None:
    progress = Recorder()
    result = await BuiltinProvider(latency_ms=50).generate(
        request(seeds=(1,)), progress, NoCorrelation()
    )
    assert len(result.images) == 1
    progress.assert_well_formed()
    steps = [b - a for a, b in zip([0.0, *progress.values], progress.values, strict=False)]
    assert len(progress.values) >= 10
    assert max(steps) <= 0.1


async def test_latency_with_several_images() -> None:
    progress = Recorder()
    result = await BuiltinProvider(latency_ms=50).generate(
        request(seeds=(1, 2, 3, 4)), progress, NoCorrelation()
    )
    assert len(result.images) == 4
    progress.assert_well_formed()


async def test_rendering_leaves_the_event_loop_free() -> None:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    big = request(seeds=(1, 2), mode=Mode.STANDARD, size=(1024, 1024))
    await BuiltinProvider().generate(big, Recorder(), NoCorrelation())
    done.set()
    await task
    # Rendered inline, the loop would only tick at the few progress awaits.
    assert ticks > 50
