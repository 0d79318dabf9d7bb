"""Images a command sends: a local file is uploaded first (``POST /api/image/uploads``);
an https URL or an upload id (``upl_…``) is passed on for the server to resolve."""

from __future__ import annotations

from pathlib import Path

from imagegate.cli.common import fail
from imagegate.cli.http_client import ImagegateClient

# Read whole, so that a retried upload can send it again; the server's own cap is
# lower, and says so. This only keeps a mistaken path (a disk image) out of memory.
MAX_FILE_BYTES = 64 * 1024 * 1024
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                 ".webp": "image/webp"}  # fmt: skip


def image_reference(client: ImagegateClient, value: str) -> str:
    """What the server takes for ``value``: the URL or upload id as given, or the id
    of ``value`` uploaded as a file."""
    path = Path(value)
    if value.startswith("https://") or (value.startswith("upl_") and not path.exists()):
        return value
    return str(upload(client, path)["upload_id"])


def upload(client: ImagegateClient, path: Path) -> dict[str, object]:
    """Upload the image file at ``path``; the server's answer."""
    try:
        with path.open("rb") as handle:
            content = handle.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        fail("read_failed", f"cannot read {path}: {error.strerror or error}")
    if len(content) > MAX_FILE_BYTES:
        fail("file_too_large", f"{path} is over {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    content_type = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
    return client.upload(path.name, content, content_type)
