"""A studio product shot: seamless backdrop, key light, the object on a pedestal, a
plinth, the floor or a wet reflective floor, with a soft contact shadow. What the prompt
leaves open (colours, set, camera, light) comes from :mod:`product_look`, per seed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from imagegate.render import effects
from imagegate.render.canvas import Canvas, rgb, smoothstep
from imagegate.render.layout import make_layout
from imagegate.render.noise import blur, fbm2d
from imagegate.render.palette import RGB, luminance, mix
from imagegate.render.plan import Plan
from imagegate.render.product_look import Look, make_look
from imagegate.render.product_shapes import EXTENT, SHAPES, Part, Pose

_LIT_STYLES = frozenset({"fantasy", "neon", "cinematic"})
_TOP_MARGIN = 0.07  # the object's top stays this far below the frame's
_PLINTH_DEPTH = 0.09  # how much of a plinth's top the camera sees, in object sizes


@dataclass(frozen=True)
class Staging:
    pose: Pose  # the object, lifted clear of what it stands on when it floats
    rest: float  # y of the surface under it: the floor or the stand's top
    stand: float  # the pedestal's or plinth's height; 0 without one


def paint_product(c: Canvas, plan: Plan) -> None:
    look = make_look(plan)
    _backdrop(c, plan, look)
    if plan.has("bokeh") and (plan.themes & {"night", "city"} or plan.style in _LIT_STYLES):
        effects.paint_bokeh(c, plan, make_layout(plan, c.aspect))
    staging = stage(plan, look, c.aspect)
    pose = staging.pose
    if look.stage == "pedestal":
        _pedestal(c, look, pose.cx, look.floor, pose.size, staging.stand)
    elif look.stage == "plinth":
        _plinth(c, look, pose.cx, look.floor, pose.size, staging.stand)
    _shadow(c, look, pose.cx, staging.rest, pose.size)
    _paint_parts(c, look, SHAPES[plan.product or "box"](c, pose))
    if look.stage == "wet":
        _wet_floor(c, plan, look.floor + 0.02)
    elif look.stage == "floor":
        _gloss_floor(c, look.floor + 0.02)


def stage(plan: Plan, look: Look, aspect: float) -> Staging:
    """Size and place the object so that it, its stand and its tilt fit the frame."""
    half, tall = EXTENT[plan.product or "box"]
    tall += 2 * abs(look.tilt) * half  # a tilted object reaches higher, and floats higher
    size = min(0.62, 0.5 * aspect) * look.scale
    size = min(size, (aspect / 2 - 0.05) / half)
    stand = 0.0
    if look.stage in ("pedestal", "plinth"):  # lower under a floating object: room for both
        stand = (0.06 + 0.08 * look.riser + 0.08 * size) * (0.7 if look.lift else 1.0)
    size = min(size, (look.floor - stand - look.lift - _TOP_MARGIN) / tall)
    room = max(0.0, aspect - 2 * (half * size + 0.05))
    cx = half * size + 0.05 + room * look.place if room else aspect / 2
    rest = look.floor + 0.02
    if look.stage == "pedestal":
        rest = look.floor - stand
    elif look.stage == "plinth":
        rest = look.floor + 0.04 - stand - _PLINTH_DEPTH * size * 0.45
    # A tilted object swings one end down: lift it clear of whatever it floats over.
    clearance = look.lift + (half * size * abs(math.sin(look.tilt)) if look.lift else 0.0)
    return Staging(Pose(cx, rest - clearance, size, look.facing, look.tilt), rest, stand)


def product_pose(plan: Plan, aspect: float) -> Pose:
    """Where :func:`paint_product` puts the object, in image heights."""
    return stage(plan, make_look(plan), aspect).pose


def _backdrop(c: Canvas, plan: Plan, look: Look) -> None:
    wall, floor = look.wall, look.floor
    c.img[:] = c.vertical(
        [
            (0.0, mix(wall, (0.0, 0.0, 0.0), 0.55)),
            (floor, mix(wall, (1.0, 1.0, 1.0), 0.15)),
            (floor + 0.05, look.ground),
            (1.0, mix(look.ground, (0.0, 0.0, 0.0), 0.45)),
        ]
    )
    # The key light: an ellipse of light on the wall, on the side the light comes from.
    sx = c.aspect / 2 + look.light * 0.18 * c.aspect
    rx, ry = 0.55 * look.spot, 0.45 * look.spot
    spot = np.exp(-(((c.x - sx) / rx) ** 2 + ((c.y - floor * 0.6) / ry) ** 2))
    strength = 0.35 * (1.0 - 0.5 * luminance(wall))  # a pale wall would burn out
    c.add(spot * np.float32(strength), mix(look.key, (1.0, 1.0, 1.0), 0.3))


def _pedestal(c: Canvas, look: Look, cx: float, floor: float, size: float, h: float) -> None:
    """A cylinder whose top face is ``h`` above the floor."""
    width = size * 0.62
    top = floor - h
    ry = width * 0.16
    body = (np.abs(c.x - cx) < width) & (c.y > top) & (c.y < floor + 0.04)
    rel = (c.x - cx) / width
    bottom = np.clip((1.0 - rel**2 - ((c.y - floor - 0.04) / ry) ** 2) * 40, 0.0, 1.0)
    cap = np.clip((1.0 - rel**2 - ((c.y - top) / ry) ** 2) * 40, 0.0, 1.0)
    side = np.clip(body.astype(np.float32) + bottom, 0.0, 1.0)
    tone = rgb(look.stand)
    roll = 0.62 + 0.38 * np.cos(np.clip(rel - 0.35 * look.light, -1.5, 1.5) * 1.2)
    c.paint(side * (np.abs(rel) <= 1.0), tone * roll)
    c.paint(cap, tone * np.float32(1.1))


def _plinth(c: Canvas, look: Look, cx: float, floor: float, size: float, h: float) -> None:
    """A block seen from a little above: a front face and a lighter top."""
    width, depth = size * 0.6, size * _PLINTH_DEPTH
    top = floor + 0.04 - h
    lit, dim = (1.08, 0.82) if look.light > 0 else (0.82, 1.08)
    front = c.shape(
        lambda d, s: d.rectangle(
            [(cx - width) * s, top * s, (cx + width) * s, (floor + 0.04) * s], fill=255
        )
    )
    across = np.clip((c.x - cx) / width, -1.0, 1.0)
    shade = dim + (lit - dim) * (across + 1.0) / 2
    c.paint(front, rgb(look.stand) * np.float32(0.8) * shade)
    lid = c.shape(
        lambda d, s: d.polygon(
            [
                ((cx - width) * s, top * s),
                ((cx + width) * s, top * s),
                ((cx + width * 0.9) * s, (top - depth) * s),
                ((cx - width * 0.9) * s, (top - depth) * s),
            ],
            fill=255,
        )
    )
    c.paint(lid, mix(look.stand, (1.0, 1.0, 1.0), 0.3))


def _shadow(c: Canvas, look: Look, cx: float, base: float, size: float) -> None:
    """A soft contact shadow, thrown away from the light; a floating object's is wider,
    fainter and further off."""
    lift = look.lift
    rx, ry = size * (0.5 + 1.5 * lift), size * (0.06 + 0.3 * lift)
    sx = cx - look.light * size * (0.06 + lift)
    d = ((c.x - sx) / rx) ** 2 + ((c.y - base) / ry) ** 2
    c.img *= 1.0 - (0.55 - 3.0 * lift) * np.exp(-d * 2.0)


def _paint_parts(c: Canvas, look: Look, parts: list[Part]) -> None:
    whole = np.clip(sum((p.mask for p in parts), np.zeros((c.h, c.w), np.float32)), 0.0, 1.0)
    volume = blur(whole, c.h * 0.04)
    # The volume rises toward the lit edge: compare each pixel with one toward the light.
    step = (2 + round(2 * look.light_high), round(-3 * look.light))
    lit = np.clip((volume - np.roll(volume, step, axis=(0, 1))) * 6.0, -1.0, 1.0)
    key = rgb(look.key)
    for part in parts:
        body = rgb(_part_colour(part.role, look)) * (0.6 + 0.45 * volume)
        body += np.maximum(lit, 0.0) * part.gloss * key
        body *= 1.0 + 0.35 * np.minimum(lit, 0.0)
        c.paint(part.mask, body)
    # A back light: a thin bright edge on the side away from the key.
    edge = np.clip(whole - np.roll(whole, round(2 * look.light), axis=1), 0.0, 1.0)
    c.add(edge * np.float32(0.45), look.rim)


def _part_colour(role: str, look: Look) -> RGB:
    if role == "main":
        return look.main
    if role == "accent":
        return look.accent
    if role == "trim":
        return look.trim
    if role == "sole":
        return look.sole
    if role == "shade":
        return mix(look.main, (0.0, 0.0, 0.0), 0.35)
    if role == "metal":
        return look.metal
    return (0.07, 0.07, 0.08)  # dark


def _gloss_floor(c: Canvas, floor: float) -> None:
    """A faint, fading mirror of the set on a polished floor."""
    top = int(floor * c.h)
    rows = min(c.h - top, top)
    if rows <= 0:
        return
    mirror = c.img[:, top - 1 :: -1][:, :rows]
    fade = (0.22 * (1.0 - np.arange(rows, dtype=np.float32) / rows) ** 2)[:, None]
    view = c.img[:, top : top + rows]
    view += (mirror - view) * fade


def _wet_floor(c: Canvas, plan: Plan, floor: float) -> None:
    top = int(floor * c.h)
    rows = c.h - top
    if rows <= 0 or top <= 0:
        return
    rng = plan.rng("floor")
    ripple = fbm2d(rng, (c.w, rows), (3.0 * c.aspect, 6.0), 3)
    shift = (ripple * 0.012 * c.h).astype(np.intp)
    src_y = np.clip(top - 1 - np.arange(rows)[:, None] + shift, 0, top - 1)
    src_x = np.clip(np.arange(c.w)[None, :] + shift, 0, c.w - 1)
    mirror = c.img[:, src_y, src_x]
    asphalt = rgb(mix(plan.palette.ground, (0.07, 0.075, 0.085), 0.7))
    grit = fbm2d(rng, (c.w, rows), (40.0 * c.aspect, 40.0), 2)
    puddles = smoothstep(-0.1, 0.3, fbm2d(rng, (c.w, rows), (2.0 * c.aspect, 3.0), 3))
    depth = (np.arange(rows, dtype=np.float32) / rows)[:, None]
    shine = (0.35 + 0.5 * puddles) * (1.0 - 0.5 * depth)
    ground = asphalt * (1.0 + 0.35 * grit)
    c.img[:, top:] = ground + (mirror * np.float32(0.85) - ground) * shine
