"""A product shot's seed-dependent decisions: the object's colours, the set (backdrop,
pedestal or floor), the camera and the light. The prompt pins what it names (a colour,
a wet floor, a pedestal); everything it leaves open changes from one seed to the next,
so a job's four variations read as four different shots of the same product."""

from __future__ import annotations

import colorsys
from dataclasses import dataclass

from imagegate.render.palette import RGB, clamp, luminance, mix, shift_hue, suppress
from imagegate.render.plan import Plan

_WET = frozenset({"water", "rain"})
_PEDESTAL_WORDS = frozenset("pedestal podium plinth pillar display column stand".split())
_FLOOR_WORDS = frozenset("floor table tabletop desk ground surface countertop counter".split())
_FLOATS = {"shoe": 0.4, "box": 0.3, "watch": 0.3, "bottle": 0.2, "jar": 0.1}
_TILTS = {"shoe": 0.2, "box": 0.14, "watch": 0.18, "bottle": 0.1, "jar": 0.0}
_METALS: tuple[RGB, ...] = (
    (0.78, 0.76, 0.72),  # steel
    (0.86, 0.68, 0.36),  # gold
    (0.36, 0.37, 0.4),  # gunmetal
    (0.86, 0.62, 0.52),  # rose gold
)
_WHITE: RGB = (0.94, 0.94, 0.93)
_BLACK: RGB = (0.07, 0.07, 0.08)
_GUM: RGB = (0.72, 0.52, 0.32)
_LIGHTS: tuple[RGB, ...] = ((1.0, 0.88, 0.74), (1.0, 1.0, 1.0), (0.8, 0.9, 1.0))


@dataclass(frozen=True)
class Look:
    main: RGB  # the object's own colour
    accent: RGB  # stripe, label, band
    trim: RGB  # laces, hands, labels' light parts
    sole: RGB
    metal: RGB
    wall: RGB  # the backdrop
    ground: RGB  # the floor of the set, toward the camera
    stand: RGB  # the pedestal
    riser: float  # 0..1, how tall the pedestal is
    key: RGB  # the key light's colour
    rim: RGB  # the back light's colour
    stage: str  # wet, pedestal, plinth or floor
    floor: float  # y of the floor line: a low camera sees it high in the frame
    place: float  # across the free width: 0 at the left, 1 at the right
    scale: float
    facing: float
    tilt: float
    lift: float  # height above the stand, in image heights: 0 stands, more floats
    light: float  # -1: key light from the left, +1: from the right
    light_high: float  # 0..1, how steeply the key light falls
    spot: float  # size of the pool of light on the backdrop


def make_look(plan: Plan) -> Look:
    rng = plan.rng("look")
    r = [float(v) for v in rng.uniform(0.0, 1.0, 26)]
    product = plan.product or "box"
    main = _avoided(plan, _main(plan, r))
    accent = _avoided(plan, _accent(plan, main, r))
    wall = _wall(plan, main, r)
    stage = _stage(plan, r)
    floats = r[10] < _FLOATS.get(product, 0.0)
    light = -1.0 if plan.spread("light") < 0.5 else 1.0
    key = _LIGHTS[int(r[11] * len(_LIGHTS))]
    rim = mix(shift_hue(accent, 0.08 * (r[12] - 0.5)), (1.0, 1.0, 1.0), 0.35)
    if r[13] < 0.35:
        rim = key
    return Look(
        main=main,
        accent=accent,
        trim=_avoided(plan, _trim(main, accent, r[14])),
        sole=_avoided(plan, _sole(main, accent, r[15])),
        metal=_METALS[int(r[16] * len(_METALS))],
        wall=_avoided(plan, wall),
        ground=_avoided(plan, _ground(wall, r[17])),
        stand=_avoided(plan, _stand(wall, main, r[18])),
        riser=r[25],
        key=key,
        rim=rim,
        stage=stage,
        floor=0.6 + (0.12 if stage == "wet" else 0.16) * plan.spread("camera"),
        place=0.15 + 0.7 * r[19],
        scale=0.78 + 0.32 * r[9],
        facing=1.0 if r[8] < 0.5 else -1.0,
        tilt=(r[7] - 0.5) * 2 * _TILTS.get(product, 0.0) if floats else 0.0,
        lift=0.035 + 0.045 * r[6] if floats else 0.0,
        light=light,
        light_high=r[5],
        spot=0.75 + 0.5 * r[4],
    )


def _hsv(h: float, s: float, v: float) -> RGB:
    return colorsys.hsv_to_rgb(h % 1.0, min(1.0, max(0.0, s)), min(1.0, max(0.0, v)))


