"""Opaque, time-ordered ids (``job_01JD…``): sorting by id is sorting by creation."""

from __future__ import annotations

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
