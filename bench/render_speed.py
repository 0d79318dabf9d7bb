"""How fast the built-in renderer paints and encodes, per mode and aspect ratio.

Run: PYTHONPATH=src python bench/render_speed.py
Prints the median of several runs; single-threaded, so one core's figures.
"""

from __future__ import annotations

import io
import statistics
import time
from collections.abc import Callable
from functools import partial

from imagegate.domain.params import STYLES, Mode, Ratio, pixel_size
from imagegate.imaging import encode_png
from imagegate.render import render_image

PROMPTS = (
    "a mountain lake at sunset",
    "neon city at night in the rain",
    "A cinematic product photo of a running shoe on wet pavement",
    "winter snow forest with a cabin",
)
RUNS = 7


def _median_ms(fn: Callable[[], object], runs: int = RUNS) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    render_image("warm up", None, "none", 0, 256, 256)
    print(f"{'mode':9} {'ratio':6} {'size':>10} {'render ms':>10} {'png ms':>8} {'png KiB':>8}")
    for mode in (Mode.DRAFT, Mode.STANDARD):
        for ratio in ("1:1", "16:9", "9:16", "21:9"):
            w, h = pixel_size(Ratio.parse(ratio), mode)
            render = statistics.median(
                _median_ms(partial(render_image, p, None, "none", 1, w, h)) for p in PROMPTS
            )
            image = render_image(PROMPTS[0], None, "none", 1, w, h)
            png = _median_ms(partial(encode_png, image))
            size = len(encode_png(image)) / 1024
            print(f"{mode.value:9} {ratio:6} {w:>5}x{h:<4} {render:10.1f} {png:8.1f} {size:8.0f}")

    w, h = pixel_size(Ratio.parse("1:1"), Mode.STANDARD)
    print("\nper style, standard 1:1 (median over prompts):")
    for style in STYLES:
        ms = statistics.median(
            _median_ms(partial(render_image, p, None, style, 1, w, h), 3) for p in PROMPTS
        )
        print(f"  {style:13} {ms:6.1f} ms")

    image = render_image(PROMPTS[0], None, "none", 1, w, h)
    print("\nPNG compress_level, standard 1:1:")
    for level in (0, 1, 3, 6, 9):
        start = time.perf_counter()
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=level)
        ms = (time.perf_counter() - start) * 1000
        print(f"  level {level}: {ms:6.1f} ms, {len(out.getvalue()) / 1024:6.0f} KiB")


if __name__ == "__main__":
    main()
