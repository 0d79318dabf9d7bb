"""Colour schemes: a few hand-tuned base palettes, and the operations that bend them
toward the words of a prompt (blend, tint, hue shift, suppress a colour)."""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass, fields

RGB = tuple[float, float, float]


@dataclass(frozen=True)
class Palette:
    """Every colour a scene uses, in linear-ish 0..1 RGB, listed from the top of the
    sky down to the foreground."""

    sky_top: RGB
    sky_mid: RGB
    horizon: RGB
    light: RGB  # sun, moon, rim light
    far: RGB  # distant ranges, hazed toward the horizon
    near: RGB  # nearer hills
    ground: RGB  # the foreground
    water: RGB
    accent: RGB  # bokeh, neon, the product's own colour

    def colours(self) -> dict[str, RGB]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def map(self, fn: Callable[[RGB], RGB], only: tuple[str, ...] = ()) -> Palette:
        """A copy with ``fn`` applied to every colour, or to the ``only`` named ones."""
        return Palette(
            *(fn(rgb) if not only or name in only else rgb for name, rgb in self.colours().items())
        )


def _hex(spec: str) -> Palette:
    """A palette from nine ``rrggbb`` words, in field order."""
    colours = [
        (int(w[0:2], 16) / 255, int(w[2:4], 16) / 255, int(w[4:6], 16) / 255) for w in spec.split()
    ]
    return Palette(*colours)


BASE: dict[str, Palette] = {
    # sky_top sky_mid horizon light far near ground water accent
    "day": _hex("336bc7 73a6e6 dbe8f2 fff7e0 8ca1c4 4c7557 26472b 33668c ffd98c"),
    "sunset": _hex("24174c 9e3d6b ff9947 ffdb94 753d66 3d1c3d 170a1c 4c244c ff8c4c"),
    "night": _hex("030514 0a1233 243666 ebf0ff 1a2447 121a38 0a1024 0a1229 ffcc73"),
    "neon": _hex("050517 1a0d42 802485 ff6bd9 1a0f38 0d081f 05050f 0f0a26 1aebff"),
    "forest": _hex("5285b2 94bdcc dbebd6 fff5cc 668f87 265936 0d2b17 2e5959 f2e680"),
    "snow": _hex("6b99d9 adc9eb ebf2ff fffff7 b2c7e6 d1e0f5 ebf2ff 85a8d1 99ccff"),
    "desert": _hex("4785d6 99bde6 fae6bd fff2cc d6996b e6ab6b c7824a 4c8c99 ffbf66"),
    "fire": _hex("170505 660f08 ff6614 ffd966 4c0f0a 240805 0f0303 4c140a ff801a"),
    "space": _hex("03030a 0d081f 2e1a4c e6d9ff 1a142e 0d0a1a 05050d 140f29 9966ff"),
    "mist": _hex("8c99a8 b2bdc7 dbe0e6 fafaf2 9ea8b2 66737a 384247 73808c f2d999"),
    "dawn": _hex("8599e0 e0b8d1 ffdbb8 fff2d9 9e8cb8 665c85 38334c 8080b2 ffb2bf"),
}

# Bases a prompt with no scene words falls back to, picked by the prompt's hash.
FALLBACKS: tuple[str, ...] = ("day", "day", "dawn", "sunset", "mist", "forest")


def blend(palettes: list[Palette], weights: list[float]) -> Palette:
    """The weighted channel-wise average of ``palettes`` (at least one)."""
    total = sum(weights)
    return Palette(
        *(_mean([getattr(p, f.name) for p in palettes], weights, total) for f in fields(Palette))
    )


def _mean(colours: list[RGB], weights: list[float], total: float) -> RGB:
    return (
        sum(c[0] * w for c, w in zip(colours, weights, strict=True)) / total,
        sum(c[1] * w for c, w in zip(colours, weights, strict=True)) / total,
        sum(c[2] * w for c, w in zip(colours, weights, strict=True)) / total,
    )


def mix(a: RGB, b: RGB, t: float) -> RGB:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t)


def luminance(c: RGB) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def shift_hue(c: RGB, turns: float) -> RGB:
    h, s, v = colorsys.rgb_to_hsv(*c)
    return colorsys.hsv_to_rgb((h + turns) % 1.0, s, v)


def tint(c: RGB, toward: RGB, amount: float) -> RGB:
    """Move ``c`` toward the hue of ``toward`` while keeping most of its brightness,
    so a 'blue' prompt turns a dark hill navy rather than sky-blue."""
    target_l = luminance(toward)
    scale = luminance(c) / target_l if target_l > 1e-3 else 0.0
    scaled = (toward[0] * scale, toward[1] * scale, toward[2] * scale)
    return clamp(mix(c, scaled, amount))


def suppress(c: RGB, unwanted: RGB) -> RGB:
    """Push ``c`` away from the hue of ``unwanted`` when the two are close: desaturate
    and turn the hue a sixth of the wheel, which keeps the scene's light intact."""
    h, s, v = colorsys.rgb_to_hsv(*c)
    uh, us, uv = colorsys.rgb_to_hsv(*unwanted)
    if us < 0.15:  # white / black / grey: pull brightness toward the middle instead
        return clamp(mix(c, (0.5, 0.5, 0.5), 0.35 if abs(v - uv) < 0.3 else 0.0))
    distance = min(abs(h - uh), 1.0 - abs(h - uh))
    if s < 0.12 or distance > 0.11:
        return c
    away = 1.0 / 6.0 if (h - uh) % 1.0 < 0.5 else -1.0 / 6.0
    return colorsys.hsv_to_rgb((h + away) % 1.0, s * 0.55, v)


def clamp(c: RGB) -> RGB:
    return (min(1.0, max(0.0, c[0])), min(1.0, max(0.0, c[1])), min(1.0, max(0.0, c[2])))
