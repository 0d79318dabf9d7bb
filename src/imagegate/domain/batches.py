"""A batch (jobs submitted together) as stored, and how its jobs add up (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from imagegate.domain.jobs import JobStatus

# A batch request holds at most this many items.
MAX_ITEMS = 100


@dataclass(frozen=True)
class BatchRecord:
    id: str
    workspace_id: str
    item_count: int
    # In request order: {"index", "job_id"} for an item that became a job, or
    # {"index", "error": <problem>} for one that was refused.
    items: tuple[dict[str, Any], ...]
    metadata: dict[str, Any]
    created_at: datetime

    @property
    def accepted(self) -> int:
        """How many items became jobs."""
        return sum(1 for item in self.items if item.get("job_id"))


@dataclass(frozen=True)
class Tally:
    """How many of a batch's jobs have one status, and the sum of their progress."""

    jobs: int
    progress: int


@dataclass(frozen=True)
class Summary:
    """Where a batch's jobs stand."""

    counts: dict[str, int]
    # The mean of the jobs' progress, an ended job counting as 100.
    progress: int
    # Every job has ended.
    done: bool


def summarize(tallies: dict[str, Tally]) -> Summary:
    """The batch's counts per status, progress and doneness, from its jobs' tallies."""
    counts = {status.value: 0 for status in JobStatus}
    total = points = 0
    for status, tally in tallies.items():
        counts[status] = counts.get(status, 0) + tally.jobs
        total += tally.jobs
        points += 100 * tally.jobs if JobStatus(status).is_terminal() else tally.progress
    unfinished = counts[JobStatus.QUEUED] + counts[JobStatus.RUNNING]
    return Summary(counts, points // total if total else 0, total > 0 and unfinished == 0)
