"""The action commands (``upscale``, ``vary``, ``zoom``, ``pan``, ``reroll``,
``describe``, ``blend``, ``imagine --image``, ``batch``), run as a subprocess against a
real server: each follows its job and saves files that decode at the size expected."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from imagegate.domain.actions import Direction, pan_canvas, upscale_size, zoom_out_canvas
from tests.conftest import FAULT_MARKER
from tests.support.server import ServerProcess

TIMEOUT = ("--timeout", "90")


def _run(server: ServerProcess, *args: str) -> tuple[str, list[Path]]:
    """Run a command that makes one job: its job id and the files it saved."""
    result = server.cli(*args, *TIMEOUT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("job_"), result.stdout
    return lines[0], [Path(line) for line in lines[1:]]


def _sizes(paths: list[Path]) -> dict[str, tuple[int, int]]:
    """Each file's name and pixel size, decoding it whole."""
    sizes = {}
    for path in paths:
        with Image.open(path) as image:
            image.load()
            sizes[path.name] = image.size
    return sizes


@pytest.fixture(scope="module")
def imagined(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, Path], tuple[int, int]]:
    """One two-image imagine: its job id, its files by name, and an image's size."""
    out = tmp_path_factory.mktemp("imagine")
    job_id, paths = _run(
        server, "imagine", "a lighthouse at dusk", "--variations", "2", "--mode", "draft",
        "--out", str(out),
    )  # fmt: skip
    sizes = _sizes(paths)
    assert set(sizes) == {"1.png", "2.png", "grid.png"}
    return job_id, {p.name: p for p in paths}, sizes["1.png"]


def test_upscale_saves_exactly_factor_times_the_pixels(
    server: ServerProcess, imagined: tuple[str, dict[str, Path], tuple[int, int]], tmp_path: Path
) -> None:
    parent, _, (width, height) = imagined
    job_id, paths = _run(server, "upscale", parent, "1", "--out", str(tmp_path))
    assert _sizes(paths) == {"1.png": upscale_size(width, height, 2)}
    job = json.loads(server.cli("jobs", "get", job_id, "--json").stdout)
    assert (job["action"], job["parent_job_id"], job["source_index"]) == ("upscale", parent, 1)


def test_vary_strong_with_a_remix_prompt(
    server: ServerProcess, imagined: tuple[str, dict[str, Path], tuple[int, int]], tmp_path: Path
) -> None:
    parent, _, size = imagined
    job_id, paths = _run(
        server, "vary", parent, "1", "--strong", "--prompt", "a lighthouse at night",
        "--out", str(tmp_path),
    )  # fmt: skip
    sizes = _sizes(paths)
    assert sizes.pop("grid.png")
    assert sizes and set(sizes.values()) == {size}
    job = json.loads(server.cli("jobs", "get", job_id, "--json").stdout)
    assert (job["action"], job["prompt"]) == ("variation", "a lighthouse at night")


def test_zoom_then_pan_keep_their_canvas_sizes(
    server: ServerProcess, imagined: tuple[str, dict[str, Path], tuple[int, int]], tmp_path: Path
) -> None:
    parent, _, (width, height) = imagined
    zoomed, paths = _run(
        server, "zoom", parent, "2", "--factor", "1.5", "--out", str(tmp_path / "zoom")
    )
    zoom_size = zoom_out_canvas(width, height, 1.5)
    assert {s for n, s in _sizes(paths).items() if n != "grid.png"} == {
        (zoom_size.width, zoom_size.height)
    }
    _, paths = _run(server, "pan", zoomed, "1", "left", "--out", str(tmp_path / "pan"))
    pan_size = pan_canvas(zoom_size.width, zoom_size.height, Direction.LEFT)
    assert {s for n, s in _sizes(paths).items() if n != "grid.png"} == {
        (pan_size.width, pan_size.height)
    }


def test_reroll_makes_the_parents_images_again(
    server: ServerProcess, imagined: tuple[str, dict[str, Path], tuple[int, int]], tmp_path: Path
) -> None:
    parent, _, size = imagined
    _, paths = _run(server, "reroll", parent, "--out", str(tmp_path))
    assert {n: s for n, s in _sizes(paths).items() if n != "grid.png"} == {
        "1.png": size, "2.png": size,
    }  # fmt: skip


