from __future__ import annotations

import pytest

from imagegate.errors import InvalidRequest
from imagegate.services.submission import JobSpec, resolve


class FixedSeeds:
    def randbelow(self, n: int) -> int:
        return 1234


def test_defaults() -> None:
    resolved = resolve(JobSpec(prompt="a cat"), seed_source=FixedSeeds())
    assert resolved.params == {
        "ratio": "1:1",
        "style": "none",
        "variations": 4,
        "seed": 1234,
        "mode": "standard",
        "width": 1024,
        "height": 1024,
        "output_format": "png",
        "requested_model": "auto",
    }


def test_flags_fill_fields_and_conflicts_are_refused() -> None:
    resolved = resolve(JobSpec(prompt="a cat --ar 16:9 --style noir", ratio="16:9"))
    assert resolved.params["ratio"] == "16:9" and resolved.params["style"] == "noir"
    with pytest.raises(InvalidRequest) as caught:
        resolve(JobSpec(prompt="a cat --seed 3", seed=4))
    assert caught.value.extra["field"] == "seed"
