"""Partial writes left by a killed process are swept; finished files and writes that
may still be in progress are not."""

from __future__ import annotations

import os
import time
from pathlib import Path

from imagegate.storage.local import LocalStorage
from imagegate.storage.signing import UrlSigner


async def test_only_old_partial_writes_are_removed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, "http://x", UrlSigner(b"k" * 32, 60))
    await storage.put("ws/job/1.png", b"image", "image/png")
    job_dir = tmp_path / "ws" / "job"
    stale, fresh = job_dir / ".tmp-stale", job_dir / ".tmp-fresh"
    stale.write_bytes(b"half")
    fresh.write_bytes(b"half")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))

    assert await storage.sweep_partial_writes(older_than_s=3600) == 1
    assert sorted(p.name for p in job_dir.iterdir()) == [".tmp-fresh", "1.png"]
    assert await storage.get("ws/job/1.png") == b"image"
