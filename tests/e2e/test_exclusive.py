"""A second server on the same data dir or port is refused before it touches jobs."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.server import BIN, ServerProcess, free_port


def _serve(server: ServerProcess, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "imagegate"), "serve"], env={**server.env, **env},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_same_data_dir_is_refused(server: ServerProcess) -> None:
    result = _serve(server, IMAGEGATE_PORT=str(free_port()))
    assert result.returncode == 1
    assert "another imagegate server is using the data dir" in result.stderr


def test_taken_port_is_refused(
    server: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other_dir = tmp_path_factory.mktemp("other")
    result = _serve(server, IMAGEGATE_DATA_DIR=str(other_dir))
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{server.port}" in result.stderr
    # Refused before start-up: no key minted, no database created there.
    assert not (other_dir / "admin.key").exists()
    assert not (other_dir / "engine.sqlite").exists()
