"""A job's output images are decoded once each (transcoding and the grid share the
decode), and the stored images and grid are what they were when each step decoded
its own copy."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from imagegate.domain.params import OutputFormat
from imagegate.engine import runner
from imagegate.imaging import encode, make_grid
from imagegate.providers.base import GeneratedImage
from imagegate.runtime import Runtime
from imagegate.settings import Settings


def jpeg(seed: int, size: tuple[int, int]) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG", quality=95)
    return out.getvalue()


async def test_four_jpegs_for_a_png_job_are_decoded_four_times_in_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = Runtime.build(Settings(data_dir=tmp_path), with_providers=False)
    size = (161, 97)  # odd: the grid's right column and bottom row take a spare pixel
    made = [GeneratedImage(jpeg(i, size), "image/jpeg", *size, seed=i) for i in range(4)]
    job: Any = SimpleNamespace(
        id="job_decodes", workspace_id="ws_decodes", params={"output_format": "png"}
    )
    opened: list[int] = []
    real_open = Image.open

    def counting_open(fp: Any, *args: Any, **kwargs: Any) -> Image.Image:
        opened.append(1)
        return real_open(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", counting_open)
    try:
        stored = await runner._store(rt, job, made)
    finally:
        monkeypatch.undo()
        await rt.close()

    assert len(opened) == 4
    assert [(row["kind"], row["index"]) for row in stored] == [
        ("image", 1), ("image", 2), ("image", 3), ("image", 4), ("grid", 0),
    ]  # fmt: skip
    files = tmp_path / "files"
    # Each stored image is the provider's image, transcoded: the same pixels.
    for row, image in zip(stored, made, strict=False):
        with Image.open(files / row["storage_key"]) as got:
            assert got.format == "PNG"
            want = Image.open(io.BytesIO(image.data)).convert("RGB")
            assert np.array_equal(np.asarray(got.convert("RGB")), np.asarray(want))
    # The grid is the one make_grid builds from the full-size images.
    full = [Image.open(io.BytesIO(image.data)).convert("RGB") for image in made]
    want_grid = Image.open(io.BytesIO(encode(make_grid(full), OutputFormat.PNG)))
    with Image.open(files / stored[-1]["storage_key"]) as got_grid:
        assert got_grid.size == size
        assert np.array_equal(np.asarray(got_grid), np.asarray(want_grid))
