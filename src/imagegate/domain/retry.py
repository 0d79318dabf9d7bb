"""The retry policy: a pure function that returns a decision; the worker carries it out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


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
