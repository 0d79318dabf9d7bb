"""The credits ledger's rules, as data: what each entry does to a workspace's account.

A job holds its estimate when it is accepted (``reserve``), then ends with exactly one
``settle`` (charged what it cost, at most what it held, the rest released) or
``void`` (everything released: failed, canceled, refused). Grants add credits.
``available = granted - charged - reserved`` never goes below zero, because a reserve
that does not fit is refused. Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class EntryKind(StrEnum):
    GRANT = "grant"
    RESERVE = "reserve"
    SETTLE = "settle"
    VOID = "void"


MAX_GRANT = 1_000_000_000


@dataclass(frozen=True)
class Balance:
    granted: int = 0
    charged: int = 0
    reserved: int = 0

    @property
    def available(self) -> int:
        return self.granted - self.charged - self.reserved


def reserve_key(job_id: str) -> str:
    return f"{job_id}:reserve"


def final_key(job_id: str) -> str:
    """One key for a job's settle and void alike: a job ends one way, once."""
    return f"{job_id}:final"


def grant_key(key: str) -> str:
    return f"grant:{key}"


def settlement(held: int, cost: int) -> tuple[int, int]:
    """(charged, released) when a job that held ``held`` cost ``cost``: it is never
    charged more than it held."""
    charged = max(0, min(held, cost))
    return charged, held - charged
