"""A landscape, painted back to front: sky, light, clouds, ranges, skyline, water, near
land with trees, the subject, then the atmosphere in front of it all."""

from __future__ import annotations

import numpy as np

from imagegate.render import effects, land, sky, subjects, water
from imagegate.render.canvas import Canvas
from imagegate.render.layout import Layout, make_layout
from imagegate.render.plan import Plan


def paint_landscape(c: Canvas, plan: Plan) -> None:
    lay = make_layout(plan, c.aspect)
    sky.paint_sky(c, plan, lay)
    if plan.has("nebula"):
        sky.paint_nebula(c, plan, lay, plan.palette)
    if plan.has("stars"):
        sky.paint_stars(c, plan, lay)
    if plan.has("sun") or plan.has("moon"):
        sky.paint_sun(c, plan, lay)
    if plan.has("clouds"):
        sky.paint_clouds(c, plan, lay)
    if plan.has("mountains"):
        land.paint_mountains(c, plan, lay)
    if plan.has("skyline"):
        land.paint_skyline(c, plan, lay)
    if plan.has("water"):
        water.paint_water(c, plan, lay)
    if plan.has("fog"):
        effects.paint_fog(c, plan, lay)
    if plan.has("dunes"):
        land.paint_dunes(c, plan, lay)
    elif plan.has("hills"):
        _paint_hills(c, plan, lay)
    if plan.has("subject"):
        subjects.paint_subject(c, plan, lay)
    if plan.has("fire"):
        effects.paint_fire(c, plan, lay)
    if plan.has("bokeh"):
        effects.paint_bokeh(c, plan, lay)
    if plan.has("rain"):
        effects.paint_rain(c, plan)
    if plan.has("snowfall"):
        effects.paint_snowfall(c, plan)
    np.clip(c.img, 0.0, 1.0, out=c.img)


def _paint_hills(c: Canvas, plan: Plan, lay: Layout) -> None:
    profiles = land.hill_profiles(c, plan, lay)
    rng = plan.rng("trees")
    for i, profile in enumerate(profiles):
        colour = land.hill_colour(plan, i, len(profiles))
        if plan.has("trees") and (i < len(profiles) - 1 or "forest" in plan.themes):
            land.paint_treeline(c, profile, plan, colour, rng, dense="forest" in plan.themes)
        land.paint_range(c, profile, colour, 0.25 * (1 - i / len(profiles)), plan, lay)
        c.ground = np.minimum(c.ground, profile) if plan.has("water") else profile