def _main(plan: Plan, r: list[float]) -> RGB:
    """The prompt's colour in a seeded shade, or a seeded hue when it names none."""
    shade = plan.spread("shade")
    if plan.colour is not None:
        h, s, v = colorsys.rgb_to_hsv(*plan.colour)
        if s < 0.2:  # white, black, grey, silver: lighter or darker, never a hue
            return _hsv(h, s, v + (shade - 0.5) * (0.3 if 0.15 < v < 0.85 else 0.16))
        # The named hue, barely turned; a lighter or deeper shade of it per seed.
        return _hsv(h + (r[0] - 0.5) * 0.024, s * (0.92 + 0.12 * r[1]), v * (0.68 + 0.36 * shade))
    if r[2] < 0.15:  # now and then a white or black object, the accent carrying the colour
        return _WHITE if r[3] < 0.5 else (0.12, 0.12, 0.13)
    hue = plan.spread("hue")
    return _hsv(hue, 0.58 + 0.32 * r[1], 0.62 + 0.33 * shade)


def _accent(plan: Plan, main: RGB, r: list[float]) -> RGB:
    h, s, _ = colorsys.rgb_to_hsv(*main)
    if s < 0.2:  # a neutral object: the accent is the seed's colour
        return _hsv(plan.spread("hue"), 0.8, 0.9)
    choice = int(r[20] * 5)
    if choice == 0:
        return _hsv(h + 0.5, 0.75, 0.92)  # complementary
    if choice == 1:
        return _hsv(h + (0.36 if r[21] < 0.5 else -0.36), 0.8, 0.9)  # split complementary
    if choice == 2:
        return _WHITE
    if choice == 3:
        return _BLACK
    return _hsv(h + 0.08, min(1.0, s * 1.1), 0.4)  # a deeper tone of its own hue


def _trim(main: RGB, accent: RGB, r: float) -> RGB:
    if luminance(main) > 0.72:
        return _BLACK if r < 0.5 else mix(accent, _BLACK, 0.3)
    return _WHITE if r < 0.7 else accent


def _sole(main: RGB, accent: RGB, r: float) -> RGB:
    if r < 0.55:
        return _WHITE if luminance(main) < 0.8 or r < 0.2 else (0.16, 0.16, 0.17)
    if r < 0.75:
        return (0.12, 0.12, 0.13)
    if r < 0.87:
        return _GUM
    return accent


def _wall(plan: Plan, main: RGB, r: list[float]) -> RGB:
    """A backdrop at a seeded brightness, in a hue that sets the object off (its
    complement or a neighbour): deep and fairly rich when dark, pastel when light. The
    prompt's palette tints it."""
    h, s, _ = colorsys.rgb_to_hsv(*main)
    if s < 0.2:
        h = plan.spread("hue") + 0.5
    level = plan.spread("set")
    value = 0.16 + 0.66 * level
    hue = (h + (0.5, 0.42, 0.58, 0.1, -0.1)[int(r[22] * 5)]) % 1.0
    if 0.11 < hue < 0.3:  # dim, greyed yellows and greens read as olive drab: lean off
        hue = 0.07 if hue < 0.2 else 0.42
    saturation = (0.3 + 0.3 * r[23]) * (1.3 - 0.6 * level)
    if "mood" in plan.themes:  # a darker set, lit only by the key light
        value *= 0.7
    wall = _hsv(hue, saturation, value)
    return clamp(mix(wall, plan.palette.sky_mid, 0.12))


def _ground(wall: RGB, r: float) -> RGB:
    if r < 0.6:  # a seamless sweep: the floor is the wall, lit a little less
        return mix(wall, (0.5, 0.5, 0.52), 0.3)
    return mix(wall, (0.92, 0.9, 0.86) if luminance(wall) < 0.4 else (0.1, 0.1, 0.12), 0.5)


def _stand(wall: RGB, main: RGB, r: float) -> RGB:
    if r < 0.4:
        return mix(wall, (0.95, 0.95, 0.95), 0.6)
    if r < 0.7:
        return mix(wall, (0.05, 0.05, 0.06), 0.55)
    return mix(shift_hue(main, 0.5), (0.8, 0.8, 0.8), 0.55)


def _stage(plan: Plan, r: list[float]) -> str:
    if plan.themes & _WET:
        return "wet"
    if plan.said & _PEDESTAL_WORDS:
        return "pedestal" if r[24] < 0.5 else "plinth"
    if plan.said & _FLOOR_WORDS:
        return "floor"
    return ("pedestal", "floor", "plinth")[int(plan.spread("stage") * 3)]


def _avoided(plan: Plan, colour: RGB) -> RGB:
    """``colour`` turned away from every colour the negative prompt names."""
    for unwanted in plan.avoid:
        colour = suppress(colour, unwanted)
    return colour
