"""All configuration, read from the environment (``IMAGEGATE_*``) and nowhere else."""

from __future__ import annotations

import ipaddress
import os
import secrets
import time
from functools import cached_property
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from imagegate.domain.flags import DEFAULT_VERSION_MODELS, parse_version_models
from imagegate.domain.openai_images import DEFAULT_MODELS as DEFAULT_OPENAI_MODELS
from imagegate.domain.openai_images import parse_models as parse_openai_models
from imagegate.domain.rates import Rate, parse_rate
from imagegate.domain.webhooks import parse_schedule


class Settings(BaseSettings):
    """Every knob imagegate has. Defaults give the embedded, one-process setup."""

    model_config = SettingsConfigDict(
        env_prefix="IMAGEGATE_", extra="ignore", frozen=True, populate_by_name=True
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    data_dir: Path = Path(".imagegate")
    public_url: str | None = None
    database_url: str | None = None
    system_database_url: str | None = None
    secret_key: str | None = None
    log_level: str = "INFO"

    signed_url_ttl_s: int = Field(default=3600, ge=1)

    # Storage (docs/configuration.md#storage). Unset or ``file://`` keeps images under
    # the data dir; ``s3://bucket/prefix`` puts them in an S3-compatible bucket that the
    # operator created. Without keys, boto3's own chain (AWS_* env, instance role) applies.
    storage_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_addressing_style: Literal["auto", "path", "virtual"] = "auto"
    # A public bucket or a CDN in front of it: links are base/key, unsigned, never expire.
    storage_public_base_url: str | None = None
    workspace_concurrency: int = Field(default=8, ge=1)
    queue_poll_interval_s: float = Field(default=0.05, gt=0)

    # Connections each process may open, to the app's tables and to the engine's: on
    # PostgreSQL every process holds up to the sum (+1 for notifications), and all
    # processes together must fit the server's max_connections.
    database_pool_size: int = Field(default=10, ge=1, le=500)
    engine_pool_size: int = Field(default=10, ge=2, le=500)

    # Scale-out (docs/deploy.md). A worker's id names it to the engine and must be
    # stable across its restarts (so it recovers its own work at once) and unique
    # among live processes; unset, each process takes ``<hostname>-<n>``, the first
    # slot on this host that no live process holds. IMAGEGATE_EXECUTOR_ID is the
    # name this setting had before.
    worker_id: str | None = Field(
        default=None,
        validation_alias=AliasChoices("IMAGEGATE_WORKER_ID", "IMAGEGATE_EXECUTOR_ID"),
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$",
    )
    # A worker whose heartbeat is older than the lease is dead: one elected process
    # hands its unfinished jobs to the survivors.
    worker_lease_s: float = Field(default=60.0, ge=1)
    worker_heartbeat_interval_s: float = Field(default=10.0, gt=0)
    # Jobs one worker process runs at once (None: only the per-workspace cap). Stored
    # with the queue: the last worker to start sets it for all (docs/deploy.md).
    worker_concurrency: int | None = Field(default=None, ge=1)
    # On SIGTERM a worker stops taking jobs and waits this long for its running ones;
    # any still running then are handed back to the other workers.
    drain_timeout_s: int = Field(default=30, ge=0)
    # A job recorded but still without a run on the queue this long after (its enqueue
    # failed after the commit) is queued by the elected reaper's next pass.
    enqueue_sweep_grace_s: float = Field(default=5.0, ge=0)

    max_attempts: int = Field(default=3, ge=1, le=20)
    # A provider call that takes longer is abandoned and counts as a failed attempt.
    attempt_timeout_s: float = Field(default=600.0, gt=0)
    retry_base_delay_s: float = Field(default=2.0, ge=0)
    retry_max_delay_s: float = Field(default=60.0, ge=0)

    idempotency_ttl_s: int = Field(default=24 * 3600, ge=60)

    # Retention (docs/configuration.md#retention): rows older than this many days are
    # deleted by the elected housekeeper, every ``retention_interval_s``; 0 keeps them.
    retention_provider_calls_days: int = Field(default=30, ge=0, le=36_500)
    # Only events of jobs that finished that long ago: a running job keeps its log.
    retention_job_events_days: int = Field(default=30, ge=0, le=36_500)
    # Finished deliveries, with their attempts; one still being retried stays.
    retention_webhook_deliveries_days: int = Field(default=30, ge=0, le=36_500)
    # Moderation decisions (GET /api/image/moderation), kept longer for audits.
    retention_moderation_days: int = Field(default=90, ge=0, le=36_500)
    # What a stored GB costs (a month) in the usage report's cost per final image.
    storage_usd_per_gb: float = Field(default=0.023, ge=0)
    # Whether jobs spend credits from the workspace's ledger (docs/credits.md); per
    # workspace with [workspaces.<name>] credits in the configuration file.
    credits_required: bool = False
    # Finished jobs, with their images (and everything of theirs that DELETE
    # /api/image/jobs/{id} removes); 0 keeps them. [workspaces.<name>] retention_days
    # in the configuration file overrides it per workspace.
    retention_jobs_days: int = Field(default=0, ge=0, le=36_500)
    # The audit log (GET /api/image/audit).
    retention_audit_days: int = Field(default=365, ge=0, le=36_500)
    retention_interval_s: float = Field(default=3600.0, gt=0)
    # The longest a create may wait for its job with ``Prefer: wait=N``.
    prefer_wait_max_s: int = Field(default=60, ge=0, le=600)
    key_cache_ttl_s: float = Field(default=30.0, ge=0)
    # The OpenAI-compatible /v1 images API (docs/openai-compat.md): OpenAI model names
    # and the imagegate model each maps to ("name=auto|provider:model", comma-separated;
    # added to the gpt-image-*/dall-e-* defaults), and how long a /v1 request waits for
    # its job before answering 504 (the job goes on; the job API has it).
    openai_models: str = ""
    openai_wait_s: int = Field(default=300, ge=1, le=3600)

    # Shared counters and rate limits (docs/configuration.md#rate-limits). With a Redis
    # URL every API process shares the counts; without one, each process counts alone.
    redis_url: str | None = None
    # "N/second", "N/minute" or "N/hour"; "off" turns a limit off. Generous enough that
    # a client polling its jobs never meets them; they stop runaway loops.
    rate_limit_requests: str | None = "6000/minute"  # per API key, every request
    rate_limit_jobs: str | None = "600/minute"  # per workspace, job creation

    # Webhooks and the SSRF guard (docs/configuration.md#webhooks). Every user-given URL
    # must be https and resolve to public addresses only; the allowlist (CIDRs,
    # comma-separated) admits self-hosted intranets, over http as well.
    ssrf_allowlist: str = ""
    ssrf_resolve_timeout_s: float = Field(default=5.0, gt=0)
    webhook_allow_http: bool = False
    # The delay before each attempt, seconds (±10 % jitter); then the delivery is
    # exhausted. The default is Standard Webhooks' suggestion, about 3 days in all.
    webhook_schedule_s: str = "0,5,300,1800,7200,18000,36000,50400,72000,86400"
    webhook_timeout_s: float = Field(default=15.0, gt=0, le=300)
    # After a rotation the old secret signs beside the new one for this long.
    webhook_secret_grace_s: int = Field(default=24 * 3600, ge=0)
    # The longest a receiver's Retry-After (on 429/502/503/504) can hold a delivery.
    webhook_retry_after_max_s: float = Field(default=6 * 3600, ge=0)
    # Requests in flight at once, per worker process.
    webhook_concurrency: int = Field(default=64, ge=1, le=10_000)
    # How often each worker looks for new deliveries to start.
    webhook_dispatch_interval_s: float = Field(default=0.05, gt=0, le=60)

    # Metrics and traces (docs/observability.md). /metrics on the API port is open
    # unless a token is set (Prometheus then sends it as a bearer token) or it is
    # turned off; a worker serves it on its own port only when one is given.
    metrics_enabled: bool = True
    metrics_token: SecretStr | None = None
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str | None = None  # unset: IMAGEGATE_HOST
    # Where spans go over OTLP HTTP (needs the ``tracing`` extra); OpenTelemetry's own
    # OTEL_EXPORTER_OTLP_* variables work as well.
    otlp_endpoint: str | None = None

    @field_validator("ssrf_allowlist")
    @classmethod
    def _check_allowlist(cls, value: str) -> str:
        for part in value.split(","):
            if part.strip():
                try:
                    ipaddress.ip_network(part.strip(), strict=False)
                except ValueError:
                    raise ValueError(f"IMAGEGATE_SSRF_ALLOWLIST: not a CIDR: {part!r}") from None
        return value

    @field_validator("webhook_schedule_s")
    @classmethod
    def _check_schedule(cls, value: str) -> str:
        try:
            parse_schedule(value)
        except ValueError as error:
            raise ValueError(f"IMAGEGATE_WEBHOOK_SCHEDULE_S: {error}") from None
        return value

    @field_validator("model_versions")
    @classmethod
    def _check_model_versions(cls, value: str) -> str:
        try:
            parse_version_models(value)
        except ValueError as error:
            raise ValueError(f"IMAGEGATE_MODEL_VERSIONS: {error}") from None
        return value

    @field_validator("openai_models")
    @classmethod
    def _check_openai_models(cls, value: str) -> str:
        try:
            parse_openai_models(value)
        except ValueError as error:
            raise ValueError(f"IMAGEGATE_OPENAI_MODELS: {error}") from None
        return value

    @cached_property
    def openai_models_map(self) -> dict[str, str]:
        """Each OpenAI model name the /v1 API accepts, and the imagegate model it asks for."""
        return {**DEFAULT_OPENAI_MODELS, **parse_openai_models(self.openai_models)}

    @cached_property
    def version_models(self) -> dict[str, str]:
        """Each --v/--niji version this server knows, and the model it asks for."""
        return {**DEFAULT_VERSION_MODELS, **parse_version_models(self.model_versions)}

    @cached_property
    def ssrf_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        parts = (p.strip() for p in self.ssrf_allowlist.split(","))
        return tuple(ipaddress.ip_network(p, strict=False) for p in parts if p)

    @cached_property
    def webhook_schedule(self) -> tuple[float, ...]:
        return parse_schedule(self.webhook_schedule_s)

    # Reads from providers (docs/configuration.md#provider-reads): every answer is read
    # with a byte cap and a deadline. Result images are streamed up to the image cap
    # (per image); JSON answers up to the JSON cap (answers that carry base64 images
    # get the image cap per image on top). Result downloads follow redirects only
    # through the SSRF guard: public addresses, the allowlist above, and the
    # provider's own base_url.
    provider_max_image_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    provider_max_json_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    provider_download_timeout_s: float = Field(default=120.0, gt=0)
    # Output images decoded (transcoded, put in the grid) at once, per process;
    # unset = one per CPU. Each holds a full decoded image in memory.
    image_decode_concurrency: int | None = Field(default=None, ge=1, le=256)

    # Uploads (docs/uploads.md): the largest file accepted, in bytes (the request body
    # may be a third larger, for base64); the most pixels (width x height), kept below
    # Pillow's own decompression-bomb limit; how long a URL fetch may take in all; and
    # how many days an upload is kept before the retention sweep deletes it with its
    # file (0 keeps uploads forever).
    upload_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1024, le=200 * 1024 * 1024)
    upload_max_pixels: int = Field(default=40_000_000, ge=1, le=80_000_000)
    upload_fetch_timeout_s: float = Field(default=30.0, gt=0, le=600)
    upload_retention_days: int = Field(default=7, ge=0, le=36_500)

    builtin_latency_ms: int = Field(default=0, ge=0)
    # Measuring imagegate's own cost per job: the built-in provider answers with a tiny
    # pre-encoded image instead of rendering (benchmarks and tests, never production).
    builtin_placeholder: bool = False
    # Worker processes the built-in renderer draws in; unset = one per CPU, 0 = threads.
    builtin_processes: int | None = Field(default=None, ge=0, le=64)
    # Fault injection for chaos tests: prompts containing the marker fail with a
    # retryable error on their first `builtin_fault_attempts` attempts.
    builtin_fault_marker: str | None = None
    builtin_fault_attempts: int = Field(default=1_000_000, ge=0)

    # The provider configuration file (TOML; docs/providers.md). Unset: the built-in
    # renderer is the only provider.
    config: Path | None = None
    # What a prompt's --v/--niji version asks for (docs/prompt-flags.md#versions):
    # "version=model" pairs, comma-separated, e.g. "v7=auto,niji6=replicate:anime";
    # over the defaults, which map every known version to "auto". A pair may add a
    # version; one that maps to a model overrides the version's "auto".
    model_versions: str = ""

    # For the CLI's client commands: which server to talk to, with which key.
    url: str | None = None
    api_key: str | None = None

    @field_validator("public_url", "storage_public_base_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("rate_limit_requests", "rate_limit_jobs")
    @classmethod
    def _check_rate(cls, value: str | None, info: ValidationInfo) -> str | None:
        try:
            rate = parse_rate(value)
        except ValueError as error:
            raise ValueError(f"IMAGEGATE_{str(info.field_name).upper()}: {error}") from None
        return str(rate) if rate else None

    @cached_property
    def request_rate(self) -> Rate | None:
        return parse_rate(self.rate_limit_requests)

    @cached_property
    def job_rate(self) -> Rate | None:
        return parse_rate(self.rate_limit_jobs)

    @field_validator("storage_url")
    @classmethod
    def _check_storage_url(cls, value: str | None) -> str | None:
        if not value or value == "file://":
            return None
        split_s3_url(value)
        return value

    @cached_property
    def s3_location(self) -> tuple[str, str] | None:
        """``(bucket, prefix)`` when images go to S3; ``None`` for local disk."""
        return split_s3_url(self.storage_url) if self.storage_url else None

    @model_validator(mode="after")
    def _lease_outlives_heartbeats(self) -> Settings:
        if self.worker_lease_s < 3 * self.worker_heartbeat_interval_s:
            raise ValueError(
                "IMAGEGATE_WORKER_LEASE_S must be at least three heartbeat intervals "
                "(IMAGEGATE_WORKER_HEARTBEAT_INTERVAL_S), or one slow beat declares a "
                "live worker dead"
            )
        return self

    @cached_property
    def resolved_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"

    @cached_property
    def server_url(self) -> str:
        """Where the CLI finds the server: ``IMAGEGATE_URL``, else the public URL."""
        return (self.url or self.resolved_public_url).rstrip("/")

    @cached_property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return async_driver_url(self.database_url)
        return f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'imagegate.db'}"

    @property
    def uses_postgres(self) -> bool:
        return self.resolved_database_url.startswith("postgresql")

    @cached_property
    def resolved_system_database_url(self) -> str:
        """The engine's database: the setting; else, on PostgreSQL, the app's own
        database (the engine keeps its tables in the ``dbos`` schema); else a SQLite
        file beside the app's."""
        if self.system_database_url:
            return self.system_database_url
        if self.uses_postgres:
            return self.resolved_database_url
        return f"sqlite:///{self.data_dir.resolve() / 'engine.sqlite'}"

    @property
    def files_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def admin_key_path(self) -> Path:
        return self.data_dir / "admin.key"

    def ensure_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)

    @cached_property
    def resolved_secret_key(self) -> bytes:
        """The HMAC key for signed file URLs: the setting, else one kept in the data dir."""
        if self.secret_key:
            return self.secret_key.encode()
        self.ensure_data_dir()
        path = self.data_dir / "secret.key"
        try:
            # O_EXCL: of two processes starting at once, exactly one writes the key.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            _wait_for_content(path)
        else:
            with os.fdopen(fd, "w") as handle:
                handle.write(secrets.token_urlsafe(32))
        return path.read_text().strip().encode()

    @property
    def resolved_image_decode_concurrency(self) -> int:
        return self.image_decode_concurrency or os.cpu_count() or 1

    @property
    def resolved_builtin_processes(self) -> int:
        if self.builtin_processes is not None:
            return self.builtin_processes
        return os.cpu_count() or 1

    @staticmethod
    def secret(name: str) -> str | None:
        """An environment variable named by the provider configuration (its API keys):
        secrets live only in the environment, never in the file."""
        return os.environ.get(name)


def _wait_for_content(path: Path, timeout_s: float = 2.0) -> None:
    """Another process has just created ``path``; give it a moment to write it."""
    deadline = time.monotonic() + timeout_s
    while not path.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.01)


def async_driver_url(url: str) -> str:
    """Accept the usual spellings of a PostgreSQL URL; the app speaks psycopg 3."""
    for prefix in ("postgres://", "postgresql://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` → ``("bucket", "some/prefix")``."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(
            f"IMAGEGATE_STORAGE_URL must be unset, file:// (local disk under the data dir) "
            f"or s3://bucket[/prefix], not {url!r}"
        )
    return parts.netloc, parts.path.strip("/")


def load_settings() -> Settings:
    return Settings()
