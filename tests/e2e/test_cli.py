"""The ``imagegate`` client commands, run as a subprocess against a real server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import FAULT_MARKER
from tests.support.server import ServerProcess, free_port

PROMPT = "a lighthouse at dusk"


@pytest.fixture(scope="module")
def imagined(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One ``imagine`` run, shared by the tests that look at its job."""
    out = tmp_path_factory.mktemp("imagine-out")
    flags = "--ar 16:9 --variations 2 --mode draft --timeout 60".split()
    result = server.cli("imagine", PROMPT, *flags, "--out", str(out))
    return result, out


def _job_id(result: subprocess.CompletedProcess[str]) -> str:
    return result.stdout.splitlines()[0].strip()


def test_imagine_saves_images_and_grid(
    imagined: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    result, out = imagined
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("job_")
    paths = [Path(line) for line in lines[-3:]]
    assert [p.name for p in paths] == ["1.png", "2.png", "grid.png"]
    for path in paths:
        assert path.is_file()
        assert path.parent == out.resolve()
        with Image.open(path) as image:
            image.load()
            width, height = image.size
        if path.name != "grid.png":
            assert abs((width / height) / (16 / 9) - 1) < 0.01, (width, height)


def test_jobs_list_json_shows_the_job(
    server: ServerProcess, imagined: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    job_id = _job_id(imagined[0])
    result = server.cli("jobs", "list", "--json", "--limit", "100")
    assert result.returncode == 0, result.stderr
    page = json.loads(result.stdout)
    listed = {job["job_id"]: job for job in page["data"]}
    assert listed[job_id]["status"] == "completed"
    assert listed[job_id]["prompt"] == PROMPT


def test_jobs_list_table(
    server: ServerProcess, imagined: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    result = server.cli("jobs", "list", "--status", "completed", "--limit", "1")
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout
    assert "lighthouse" in result.stdout


def test_jobs_get_json(
    server: ServerProcess, imagined: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    job_id = _job_id(imagined[0])
    result = server.cli("jobs", "get", job_id, "--json")
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["job_id"] == job_id
    assert job["status"] == "completed"
    assert len(job["images"]) == 2
    assert job["grid_url"]


def test_cancel_a_completed_job_is_invalid_state(
    server: ServerProcess, imagined: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    result = server.cli("jobs", "cancel", _job_id(imagined[0]))
    assert result.returncode == 1
    assert "invalid_state" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_unknown_job_is_not_found(server: ServerProcess) -> None:
    result = server.cli("jobs", "get", "job_doesnotexist")
    assert result.returncode == 1
    assert "not_found" in result.stderr


def test_no_wait_prints_the_queued_job(server: ServerProcess) -> None:
    result = server.cli(
        "imagine", "a red kite", "--variations", "1", "--mode", "draft", "--no-wait"
    )
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["job_id"].startswith("job_")
    assert job["params"]["variations"] == 1


def test_invalid_request_is_reported(server: ServerProcess) -> None:
    result = server.cli("imagine", "a red kite", "--mode", "sloppy", "--no-wait")
    assert result.returncode == 1
    assert "error: validation_error:" in result.stderr
    assert "mode" in result.stderr


def test_bad_key_is_unauthenticated(server: ServerProcess) -> None:
    result = server.cli("jobs", "list", key="not-a-real-key")
    assert result.returncode == 1
    assert "unauthenticated" in result.stderr
    assert "Traceback" not in result.stderr


def test_no_key_at_all_exits_2(server: ServerProcess, tmp_path: Path) -> None:
    result = server.cli("jobs", "list", IMAGEGATE_DATA_DIR=str(tmp_path), IMAGEGATE_API_KEY="")
    assert result.returncode == 2
    assert "no API key" in result.stderr
    assert "--key" in result.stderr
    assert "IMAGEGATE_API_KEY" in result.stderr


def test_unreachable_server(server: ServerProcess) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = server.cli("jobs", "list", "--url", url)
    assert result.returncode == 1
    assert "cannot reach" in result.stderr
    assert url in result.stderr
    assert "Traceback" not in result.stderr


def test_failed_job_exits_1_and_can_be_requeued(server: ServerProcess) -> None:
    failed = server.cli("imagine", f"a kite {FAULT_MARKER}", "--variations", "1", "--mode", "draft")
    assert failed.returncode == 1, failed.stdout
    job_id = _job_id(failed)
    assert "error: " in failed.stderr
    assert job_id in failed.stderr
    assert "Traceback" not in failed.stderr

    dead = server.cli("jobs", "list", "--dead-letter", "--json")
    assert dead.returncode == 0, dead.stderr
    assert job_id in {job["job_id"] for job in json.loads(dead.stdout)["data"]}

    retried = server.cli("jobs", "retry", job_id)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.split() == [job_id, "queued"]
