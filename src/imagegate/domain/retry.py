"""The retry policy: a pure function that returns a decision; the worker carries it out."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    delay_s: float = 0.0


GIVE_UP = RetryDecision(retry=False)


def _jitter(key: str) -> float:
    """A factor in [0.8, 1.2) derived from ``key``: random-looking, yet the same on
    replay, which a durable workflow needs."""
    digest = hashlib.sha256(key.encode()).digest()
    return 0.8 + (int.from_bytes(digest[:4], "big") / 2**32) * 0.4


def decide(
    *,
    attempt: int,
    max_attempts: int,
    retryable: bool,
    retry_after_s: float | None,
    base_delay_s: float,
    max_delay_s: float,
    jitter_key: str,
) -> RetryDecision:
    """What to do after attempt number ``attempt`` (1-based) failed."""
    if not retryable or attempt >= max_attempts:
        return GIVE_UP
    backoff = min(max_delay_s, base_delay_s * 2 ** (attempt - 1)) * _jitter(jitter_key)
    if retry_after_s is not None:
        # The provider's own hint wins when it asks for longer than our backoff.
        backoff = max(backoff, min(retry_after_s, max_delay_s * 10))
    return RetryDecision(retry=True, delay_s=round(backoff, 3))


_SECONDS = re.compile(r"\d{1,10}(\.\d{1,6})?")


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """A ``Retry-After`` header in seconds from ``now``: either of its forms (a delay in
    seconds, or an HTTP date), from providers and webhook receivers alike. A negative
    or unreadable value is no hint at all."""
    if value is None:
        return None
    text = value.strip()
    if _SECONDS.fullmatch(text):
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, (when - now).total_seconds())
