"""Where things go: the seed-dependent composition of a landscape, in image heights."""

from __future__ import annotations

from dataclasses import dataclass

from imagegate.render.plan import Plan


@dataclass(frozen=True)
class Layout:
    horizon: float  # y of the horizon / water line
    sun_x: float
    sun_y: float
    sun_r: float
    subject_x: float
    subject_scale: float
    ridge_layers: int
    hill_layers: int
    light_dir: float  # +1 when the light comes from the right
    ridge_height: float = 1.0  # mountain heights, relative to the usual


def make_layout(plan: Plan, aspect: float) -> Layout:
    rng = plan.rng("layout")
    r = rng.uniform(0.0, 1.0, 10)
    low_sun = bool(plan.themes & {"sunset", "dawn", "fire"})
    # Stepped per seed rather than drawn: a job's variations get a big sky, a big
    # foreground and the in-betweens, not four horizons at the same height by chance.
    level = plan.spread("horizon")
    horizon = 0.5 + 0.24 * level
    if aspect < 0.8:  # portrait: a lower horizon leaves less empty foreground
        horizon += 0.06
    if plan.style == "minimal":
        horizon = 0.72 + 0.1 * level
    # The light anywhere from a fifth to four fifths across, stepped per seed like the
    # horizon; the subject on the third away from it.
    across = 0.2 + 0.6 * plan.spread("sun")
    sun_side = 1 / 3 if across < 0.5 else 2 / 3
    sun_x = aspect * across
    if low_sun:
        sun_y, sun_r = horizon - 0.03 - 0.12 * r[3], 0.07 + 0.05 * r[4]
    else:
        sun_y, sun_r = 0.12 + 0.22 * r[3], 0.045 + 0.04 * r[4]
    subject_x = aspect * ((1.0 - sun_side) + (r[5] - 0.5) * 0.16)
    return Layout(
        horizon=horizon,
        sun_x=sun_x,
        sun_y=sun_y,
        sun_r=sun_r,
        subject_x=subject_x,
        subject_scale=0.7 + 0.6 * r[6],
        ridge_layers=1 if plan.style == "minimal" else 2 + int(r[7] * 2.99),
        hill_layers=1 if plan.style == "minimal" else 1 + int(r[8] * 2.99),
        light_dir=1.0 if sun_x > aspect / 2 else -1.0,
        ridge_height=0.75 + 0.6 * r[9],
    )
