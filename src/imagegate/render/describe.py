"""Describing an image as prompts: a measured analysis (named dominant colours,
brightness, contrast, saturation, warmth, where the bright light and the visual mass
sit, a horizon line, the aspect ratio) written out as four differently framed prompt
suggestions. No randomness: the same image always gets the same four.

The colour names are the renderer's own colour words, and the scene words its theme
words, so a suggestion fed back to ``imagine`` paints in the image's colours."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from PIL import Image

from imagegate.render.colour import NamedColour, colour_name, dominant_colours, thumbnail

# A colour names the palette when it covers at least this share of the picture.
_MIN_SHARE = 0.05
# A horizon is a row where the colour above differs from the colour below by at least
# this (summed 8-bit channels), and by this many times a typical row's difference.
_HORIZON_JUMP, _HORIZON_RATIO = 24.0, 3.0
_BAND = 3  # rows averaged each side of a candidate horizon, on the thumbnail
_SOFT_CONTRAST = 0.12  # luminance spread below which a picture reads as soft

Point = tuple[float, float]  # (x, y), 0..1 across and down


@dataclass(frozen=True)
class Analysis:
    colours: tuple[NamedColour, ...]  # most area first
    brightness: float  # mean luminance, 0..1
    contrast: float  # its standard deviation
    saturation: float  # mean HSV saturation, 0..1
    warmth: float  # mean (red - blue), -1..1
    light: Point | None  # the centre of the brightest pixels, if anything stands out
    mass: Point  # the centre of what differs most from the mean colour
    horizon: float | None  # the height of a horizon line, 0 top .. 1 bottom
    sky: str  # the colour name of the top fifth
    ground: str  # and of the bottom fifth
    aspect: tuple[int, int]


def analyse(image: Image.Image) -> Analysis:
    """The measurements :func:`describe` writes its prompts from."""
    small = thumbnail(image)
    rgb = np.asarray(small, dtype=np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32) / 255.0
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32) / 255.0
    colours = tuple(c for c in dominant_colours(image) if c.share >= _MIN_SHARE)
    fifth = max(1, rgb.shape[0] // 5)
    return Analysis(
        colours=colours or tuple(dominant_colours(image)[:1]),
        brightness=float(grey.mean()),
        contrast=float(grey.std()),
        saturation=float(hsv[:, :, 1].mean()),
        warmth=float((rgb[:, :, 0] - rgb[:, :, 2]).mean() / 255.0),
        light=_light(grey),
        mass=_mass(rgb),
        horizon=_horizon(rgb),
        sky=_band_colour(rgb[:fifth]),
        ground=_band_colour(rgb[-fifth:]),
        aspect=_aspect(image.width, image.height),
    )


def _centroid(weights: np.ndarray) -> Point:
    total = float(weights.sum())
    if total <= 0:
        return 0.5, 0.5
    height, width = weights.shape
    xs = (np.arange(width) + 0.5) / width
    ys = (np.arange(height) + 0.5) / height
    return float((weights.sum(axis=0) * xs).sum() / total), float(
        (weights.sum(axis=1) * ys).sum() / total
    )


def _light(grey: np.ndarray) -> Point | None:
    if grey.std() < 0.05:
        return None
    threshold = max(float(np.quantile(grey, 0.92)), float(grey.mean() + 1.5 * grey.std()))
    bright = grey >= threshold
    return _centroid(bright.astype(np.float32)) if bright.any() else None


def _mass(rgb: np.ndarray) -> Point:
    distance = np.linalg.norm(rgb - rgb.reshape(-1, 3).mean(axis=0), axis=2)
    return _centroid(distance * distance)


def _horizon(rgb: np.ndarray) -> float | None:
    rows = rgb.mean(axis=1)  # (h, 3): each row's mean colour
    height = rows.shape[0]
    candidates = range(max(_BAND, round(height * 0.15)), min(height - _BAND, round(height * 0.85)))
    jumps = [
        (float(np.abs(rows[y - _BAND : y].mean(0) - rows[y : y + _BAND].mean(0)).sum()), y)
        for y in candidates
    ]
    if not jumps:
        return None
    best, row = max(jumps)
    typical = float(np.median([j for j, _ in jumps]))
    if best < _HORIZON_JUMP or best < _HORIZON_RATIO * (typical + 1.0):
        return None
    return float(row / height)


def _band_colour(rgb: np.ndarray) -> str:
    mean = rgb.reshape(-1, 3).mean(axis=0)
    return colour_name((int(mean[0]), int(mean[1]), int(mean[2])))


def _aspect(width: int, height: int) -> tuple[int, int]:
    """The ratio in small numbers, as ``--ar`` takes it (1000x667 is 3:2)."""
    ratio = Fraction(width, height).limit_denominator(16)
    return ratio.numerator, ratio.denominator


def describe(image: Image.Image) -> tuple[str, str, str, str]:
    """Four prompt suggestions for ``image``, best first, each naming its main colour
    and ending in ``--ar``: a scene, a photograph, a painting, an abstract."""
    a = analyse(image)
    names = [c.name for c in a.colours[:3]]
    scene, layout, ar = _scene(a), _layout(a), f" --ar {a.aspect[0]}:{a.aspect[1]}"
    soft = a.contrast < _SOFT_CONTRAST
    accent = names[1] if len(names) > 1 else ("white" if a.brightness < 0.5 else "black")
    return (
        f"{_cap(scene)}, {_and(names)} palette, {_lighting(a)}, {layout}, {_contrast(a)}{ar}",
        f"A {_saturation(a)}, {_warmth(a)} photograph of {scene}, dominated by {names[0]}, "
        f"{_light_phrase(a)}, {_lighting(a)}, wide-angle lens{ar}",
        f"A {'soft watercolor' if soft else 'bold oil'} painting of {scene} in "
        f"{_and(names) if len(names) > 1 else names[0] + ' tones'}, {layout}, "
        f"{'loose washes' if soft else 'visible brushstrokes'}{ar}",
        f"A minimal abstract composition, a {names[0]} field with {accent} accents, "
        f"{_mass_phrase(a)}, {_orientation(a)} format{ar}",
    )


_GROUND = {"green": "green hills", "teal": "a calm lake", "blue": "the sea",
           "navy": "dark water", "white": "snowfields", "grey": "misty fields",
           "brown": "rolling earth", "orange": "desert dunes", "gold": "golden fields",
           "yellow": "golden fields", "red": "red rock", "black": "a dark valley",
           "pink": "blossoming meadows", "purple": "lavender fields"}  # fmt: skip
_SKY = {"blue": "a clear blue sky", "white": "a pale sky", "grey": "an overcast sky",
        "orange": "a glowing sunset sky", "gold": "a golden sky", "yellow": "a golden sky",
        "navy": "a deep night sky", "black": "a night sky"}  # fmt: skip


def _scene(a: Analysis) -> str:
    time = (
        "at night"
        if a.brightness < 0.22
        else "at sunset"
        if a.warmth > 0.1 and a.brightness < 0.6
        else "in the mist"
        if a.saturation < 0.12
        else ""
    )
    if a.horizon is not None:
        sky = _SKY.get(a.sky, f"a {a.sky} sky")
        return f"{_GROUND.get(a.ground, a.ground + ' land')} under {sky} {time}".strip()
    main = a.colours[0].name if a.colours else "grey"
    return f"a close-up of {main} forms {time}".strip()


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _lighting(a: Analysis) -> str:
    if a.brightness < 0.22:
        return "dark low-key lighting"
    if a.brightness < 0.42:
        return "moody dim light"
    return "soft natural light" if a.brightness < 0.65 else "bright high-key light"


def _contrast(a: Analysis) -> str:
    if a.contrast < _SOFT_CONTRAST:
        return "soft low contrast"
    return "balanced contrast" if a.contrast < 0.22 else "strong dramatic contrast"


def _saturation(a: Analysis) -> str:
    return "muted" if a.saturation < 0.2 else "natural" if a.saturation < 0.45 else "vivid"


def _warmth(a: Analysis) -> str:
    return "warm-toned" if a.warmth > 0.08 else "cool-toned" if a.warmth < -0.08 else "neutral"


def _where(point: Point) -> str:
    across = "left" if point[0] < 1 / 3 else "right" if point[0] > 2 / 3 else ""
    down = "upper" if point[1] < 1 / 3 else "lower" if point[1] > 2 / 3 else ""
    if not across and not down:
        return "at the centre"
    return f"in the {' '.join(w for w in (down, across) if w)}"


def _light_phrase(a: Analysis) -> str:
    if a.light is None:
        return "even light across the frame"
    return f"a bright light {_where(a.light)}"


def _mass_phrase(a: Analysis) -> str:
    where = _where(a.mass)
    return "a centred subject" if where == "at the centre" else f"the weight of the image {where}"


def _layout(a: Analysis) -> str:
    if a.horizon is None:
        return _mass_phrase(a)
    if a.horizon < 0.4:
        line = "a high horizon"
    elif a.horizon > 0.6:
        line = "a low horizon in the lower third"
    else:
        line = "the horizon across the middle"
    return f"{line}, {_mass_phrase(a)}"


def _orientation(a: Analysis) -> str:
    ratio = a.aspect[0] / a.aspect[1]
    if ratio >= 1.9:
        return "panoramic"
    return "landscape" if ratio > 1.05 else "portrait" if ratio < 0.95 else "square"


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]
