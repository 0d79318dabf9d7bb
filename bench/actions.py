"""How long each action of the built-in provider takes on a 1 MP (1024 x 1024) source.

Run: PYTHONPATH=src python bench/actions.py
Each figure is the median of several calls of the provider's ``generate()`` for one
image, in-process (``processes=0``: the render runs in a thread of this process), PNG
encoding included; wall-clock and CPU time both, since a busy machine inflates the
first only.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import replace

from imagegate.domain.actions import (
    Box,
    Direction,
    UpscaleMode,
    VariationStrength,
    pan_canvas,
    upscale_size,
    zoom_out_canvas,
)
from imagegate.domain.params import Mode
from imagegate.imaging import encode_png, rectangles_mask
from imagegate.providers.base import Action, GenerationRequest, NoCorrelation
from imagegate.providers.builtin import BuiltinProvider
from imagegate.render import render_image

SIDE = 1024
RUNS = 5
PROMPT = "a mountain lake at sunset"


async def _ignore(fraction: float) -> None:
    return None


def _requests() -> dict[str, GenerationRequest]:
    source = encode_png(render_image(PROMPT, None, "none", 1, SIDE, SIDE))
    others = tuple(
        encode_png(render_image(p, None, "none", 2, SIDE, SIDE))
        for p in ("neon city at night in the rain", "winter snow forest with a cabin")
    )
    base = GenerationRequest(
        prompt=PROMPT, negative_prompt=None, width=SIDE, height=SIDE, seeds=(7,),
        style="none", mode=Mode.STANDARD, model="builtin", source_image=source,
    )  # fmt: skip
    zoom = zoom_out_canvas(SIDE, SIDE, 2.0)
    pan = pan_canvas(SIDE, SIDE, Direction.LEFT)
    region = rectangles_mask(SIDE, SIDE, [Box(256, 256, 512, 384)])
    x2, x4 = upscale_size(SIDE, SIDE, 2), upscale_size(SIDE, SIDE, 4)
    return {
        "imagine (reference)": replace(base, source_image=None),
        "upscale x2 subtle": replace(
            base, action=Action.UPSCALE, width=x2[0], height=x2[1], upscale_factor=2,
            upscale_mode=UpscaleMode.SUBTLE,
        ),
        "upscale x2 creative": replace(
            base, action=Action.UPSCALE, width=x2[0], height=x2[1], upscale_factor=2,
            upscale_mode=UpscaleMode.CREATIVE,
        ),
        "upscale x4 subtle": replace(
            base, action=Action.UPSCALE, width=x4[0], height=x4[1], upscale_factor=4,
            upscale_mode=UpscaleMode.SUBTLE,
        ),
        "upscale x4 creative": replace(
            base, action=Action.UPSCALE, width=x4[0], height=x4[1], upscale_factor=4,
            upscale_mode=UpscaleMode.CREATIVE,
        ),
        "img2img 0.5": replace(base, action=Action.IMG2IMG, strength=0.5),
        "variation subtle": replace(
            base, action=Action.VARIATION, strength=VariationStrength.SUBTLE.strength
        ),
        "variation strong": replace(
            base, action=Action.VARIATION, strength=VariationStrength.STRONG.strength
        ),
        "zoom_out 2": replace(base, action=Action.ZOOM_OUT, canvas=zoom),
        "pan left": replace(
            base, action=Action.PAN, canvas=pan, direction=Direction.LEFT,
            width=pan.width, height=pan.height,
        ),
        "vary_region": replace(base, action=Action.VARY_REGION, mask=region),
        "blend (3 images)": replace(
            base, action=Action.BLEND, source_image=None, source_images=(source, *others)
        ),
        "describe": replace(base, action=Action.DESCRIBE),
    }  # fmt: skip


async def _median_ms(provider: BuiltinProvider, request: GenerationRequest) -> tuple[float, float]:
    """Median wall and CPU milliseconds: on a busy machine the wall time waits for a
    core, the CPU time (the work itself, one thread) does not."""
    walls, cpus = [], []
    for _ in range(RUNS):
        wall, cpu = time.perf_counter(), time.process_time()
        await provider.generate(request, _ignore, NoCorrelation())
        walls.append((time.perf_counter() - wall) * 1000)
        cpus.append((time.process_time() - cpu) * 1000)
    return statistics.median(walls), statistics.median(cpus)


async def main() -> None:
    provider = BuiltinProvider(processes=0)
    requests = _requests()
    await provider.generate(requests["imagine (reference)"], _ignore, NoCorrelation())
    print(f"built-in actions on a {SIDE}x{SIDE} source, median of {RUNS}, PNG included")
    print(f"{'action':22} {'output':>10} {'wall ms':>8} {'cpu ms':>8}")
    for name, request in requests.items():
        wall, cpu = await _median_ms(provider, request)
        size = "texts" if request.action is Action.DESCRIBE else f"{request.width}x{request.height}"
        print(f"{name:22} {size:>10} {wall:8.0f} {cpu:8.0f}")


if __name__ == "__main__":
    asyncio.run(main())
