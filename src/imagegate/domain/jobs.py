"""Job status, the one place that decides which status may follow which."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"

    def is_terminal(self) -> bool:
        return self in _TERMINAL


class JobAction(StrEnum):
    """What a job does (the public contract, DESIGN §4). ``imagine``, ``blend`` and
    ``describe`` are created with ``POST /api/image/jobs``; the others are follow-ups
    on a finished job (``POST /api/image/jobs/{id}/actions``)."""

    IMAGINE = "imagine"
    UPSCALE = "upscale"
    VARIATION = "variation"
    REROLL = "reroll"
    ZOOM_OUT = "zoom_out"
    PAN = "pan"
    VARY_REGION = "vary_region"
    BLEND = "blend"
    DESCRIBE = "describe"


FOLLOW_UPS = frozenset(
    {
        JobAction.UPSCALE,
        JobAction.VARIATION,
        JobAction.REROLL,
        JobAction.ZOOM_OUT,
        JobAction.PAN,
        JobAction.VARY_REGION,
    }
)


_TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED})

# A retried attempt stays running (it is not a change of status). A failed,
# dead-lettered job goes back to queued when an admin requeues it.
ALLOWED: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING, JobStatus.CANCELED, JobStatus.FAILED}),
    JobStatus.RUNNING: frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELED}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED}),
    JobStatus.COMPLETED: frozenset(),
    JobStatus.CANCELED: frozenset(),
}


class IllegalTransition(Exception):
    def __init__(self, current: JobStatus, target: JobStatus) -> None:
        super().__init__(f"a {current} job cannot become {target}")
        self.current = current
        self.target = target


def can_transition(current: JobStatus, target: JobStatus) -> bool:
    return target in ALLOWED[current]


def transition(current: JobStatus, target: JobStatus) -> JobStatus:
    """Return ``target`` if a job in ``current`` may move there, else raise."""
    if not can_transition(current, target):
        raise IllegalTransition(current, target)
    return target


def sources_of(target: JobStatus) -> frozenset[JobStatus]:
    """Every status from which ``target`` may be reached: the guard of every status
    update the database makes."""
    return frozenset(s for s, allowed in ALLOWED.items() if target in allowed)
