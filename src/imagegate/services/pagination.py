"""Opaque list cursors: the id of the last row a page showed, encoded so that clients
treat it as a token. Every paged list (jobs, webhook deliveries) uses these two."""

from __future__ import annotations

import base64
import binascii

from imagegate.errors import InvalidCursor

MAX_ID_LENGTH = 40


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, prefix: str) -> str:
    """The id a cursor carries; :class:`InvalidCursor` unless it is an id of ``prefix``."""
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise InvalidCursor() from error
    if not value.startswith(prefix) or len(value) > MAX_ID_LENGTH:
        raise InvalidCursor()
    return value
