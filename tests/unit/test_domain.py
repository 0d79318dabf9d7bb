"""Pure rules: ratios and sizes, prompt flags, status transitions, retry decisions."""

from __future__ import annotations

import pytest

from imagegate.domain.flags import parse_prompt_flags
from imagegate.domain.jobs import IllegalTransition, JobStatus, sources_of, transition
from imagegate.domain.params import (
    Mode,
    OutputFormat,
    ParamError,
    Ratio,
    pixel_size,
    variation_seeds,
)
from imagegate.domain.retry import decide

RATIOS = ["1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9", "4:1", "1:4", "5:4"]


@pytest.mark.parametrize("ratio", RATIOS)
@pytest.mark.parametrize("mode", list(Mode))
def test_pixel_size_keeps_the_aspect_and_budget(ratio: str, mode: Mode) -> None:
    r = Ratio.parse(ratio)
    width, height = pixel_size(r, mode)
    assert width % 8 == 0 and height % 8 == 0
    assert abs((width / height) / r.value - 1) <= 0.01
    budget = 1024 * 1024 if mode is Mode.STANDARD else 512 * 512
    assert 0.85 <= width * height / budget <= 1.15


@pytest.mark.parametrize("text", ["", "16x9", "16:0", "1:5", "a:b", "1000:1", "-1:2"])
def test_bad_ratios_are_refused(text: str) -> None:
    with pytest.raises(ParamError):
        Ratio.parse(text)


def test_ratio_is_reduced() -> None:
    assert str(Ratio.parse(" 32 : 18 ")) == "16:9"


def test_prompt_flags() -> None:
    parsed = parse_prompt_flags("a red fox in snow --ar 3:2 --seed 7 --no text, logos --draft")
    assert parsed.text == "a red fox in snow"
    assert parsed.values == {
        "ratio": "3:2",
        "seed": 7,
        "negative_prompt": "text, logos",
        "mode": "draft",
    }
    assert parse_prompt_flags("no flags here").values == {}


@pytest.mark.parametrize("prompt", ["x --zoom 2", "x --chaos 150", "x --ar", "x --seed 1 --seed 2"])
def test_bad_prompt_flags(prompt: str) -> None:
    with pytest.raises(ParamError):
        parse_prompt_flags(prompt)


def test_variation_seeds_wrap() -> None:
    assert variation_seeds(4_294_967_293, 3) == [4_294_967_293, 4_294_967_294, 0]


def test_transitions() -> None:
    assert transition(JobStatus.QUEUED, JobStatus.RUNNING) is JobStatus.RUNNING
    assert transition(JobStatus.FAILED, JobStatus.QUEUED) is JobStatus.QUEUED
    for terminal in (JobStatus.COMPLETED, JobStatus.CANCELED):
        assert terminal.is_terminal()
        for target in JobStatus:
            with pytest.raises(IllegalTransition):
                transition(terminal, target)
    assert not JobStatus.RUNNING.is_terminal()


def test_retry_policy() -> None:
    common = {"max_attempts": 3, "base_delay_s": 2.0, "max_delay_s": 60.0, "jitter_key": "j"}
    first = decide(attempt=1, retryable=True, retry_after_s=None, **common)  # type: ignore[arg-type]
    second = decide(attempt=2, retryable=True, retry_after_s=None, **common)  # type: ignore[arg-type]
    assert first.retry and 1.6 <= first.delay_s <= 2.4
    assert second.retry and second.delay_s == pytest.approx(first.delay_s * 2)
    assert not decide(attempt=3, retryable=True, retry_after_s=None, **common).retry  # type: ignore[arg-type]
    assert not decide(attempt=1, retryable=False, retry_after_s=None, **common).retry  # type: ignore[arg-type]
    hinted = decide(attempt=1, retryable=True, retry_after_s=30, **common)  # type: ignore[arg-type]
    assert hinted.delay_s == 30
    # the same inputs give the same decision: a replayed workflow must not diverge
    assert decide(attempt=1, retryable=True, retry_after_s=None, **common) == first  # type: ignore[arg-type]


def test_output_format_from_content_type() -> None:
    assert OutputFormat.for_content_type("image/jpeg").extension == "jpg"
    assert OutputFormat.for_content_type("image/jpg") is OutputFormat.JPEG
    assert OutputFormat.for_content_type("image/webp; q=1") is OutputFormat.WEBP
    assert OutputFormat.for_content_type("application/octet-stream") is OutputFormat.PNG


def test_guards_of_status_updates() -> None:
    assert sources_of(JobStatus.CANCELED) == {JobStatus.QUEUED, JobStatus.RUNNING}
    assert sources_of(JobStatus.COMPLETED) == {JobStatus.RUNNING}
    assert sources_of(JobStatus.QUEUED) == {JobStatus.FAILED}  # only a requeue
    assert sources_of(JobStatus.FAILED) == {JobStatus.QUEUED, JobStatus.RUNNING}
