"""Opaque, time-ordered ids (``job_01JD…``): sorting by id is sorting by creation."""

from __future__ import annotations

import re
import secrets
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, rem = divmod(value, 32)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def new_id(prefix: str, now_ms: int | None = None) -> str:
    """A ULID-shaped id: 48 bits of milliseconds then 80 random bits."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    return f"{prefix}_{_encode(ms, 10)}{_encode(secrets.randbits(80), 16)}"


# Lenient on purpose: it does not insist on the exact ULID shape, only on what every id
# this server mints has in common. It keeps out what no backend can compare (NUL on
# PostgreSQL) and what would break a header built from the id (non-latin-1 text).
_WELL_FORMED = re.compile(r"[a-z]{1,8}_[0-9A-Za-z]{1,64}")


def well_formed(value: str, prefix: str) -> bool:
    """Whether ``value`` could be an id with ``prefix`` (``job``, ``ep``, ``dlv``): a
    caller answers "not found" for one that is not, without asking the database."""
    return value.startswith(prefix + "_") and _WELL_FORMED.fullmatch(value) is not None
