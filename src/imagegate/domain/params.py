"""Generation parameters: aspect ratios, pixel sizes, modes, styles and seeds."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

MAX_SEED = 4_294_967_294  # the widest range providers accept (Stability: 0..4294967294)
MAX_VARIATIONS = 4
MAX_PROMPT_CHARS = 4000
MIN_RATIO, MAX_RATIO = 1 / 4, 4.0
SIZE_STEP = 8  # diffusion models want sides divisible by 8


class Mode(StrEnum):
    DRAFT = "draft"
    STANDARD = "standard"


TARGET_PIXELS = {Mode.DRAFT: 512 * 512, Mode.STANDARD: 1024 * 1024}


class OutputFormat(StrEnum):
    PNG = "png"
    JPEG = "jpeg"
    WEBP = "webp"

    @property
    def content_type(self) -> str:
        return f"image/{self.value}"

    @property
    def extension(self) -> str:
        return "jpg" if self is OutputFormat.JPEG else self.value

    @classmethod
    def for_content_type(cls, content_type: str) -> OutputFormat:
        """The format of a provider's ``image/...`` content type (PNG if unknown)."""
        name = content_type.split(";")[0].strip().removeprefix("image/").replace("jpg", "jpeg")
        return cls(name) if name in cls._value2member_map_ else cls.PNG


# Presets every provider understands by name; adapters map them to their own wording.
STYLES: tuple[str, ...] = (
    "none",
    "studio",
    "cinematic",
    "photographic",
    "anime",
    "watercolor",
    "neon",
    "vintage",
    "minimal",
    "fantasy",
    "noir",
)
DEFAULT_STYLE = "none"

_RATIO = re.compile(r"^\s*(\d{1,3})\s*:\s*(\d{1,3})\s*$")


class ParamError(ValueError):
    """A parameter value is out of range; the message says which and why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Ratio:
    width: int
    height: int

    @classmethod
    def parse(cls, text: str) -> Ratio:
        match = _RATIO.match(text)
        if not match:
            raise ParamError("ratio", f"ratio must look like '16:9', got {text!r}")
        w, h = int(match.group(1)), int(match.group(2))
        if w == 0 or h == 0:
            raise ParamError("ratio", "ratio sides must be positive")
        if not MIN_RATIO <= w / h <= MAX_RATIO:
            raise ParamError("ratio", "ratio must be between 1:4 and 4:1")
        divisor = math.gcd(w, h)
        return cls(w // divisor, h // divisor)

    @property
    def value(self) -> float:
        return self.width / self.height

    def __str__(self) -> str:
        return f"{self.width}:{self.height}"


def pixel_size(ratio: Ratio, mode: Mode) -> tuple[int, int]:
    """Width and height near the mode's pixel budget, sides divisible by 8, aspect
    as close to ``ratio`` as those constraints allow."""
    target = TARGET_PIXELS[mode]
    ideal_h = math.sqrt(target / ratio.value)
    best: tuple[float, int, int] | None = None
    for h in range(max(SIZE_STEP, _round_step(ideal_h * 0.9)), _round_step(ideal_h * 1.1) + 1):
        if h % SIZE_STEP:
            continue
        w = max(SIZE_STEP, _round_step(h * ratio.value))
        aspect_error = abs((w / h) / ratio.value - 1)
        area_error = abs(w * h / target - 1)
        score = aspect_error * 10 + area_error
        if best is None or score < best[0]:
            best = (score, w, h)
    assert best is not None
    return best[1], best[2]


def _round_step(value: float) -> int:
    return round(value / SIZE_STEP) * SIZE_STEP


def variation_seeds(seed: int, count: int) -> list[int]:
    """One seed per variation: consecutive, wrapping inside the accepted range."""
    return [(seed + i) % (MAX_SEED + 1) for i in range(count)]
