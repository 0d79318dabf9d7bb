"""SQLAlchemy models. Schema changes go through Alembic revisions in ``migrations/``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value if value.tzinfo else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Workspace(Base):
    __tablename__ = "workspaces"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    # The plan the operator assigned (None: the configuration file's).
    plan: Mapped[str | None] = mapped_column(String(64))


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    # Written when a server first authenticates the key after its auth cache expired:
    # accurate to IMAGEGATE_KEY_CACHE_TTL_S, and no write per request.
    last_used_at: Mapped[datetime | None]
    # After a rotation, the old secret's hash, accepted until previous_expires_at.
    previous_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    previous_expires_at: Mapped[datetime | None]
    rotated_at: Mapped[datetime | None]
    created_by: Mapped[str | None] = mapped_column(String(40))


class AuditEvent(Base):
    """Who did what to a workspace: keys created, rotated and revoked, jobs canceled
    and requeued, workspaces created. Kept IMAGEGATE_RETENTION_AUDIT_DAYS."""

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_workspace_id", "workspace_id", "id"),
        Index("ix_audit_events_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(40))
    # The key that did it (None: the command line, on the database).
    actor_key_id: Mapped[str | None] = mapped_column(String(40))
    target_id: Mapped[str | None] = mapped_column(String(40))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(300))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_workspace_id_id", "workspace_id", "id"),
        Index("ix_jobs_workspace_status", "workspace_id", "status", "id"),
        Index("ix_jobs_status", "status"),
        Index("ix_jobs_workspace_parent", "workspace_id", "parent_job_id", "id"),
        Index("ix_jobs_workspace_root", "workspace_id", "root_job_id", "id"),
        Index("ix_jobs_batch", "batch_id", "id"),
        Index("ix_jobs_completed_at", "completed_at"),
        Index("ix_jobs_workspace_created", "workspace_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"))
    api_key_id: Mapped[str | None] = mapped_column(String(40))
    end_user: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(16))
    parent_job_id: Mapped[str | None] = mapped_column(String(40))
    # The first job of the chain this one descends from (itself for a root): the
    # lineage is one indexed lookup, not a walk up the parents.
    root_job_id: Mapped[str | None] = mapped_column(String(40))
    # The batch (POST /api/image/batches, or a prompt's --repeat) it was created in.
    batch_id: Mapped[str | None] = mapped_column(String(40))
    prompt: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]]
    progress: Mapped[int] = mapped_column(Integer, default=0)
    provider: Mapped[str | None] = mapped_column(String(64))
    model: Mapped[str | None] = mapped_column(String(128))
    # Several ids, comma-joined, for providers that take one image per call.
    provider_job_id: Mapped[str | None] = mapped_column(String(1024))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    runs: Mapped[int] = mapped_column(Integer, default=1)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    dead_letter: Mapped[bool] = mapped_column(Boolean, default=False)
    estimated_credits: Mapped[int] = mapped_column(Integer, default=0)
    charged_credits: Mapped[int] = mapped_column(Integer, default=0)
    job_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    # Where this job's own events are delivered, besides the workspace's endpoints.
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    # Text results (``describe``: the suggested prompts), in order.
    result_texts: Mapped[list[str] | None] = mapped_column(JSON)
    # The worker that started the latest attempt: operators' "where is this running".
    worker_id: Mapped[str | None] = mapped_column(String(100))
    # The W3C traceparent of the request that created the job: every process that
    # works on it logs and propagates this trace (observability/tracing.py).
    traceparent: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class Image(Base):
    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("job_id", "kind", "index", name="uq_images_job_kind_index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    index: Mapped[int] = mapped_column(Integer)
    storage_key: Mapped[str] = mapped_column(String(255))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    content_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    # Marked as a final, usable image by the client (an upscale's images count as
    # final without a mark): the denominator of cost per final usable image.
    final: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Upload(Base):
    """An image a client uploaded (or had fetched from a URL): validated, re-encoded
    without metadata and stored; jobs refer to it by id (init image, mask, blend,
    describe, style reference)."""

    __tablename__ = "uploads"
    __table_args__ = (
        Index("ix_uploads_workspace_id", "workspace_id", "id"),
        Index("ix_uploads_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"))
    storage_key: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    # Where it came from, when fetched from a URL (for the owner only).
    source_url: Mapped[str | None] = mapped_column(String(2048))
    created_at: Mapped[datetime]


class ModerationDecision(Base):
    """A refusal by the moderation pipeline (a prompt refused at create, a provider's
    verdict on a job), for the workspace's admins; retained for
    ``IMAGEGATE_RETENTION_MODERATION_DAYS``."""

    __tablename__ = "moderation_decisions"
    __table_args__ = (
        Index("ix_moderation_decisions_workspace_id", "workspace_id", "id"),
        Index("ix_moderation_decisions_created_at", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(40))
    # prompt | provider | output
    stage: Mapped[str] = mapped_column(String(16))
    category: Mapped[str | None] = mapped_column(String(40))
    # The listed term that matched, or the provider's own reason.
    reason: Mapped[str | None] = mapped_column(String(500))
    job_id: Mapped[str | None] = mapped_column(String(40))
    key_id: Mapped[str | None] = mapped_column(String(40))
    end_user: Mapped[str | None] = mapped_column(String(200))
    # The refused prompt's first characters.
    excerpt: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]


class QuotaUsage(Base):
    """What a workspace (subject ``workspace``) or one of its end users (``user:<id>``)
    spent in a calendar period (``2026-12-04``, ``2026-12``): counted in the
    transaction that creates each job, against the plan's limits."""

    __tablename__ = "quota_usage"

    workspace_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject: Mapped[str] = mapped_column(String(220), primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    images: Mapped[int] = mapped_column(BigInteger)
    credits: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class CreditAccount(Base):
    """A workspace's credits: granted in all, charged in all, held by jobs not yet
    finished. Available = granted - charged - reserved, never below zero (a reserve
    is a guarded update). Changed only with an entry in ``credit_entries``."""

    __tablename__ = "credit_accounts"

    workspace_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    granted: Mapped[int] = mapped_column(BigInteger)
    charged: Mapped[int] = mapped_column(BigInteger)
    reserved: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class CreditEntry(Base):
    """The append-only ledger: grants, and per job one reserve then one settle or
    void. ``entry_key`` is unique per workspace (``<job>:reserve``, ``<job>:final``,
    ``grant:<key>``), so a step replayed after a crash writes nothing twice."""

    __tablename__ = "credit_entries"
    __table_args__ = (
        UniqueConstraint("workspace_id", "entry_key", name="uq_credit_entries_key"),
        Index("ix_credit_entries_workspace_id", "workspace_id", "id"),
        Index("ix_credit_entries_job", "job_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    workspace_id: Mapped[str] = mapped_column(String(40))
    # grant | reserve | settle | void
    kind: Mapped[str] = mapped_column(String(16))
    # grant: added; reserve: held; settle: charged (the rest of the hold released);
    # void: released.
    amount: Mapped[int] = mapped_column(BigInteger)
    entry_key: Mapped[str] = mapped_column(String(300))
    job_id: Mapped[str | None] = mapped_column(String(40))
    actor_key_id: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime]


class Style(Base):
    """A workspace's own style preset (the built-in ones live in domain.presets)."""

    __tablename__ = "styles"

    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str | None] = mapped_column(String(500))
    # The prompt template, with ``{prompt}`` where the client's prompt goes.
    template: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[str | None] = mapped_column(Text)
    # The built-in look it renders with (one of domain.params.STYLES).
    base_style: Mapped[str] = mapped_column(String(32))
    ratio: Mapped[str | None] = mapped_column(String(16))
    mode: Mapped[str | None] = mapped_column(String(16))
    model: Mapped[str | None] = mapped_column(String(128))
    # {provider name: {option: value}}, passed to that provider's adapter.
    provider_options: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Batch(Base):
    """Jobs submitted together (POST /api/image/batches, or --repeat)."""

    __tablename__ = "batches"
    __table_args__ = (Index("ix_batches_workspace_id", "workspace_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"))
    # How many items the request had, and the per-item report ({index, job_id} or
    # {index, error}) in request order.
    item_count: Mapped[int] = mapped_column(Integer)
    items: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    batch_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    created_at: Mapped[datetime]


class JobEvent(Base):
    """The lifecycle log: one row per status change (and throttled progress)."""

    __tablename__ = "job_events"
    __table_args__ = (
        Index("ix_job_events_job_id_id", "job_id", "id"),
        Index("ix_job_events_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"))
    workspace_id: Mapped[str] = mapped_column(String(40), index=True)
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_records"

    workspace_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The id of what the request made (a job, an endpoint, a delivery), if anything.
    job_id: Mapped[str | None] = mapped_column(String(40))
    # Random, written with the claim: only the request that holds it may complete or
    # release the record, never a slower one whose claim was taken over meanwhile.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Worker(Base):
    """One row per worker id: who holds it, and when it last said it was alive."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    # New on every claim: a process whose id was taken over (even by one with the same
    # host and pid, as containers restart as pid 1) sees its heartbeats refused.
    incarnation: Mapped[str] = mapped_column(String(32))
    version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    # Set when the worker stopped or was declared dead; its id is then free.
    stopped_at: Mapped[datetime | None]
    stop_reason: Mapped[str | None] = mapped_column(String(64))


class Lease(Base):
    """A named, expiring lease: one holder at a time (the reaper's election)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    expires_at: Mapped[datetime]


class ProviderCall(Base):
    """One call of a provider for one attempt: the scorecard and the breakers read
    these (success rate, latency, moderation, cost, last error)."""

    __tablename__ = "provider_calls"
    __table_args__ = (
        Index("ix_provider_calls_provider_started", "provider", "started_at"),
        Index("ix_provider_calls_provider_outcome_started", "provider", "outcome", "started_at"),
        Index("ix_provider_calls_started_at", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider: Mapped[str] = mapped_column(String(64))
    model: Mapped[str] = mapped_column(String(128))
    job_id: Mapped[str] = mapped_column(String(40))
    # The job's workspace: only it may read the call's error text.
    workspace_id: Mapped[str | None] = mapped_column(String(40), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime]
    duration_ms: Mapped[int] = mapped_column(Integer)
    # ok | failed | moderated
    outcome: Mapped[str] = mapped_column(String(16))
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(String(300))
    images: Mapped[int] = mapped_column(Integer)
    cost_usd: Mapped[float] = mapped_column(Float)


class ProviderBreaker(Base):
    """A provider's circuit breaker, shared by every worker."""

    __tablename__ = "provider_breakers"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    # closed | open | half_open
    state: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class ProviderSlot(Base):
    """One of a provider's ``concurrency`` slots, held by an attempt while it calls."""

    __tablename__ = "provider_slots"

    provider: Mapped[str] = mapped_column(String(64), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(80))
    expires_at: Mapped[datetime | None]


class WebhookEndpoint(Base):
    """A workspace's webhook receiver. Secrets are sealed (webhooks.signing.SecretBox)."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_workspace_id", "workspace_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"))
    url: Mapped[str] = mapped_column(String(2048))
    # Comma-joined between commas (",job.queued,job.completed,"): matched with LIKE.
    event_types: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(String(500))
    enabled: Mapped[bool] = mapped_column(Boolean)
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class WebhookSecret(Base):
    """A workspace's default secret: it signs deliveries to jobs' own ``webhook_url``."""

    __tablename__ = "webhook_secrets"

    workspace_id: Mapped[str] = mapped_column(ForeignKey("workspaces.id"), primary_key=True)
    secret: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class WebhookDelivery(Base):
    """One event for one receiver (an endpoint, or the job's URL): the outbox row,
    written with the event, and the state of its delivery."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_dispatch", "dispatched", "id"),
        Index("ix_webhook_deliveries_job", "workspace_id", "job_id", "id"),
        Index("ix_webhook_deliveries_endpoint", "workspace_id", "endpoint_id", "id"),
        Index("ix_webhook_deliveries_finished_at", "finished_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workspace_id: Mapped[str] = mapped_column(String(40))
    job_id: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[int] = mapped_column(Integer)
    event_type: Mapped[str] = mapped_column(String(32))
    event_at: Mapped[datetime]
    endpoint_id: Mapped[str | None] = mapped_column(String(40))
    url: Mapped[str] = mapped_column(String(2048))
    # The Standard Webhooks ``webhook-id``: the same on every attempt and redelivery.
    webhook_id: Mapped[str] = mapped_column(String(40))
    # "<event id>:<endpoint id or 'job'>" on the deliveries an event fans out to (so
    # that happens once); empty on redeliveries.
    fanout_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    redelivery_of: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime | None]
    # Whether its workflow was started (the dispatcher looks for False).
    dispatched: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class WebhookAttempt(Base):
    """One HTTP attempt of a delivery."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (
        UniqueConstraint("delivery_id", "attempt", name="uq_webhook_attempts_delivery_attempt"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String(40))
    workspace_id: Mapped[str] = mapped_column(String(40))
    attempt: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    url: Mapped[str] = mapped_column(String(2048))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer)
    response_snippet: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(500))
