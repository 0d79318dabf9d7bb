"""The storage interface every backend implements."""

from __future__ import annotations

from typing import Protocol


class ObjectNotFound(KeyError):
    """No object is stored under this key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        # KeyError's own str() is just the quoted key, which reads badly in a log line.
        return f"no stored object under {self.key!r}"


class Storage(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing what was there."""
        ...

    async def get(self, key: str) -> bytes:
        """The bytes stored under ``key``; raises ``ObjectNotFound`` when there are none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are fine."""
        ...

    async def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with ``prefix`` (a job's folder,
        ``<workspace>/<job>/``); returns how many."""
        ...

    def url(self, key: str) -> str:
        """An absolute URL a client can GET the object from, valid for a while."""
        ...

    async def check(self) -> str | None:
        """``None`` when the store is usable, else a short reason for the readiness probe."""
        ...


def image_key(workspace_id: str, job_id: str, name: str) -> str:
    """Keys are built here, from ids we generated, never from user input."""
    return f"{workspace_id}/{job_id}/{name}"


def upload_key(workspace_id: str, upload_id: str, content_type: str) -> str:
    """An upload's key, from our ids and the type we re-encoded it to."""
    extension = {"image/jpeg": "jpg"}.get(content_type, "png")
    return f"{workspace_id}/uploads/{upload_id}.{extension}"
