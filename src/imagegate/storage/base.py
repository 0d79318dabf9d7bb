"""The storage interface every backend implements."""

from __future__ import annotations

from typing import Protocol


class Storage(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Store ``data`` under ``key``, replacing what was there."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; absent keys are fine."""
        ...

    def url(self, key: str) -> str:
        """An absolute URL a client can GET the object from, valid for a while."""
        ...


def image_key(workspace_id: str, job_id: str, name: str) -> str:
    """Keys are built here, from ids we generated, never from user input."""
    return f"{workspace_id}/{job_id}/{name}"
