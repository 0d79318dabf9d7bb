"""Plain records the database layer hands to services (no ORM objects escape ``db``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from imagegate.domain.jobs import JobStatus


@dataclass(frozen=True)
class Principal:
    """Who is calling: the API key's id, its workspace and its role."""

    key_id: str
    workspace_id: str
    workspace_name: str
    role: str
    # The plan the operator assigned the workspace (None: the configuration's).
    plan: str | None = None
    # The request's client address and User-Agent, for the audit log (None where
    # there is no request: the command line, tests).
    ip: str | None = None
    user_agent: str | None = None

    @property
    def is_admin(self) -> bool:
        """Admins manage their workspace (keys, the audit and moderation logs); the
        operator manages every workspace, its own included."""
        return self.role in ("admin", "operator")

    @property
    def is_operator(self) -> bool:
        return self.role == "operator"

    @property
    def can_write(self) -> bool:
        """A viewer key reads only."""
        return self.role != "viewer"


@dataclass(frozen=True)
class KeyInfo:
    """An API key as listed: never the secret, only its first characters."""

    key_id: str
    workspace: str
    name: str
    prefix: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    rotated_at: datetime | None = None
    # Until when the secret before the last rotation is still accepted.
    previous_expires_at: datetime | None = None
    created_by: str | None = None


@dataclass(frozen=True)
class StoredImage:
    kind: str  # "image" or "grid"
    index: int
    storage_key: str
    width: int
    height: int
    seed: int | None
    content_type: str


@dataclass(frozen=True)
class JobRecord:
    id: str
    workspace_id: str
    api_key_id: str | None
    user: str | None
    status: JobStatus
    action: str
    parent_job_id: str | None
    prompt: str
    negative_prompt: str | None
    params: dict[str, Any]
    progress: int
    provider: str | None
    model: str | None
    attempts: int
    runs: int
    error_code: str | None
    error_message: str | None
    dead_letter: bool
    estimated_credits: int
    charged_credits: int
    metadata: dict[str, str]
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    images: tuple[StoredImage, ...] = field(default=())
    # The provider's own id for the work of the latest attempt, once it exists.
    provider_job_id: str | None = None
    # Where the job's own events are delivered (besides the workspace's endpoints).
    webhook_url: str | None = None
    # The first job of its chain (itself for a root), and its batch, if any.
    root_job_id: str | None = None
    batch_id: str | None = None
    # Text results, in order (``describe``).
    result_texts: tuple[str, ...] = ()
    # The jobs made from this one: (job id, action), oldest first (a bounded list).
    children: tuple[tuple[str, str], ...] = ()
    # The trace it was created in (W3C traceparent), for its logs and outgoing calls.
    traceparent: str | None = None


@dataclass(frozen=True)
class UploadRecord:
    """An uploaded image, as stored: validated, re-encoded, metadata stripped."""

    id: str
    workspace_id: str
    storage_key: str
    content_type: str
    width: int
    height: int
    size_bytes: int
    sha256: str
    created_at: datetime
    source_url: str | None = None


@dataclass(frozen=True)
class LedgerEntry:
    """One entry of a workspace's credits ledger (domain.ledger)."""

    id: int
    kind: str
    amount: int
    job_id: str | None
    actor_key_id: str | None
    note: str | None
    created_at: datetime


@dataclass(frozen=True)
class AuditRecord:
    """One entry of a workspace's audit log."""

    id: str
    workspace_id: str
    action: str
    actor_key_id: str | None
    target_id: str | None
    ip: str | None
    user_agent: str | None
    details: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True)
class ModerationRecord:
    """A refusal by the moderation pipeline, as an admin lists it."""

    id: str
    workspace_id: str
    stage: str  # prompt | provider | output
    category: str | None
    reason: str | None
    job_id: str | None
    key_id: str | None
    end_user: str | None
    excerpt: str | None
    created_at: datetime


@dataclass(frozen=True)
class EventRecord:
    """One entry of a job's lifecycle log, as the feeds (SSE, ``Prefer: wait``) read it."""

    id: int
    job_id: str
    workspace_id: str
    type: str
    data: dict[str, Any]
    created_at: datetime


# How a job is shown to its owner: the API's public schema, which webhook bodies carry
# too. The API supplies it to the engine at start-up, so the engine needs no API import.
JobPresenter = Callable[[JobRecord], dict[str, Any]]
# The body a job's own ``webhook_url`` is sent instead of the event envelope, or None
# for the envelope: a facade's jobs speak their protocol's callbacks (the /mj
# facade's notifyHook gets the protocol's task). Supplied by the API, as above.
OwnUrlBody = Callable[[JobRecord], dict[str, Any] | None]