def test_describe_prints_four_prompts(
    server: ServerProcess, imagined: tuple[str, dict[str, Path], tuple[int, int]]
) -> None:
    result = server.cli("describe", str(imagined[1]["1.png"]), *TIMEOUT)
    assert result.returncode == 0, result.stderr
    job_id, *texts = result.stdout.strip().splitlines()
    assert job_id.startswith("job_")
    assert len(texts) == 4 and all(text.strip() for text in texts)


def test_blend_uploads_each_file(
    server: ServerProcess, imagined: tuple[str, dict[str, Path], tuple[int, int]], tmp_path: Path
) -> None:
    files = imagined[1]
    _, paths = _run(
        server, "blend", str(files["1.png"]), str(files["2.png"]), "--dimensions", "landscape",
        "--prompt", "a coast", "--out", str(tmp_path),
    )  # fmt: skip
    sizes = [s for n, s in _sizes(paths).items() if n != "grid.png"]
    assert sizes and all(abs(w / h - 3 / 2) < 0.02 for w, h in sizes)


def test_imagine_from_an_image(
    server: ServerProcess, imagined: tuple[str, dict[str, Path], tuple[int, int]], tmp_path: Path
) -> None:
    source = imagined[1]["1.png"]
    job_id, paths = _run(
        server, "imagine", "the same lighthouse in snow", "--image", str(source),
        "--strength", "0.6", "--variations", "1", "--mode", "draft", "--out", str(tmp_path),
    )  # fmt: skip
    assert _sizes(paths)["1.png"] == imagined[2]
    job = json.loads(server.cli("jobs", "get", job_id, "--json").stdout)
    assert job["params"]["strength"] == 0.6


def test_strength_without_an_image_is_a_usage_error(server: ServerProcess) -> None:
    result = server.cli("imagine", "a kite", "--strength", "0.5", "--no-wait")
    assert result.returncode == 2
    assert "--strength needs --image" in result.stderr


def test_an_action_on_an_unknown_job_fails_cleanly(server: ServerProcess) -> None:
    result = server.cli("upscale", "job_doesnotexist", "1")
    assert result.returncode == 1
    assert "not_found" in result.stderr
    assert "Traceback" not in result.stderr


def test_batch_follows_every_job_saves_them_and_lists_failures(
    server: ServerProcess, tmp_path: Path
) -> None:
    lines = [
        {"prompt": "a lighthouse, square", "variations": 1, "mode": "draft"},
        {"prompt": ""},
        {"prompt": "a lighthouse, wide", "ratio": "16:9", "variations": 2, "mode": "draft"},
        {"prompt": f"a kite {FAULT_MARKER}", "variations": 1, "mode": "draft"},
    ]
    file = tmp_path / "jobs.jsonl"
    file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = server.cli("batch", str(file), "--out", str(tmp_path / "out"), *TIMEOUT)
    # A refused item and a failed job make the run incomplete, after the rest is saved.
    assert result.returncode == 1, result.stderr
    assert "item 1: refused: validation_error" in result.stderr
    assert re.search(r"item 3: job job_\w+ failed: ", result.stderr), result.stderr
    assert "batch_incomplete: 2 of 4 items did not complete" in result.stderr
    batch_id, *saved = result.stdout.strip().splitlines()
    assert batch_id.startswith("bat_")
    by_job: dict[str, dict[str, tuple[int, int]]] = {}
    for path in map(Path, saved):
        assert path.parent.parent == (tmp_path / "out").resolve()
        by_job.setdefault(path.parent.name, {}).update(_sizes([path]))
    assert sorted(len(files) for files in by_job.values()) == [1, 3]
    for job_id, files in by_job.items():
        job = json.loads(server.cli("jobs", "get", job_id, "--json").stdout)
        assert job["batch_id"] == batch_id
        size = (job["params"]["width"], job["params"]["height"])
        assert {s for n, s in files.items() if n != "grid.png"} == {size}


def test_batch_that_no_item_survives_says_why(server: ServerProcess, tmp_path: Path) -> None:
    file = tmp_path / "bad.jsonl"
    file.write_text('{"prompt": ""}\nnot json\n')
    result = server.cli("batch", str(file))
    assert result.returncode == 1
    assert "error: batch_invalid:" in result.stderr
    assert "item 0: refused: validation_error" in result.stderr
    assert "item 1: refused: validation_error: line 2 is not valid JSON" in result.stderr
    assert result.stdout == ""
