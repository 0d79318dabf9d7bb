"""How local storage maps a key (which arrives in a /files URL) to a file: only plain
relative paths of ordinary segments, and only to files that really lie under the root."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate.storage.base import ObjectNotFound
from imagegate.storage.local import LocalStorage, well_formed_key
from imagegate.storage.signing import UrlSigner


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    root = tmp_path / "files"
    root.mkdir()
    (tmp_path / "admin.key").write_text("ig_secret")  # a neighbour worth stealing
    return LocalStorage(root, "http://x", UrlSigner(b"k" * 32, 60))


def test_an_ordinary_key_maps_under_the_root(storage: LocalStorage) -> None:
    assert storage.path_for("ws_1/job_1/1.png") == storage.root / "ws_1" / "job_1" / "1.png"
    assert storage.path_for("grid.png") == storage.root / "grid.png"


@pytest.mark.parametrize(
    "key",
    [
        "../admin.key",
        "ws/../../admin.key",
        "ws/./1.png",
        "./1.png",
        "ws//1.png",
        "ws/",
        ".",
        "..",
        "",
        "/etc/passwd",
        "//etc/passwd",
        "C:/Windows/win.ini",
        "..\\admin.key",
        "ws\\..\\..\\admin.key",
        "ws/1.png\x00.txt",
        "\x00",
        "a/" * 600 + "1.png",
    ],
)
def test_keys_that_are_not_plain_relative_paths_map_to_nothing(
    storage: LocalStorage, key: str
) -> None:
    assert not well_formed_key(key)
    assert storage.path_for(key) is None


def test_a_symlink_out_of_the_root_maps_to_nothing(storage: LocalStorage) -> None:
    (storage.root / "ws").mkdir()
    (storage.root / "ws" / "out").symlink_to(storage.root.parent)
    assert well_formed_key("ws/out/admin.key")  # the text is fine; where it leads is not
    assert storage.path_for("ws/out/admin.key") is None


async def test_reads_writes_and_deletes_refuse_such_keys(storage: LocalStorage) -> None:
    with pytest.raises(ObjectNotFound):
        await storage.get("../admin.key")
    with pytest.raises(ObjectNotFound):
        await storage.get("ws/\x00")
    with pytest.raises(ValueError, match="escapes the root"):
        await storage.put("../planted.png", b"x", "image/png")
    await storage.delete("../admin.key")
    assert (storage.root.parent / "admin.key").read_text() == "ig_secret"
    assert not (storage.root.parent / "planted.png").exists()
