"""Opaque list cursors: the id of the last row a page showed, encoded so that clients
treat it as a token. Every paged list (jobs, webhook deliveries) uses these two."""

from __future__ import annotations

import base64

from imagegate.domain.ids import well_formed
from imagegate.errors import InvalidCursor

MAX_ID_LENGTH = 40


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, prefix: str) -> str:
    """The id a cursor carries; :class:`InvalidCursor` unless it could be an id with
    ``prefix`` (``job``, ``dlv``): nothing else reaches a query."""
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError as error:  # binascii.Error, UnicodeDecodeError, non-ASCII input
        raise InvalidCursor() from error
    if not well_formed(value, prefix) or len(value) > MAX_ID_LENGTH:
        raise InvalidCursor()
    return value
