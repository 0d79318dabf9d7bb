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


def _run(job_id: str, run: int) -> str:
    # A requeued job (run 2, 3, …) holds and ends again, under keys of its own.
    return job_id if run <= 1 else f"{job_id}#{run}"


def reserve_key(job_id: str, run: int = 1) -> str:
    return f"{_run(job_id, run)}:reserve"


def final_key(job_id: str, run: int = 1) -> str:
    """One key for a run's settle and void alike: a run ends one way, once."""
    return f"{_run(job_id, run)}:final"


def grant_key(key: str) -> str:
    return f"grant:{key}"


def settlement(held: int, cost: int) -> tuple[int, int]:
    """(charged, released) when a job that held ``held`` cost ``cost``: it is never
    charged more than it held."""
    charged = max(0, min(held, cost))
    return charged, held - charged
