"""Local-disk storage under the data dir, served by imagegate at ``/files/…``."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from imagegate.storage.base import ObjectNotFound
from imagegate.storage.signing import UrlSigner

# Names of files being written; a crash mid-write leaves one behind (see sweep).
_PARTIAL_PREFIX = ".tmp-"
# Far beyond any key imagegate writes (workspace/job/name), far below PATH_MAX.
_MAX_KEY_CHARS = 1024


def well_formed_key(key: str) -> bool:
    """Whether ``key`` reads as a relative path of ordinary segments: ``a/b/c.png``.
    Backslashes are refused although POSIX allows them in names, so that a key means
    the same file on every platform; NUL would make the OS call itself fail."""
    if not key or len(key) > _MAX_KEY_CHARS or "\x00" in key or "\\" in key:
        return False
    if key.startswith("/") or (len(key) > 1 and key[1] == ":"):  # absolute, or C:
        return False
    return all(segment not in {"", ".", ".."} for segment in key.split("/"))


class LocalStorage:
    def __init__(self, root: Path, public_url: str, signer: UrlSigner) -> None:
        self.root = root.resolve()
        self._public_url = public_url
        self.signer = signer

    def path_for(self, key: str) -> Path | None:
        """The file for ``key``, or ``None`` for a key that is not a plain relative
        path under the root. Keys come from URLs (``/files/<key>``), so they are
        checked twice: by their text (no NUL, no backslash, not absolute, no empty,
        ``.`` or ``..`` segment), then by where they resolve (a symlink inside the
        root must not lead out of it)."""
        if not well_formed_key(key):
            return None
        path = (self.root / key).resolve()
        if path == self.root or not path.is_relative_to(self.root):
            return None
        return path

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, key, data)

    def _write(self, key: str, data: bytes) -> None:
        path = self.path_for(key)
        if path is None:
            raise ValueError(f"storage key escapes the root: {key!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        # Write then rename, so a reader never sees half a file and a crash leaves none.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_PARTIAL_PREFIX)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    async def get(self, key: str) -> bytes:
        path = self.path_for(key)
        if path is None:
            raise ObjectNotFound(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(key) from None

    async def delete(self, key: str) -> None:
        path = self.path_for(key)
        if path is not None:
            await asyncio.to_thread(path.unlink, True)

    async def delete_prefix(self, prefix: str) -> int:
        return await asyncio.to_thread(self._delete_folder, prefix)

    def _delete_folder(self, prefix: str) -> int:
        # A job's keys are files in one folder (storage.base.image_key): the prefix,
        # which ends in "/", names that folder.
        folder = self.path_for(prefix.rstrip("/"))
        if folder is None or not folder.is_dir():
            return 0
        removed = 0
        for path in sorted(folder.rglob("*"), reverse=True):  # files before their folders
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink(missing_ok=True)
                removed += 1
        folder.rmdir()
        return removed

    def url(self, key: str) -> str:
        return self._public_url + self.signer.path(key)

    async def sweep_partial_writes(self, older_than_s: float = 3600) -> int:
        """Remove the temporary files of writes that never finished (a process killed
        mid-write); returns how many. Younger ones may still be in progress."""
        return await asyncio.to_thread(self._sweep, time.time() - older_than_s)

    def _sweep(self, cutoff: float) -> int:
        removed = 0
        for path in self.root.rglob(f"{_PARTIAL_PREFIX}*"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue  # finished (renamed) or swept by another process meanwhile
        return removed

    async def check(self) -> str | None:
        # The data dir is made at start-up; a full or read-only disk shows on the write.
        return None
