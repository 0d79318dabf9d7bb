"""Follow-ups on a finished image: the rules each action's values obey, and the
canvas each makes (pure: sizes and boxes, no pixels).

The public names are ``domain.jobs.JobAction``. Sizes follow Midjourney's workflow:
an upscale multiplies the source's pixels; a zoom out keeps the source's size and
shrinks it into the centre of a wider scene; a pan keeps the source's pixels and adds
half a side in one direction; a region repaint keeps the size."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from imagegate.domain.params import SIZE_STEP, ParamError

# No action makes an image with a side longer than this (the upscale and pan limit).
MAX_OUTPUT_SIDE = 4096
UPSCALE_FACTORS = (2, 4)
ZOOM_MIN, ZOOM_MAX = 1.0, 2.0
# A pan adds this share of the source's side in its direction.
PAN_EXTENSION = 0.5
MAX_RECTANGLES = 16
BLEND_MIN, BLEND_MAX = 2, 5


class UpscaleMode(StrEnum):
    SUBTLE = "subtle"  # enlarge, keep every detail as it is
    CREATIVE = "creative"  # enlarge and let the model add detail


class VariationStrength(StrEnum):
    SUBTLE = "subtle"
    STRONG = "strong"

    @property
    def strength(self) -> float:
        """How far from the source a variation may move, 0 (the same) to 1 (unrelated):
        the img2img ``strength`` (denoise) providers take."""
        return 0.35 if self is VariationStrength.SUBTLE else 0.75


class Direction(StrEnum):
    LEFT = "left"
    RIGHT = "right"
    UP = "up"
    DOWN = "down"


class BlendDimensions(StrEnum):
    """Midjourney's blend shapes: portrait 2:3, square 1:1, landscape 3:2."""

    PORTRAIT = "portrait"
    SQUARE = "square"
    LANDSCAPE = "landscape"

    @property
    def ratio(self) -> str:
        return {"portrait": "2:3", "square": "1:1", "landscape": "3:2"}[self.value]


@dataclass(frozen=True)
class Box:
    """A rectangle in pixels: where the source sits on an outpainted canvas, or a
    region to repaint."""

    left: int
    top: int
    width: int
    height: int

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def bottom(self) -> int:
        return self.top + self.height

    def to_dict(self) -> dict[str, int]:
        return {"left": self.left, "top": self.top, "width": self.width, "height": self.height}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Box:
        return cls(int(data["left"]), int(data["top"]), int(data["width"]), int(data["height"]))


@dataclass(frozen=True)
class Canvas:
    """The output of an outpainting action: its size and where the source goes (scaled
    to the box's size)."""

    width: int
    height: int
    source: Box

    def padding(self) -> tuple[int, int, int, int]:
        """Pixels added on the (left, top, right, bottom): what Stability's outpaint
        and BFL's expand ask for."""
        s = self.source
        return s.left, s.top, self.width - s.right, self.height - s.bottom

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "source": self.source.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Canvas:
        return cls(int(data["width"]), int(data["height"]), Box.from_dict(data["source"]))


def upscale_size(width: int, height: int, factor: int) -> tuple[int, int]:
    if factor not in UPSCALE_FACTORS:
        raise ParamError("factor", f"factor must be one of {', '.join(map(str, UPSCALE_FACTORS))}")
    out = (width * factor, height * factor)
    if max(out) > MAX_OUTPUT_SIDE:
        raise ParamError(
            "factor",
            f"an upscale x{factor} of {width}x{height} would be {out[0]}x{out[1]}; the longest "
            f"side an upscale may have is {MAX_OUTPUT_SIDE}: use a smaller factor",
        )
    return out


def zoom_out_canvas(width: int, height: int, factor: float) -> Canvas:
    """The source's size, the source shrunk by ``factor`` in the centre."""
    if not ZOOM_MIN <= factor <= ZOOM_MAX:
        raise ParamError("factor", f"zoom_out factor must be from {ZOOM_MIN:g} to {ZOOM_MAX:g}")
    w, h = max(1, round(width / factor)), max(1, round(height / factor))
    return Canvas(width, height, Box((width - w) // 2, (height - h) // 2, w, h))


def pan_canvas(width: int, height: int, direction: Direction) -> Canvas:
    """The source kept pixel for pixel, half a side added towards ``direction``."""
    horizontal = direction in (Direction.LEFT, Direction.RIGHT)
    side = width if horizontal else height
    extra = max(SIZE_STEP, round(side * PAN_EXTENSION / SIZE_STEP) * SIZE_STEP)
    if side + extra > MAX_OUTPUT_SIDE:
        raise ParamError(
            "direction",
            f"a pan {direction} of {width}x{height} would make a side of {side + extra}; the "
            f"longest side a pan may make is {MAX_OUTPUT_SIDE}",
        )
    if horizontal:
        left = extra if direction is Direction.LEFT else 0
        return Canvas(width + extra, height, Box(left, 0, width, height))
    top = extra if direction is Direction.UP else 0
    return Canvas(width, height + extra, Box(0, top, width, height))


def check_rectangles(rectangles: list[Box], width: int, height: int) -> None:
    """Regions to repaint must lie inside the source and have an area."""
    if not 1 <= len(rectangles) <= MAX_RECTANGLES:
        raise ParamError("mask", f"give 1 to {MAX_RECTANGLES} rectangles")
    for number, box in enumerate(rectangles, start=1):
        if box.width <= 0 or box.height <= 0 or box.left < 0 or box.top < 0:
            raise ParamError("mask", f"rectangle {number} must have a positive size and start "
                                     "at or after (0, 0)")  # fmt: skip
        if box.right > width or box.bottom > height:
            raise ParamError(
                "mask", f"rectangle {number} reaches outside the {width}x{height} source image"
            )
