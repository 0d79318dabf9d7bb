"""Rates such as ``600/minute``: how many hits a window allows."""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = {"second": 1, "minute": 60, "hour": 3600}
_FORM = re.compile(r"^\s*(\d+)\s*/\s*(second|minute|hour)s?\s*$")
# Words that switch a limit off, so an environment variable can say so explicitly.
OFF = frozenset({"", "off", "none"})


@dataclass(frozen=True)
class Rate:
    limit: int
    window_s: int

    def __str__(self) -> str:
        unit = next(name for name, seconds in UNITS.items() if seconds == self.window_s)
        return f"{self.limit}/{unit}"


def parse_rate(text: str | None) -> Rate | None:
    """``"600/minute"`` → ``Rate(600, 60)``; ``None``, ``""`` or ``"off"`` → ``None``."""
    if text is None or text.strip().lower() in OFF:
        return None
    match = _FORM.match(text.lower())
    if match is None or int(match[1]) < 1:
        raise ValueError(
            f"a rate is N/second, N/minute or N/hour with N >= 1 (or 'off'), not {text!r}"
        )
    return Rate(int(match[1]), UNITS[match[2]])


@dataclass(frozen=True)
class Allowance:
    """Where a caller stands against one rate: what is left of ``limit``, the whole
    seconds until the window moves on (or, with nothing left, until there is room
    again), and, when refused, after how many seconds to retry."""

    limit: int
    window_s: int
    remaining: int
    reset_s: int
    retry_after_s: int | None = None

    @property
    def refused(self) -> bool:
        return self.retry_after_s is not None
