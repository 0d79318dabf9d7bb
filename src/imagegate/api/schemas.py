"""Request and response bodies of the HTTP contract (DESIGN §4)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from imagegate.api.text import FreeText, Name, NameKey, name_keys
from imagegate.domain.params import MAX_PROMPT_CHARS, MAX_SEED, MAX_VARIATIONS
from imagegate.domain.records import JobRecord
from imagegate.storage.base import Storage

MetadataKey = Annotated[NameKey, StringConstraints(min_length=1, max_length=40)]
MetadataValue = Annotated[FreeText, StringConstraints(max_length=500)]


class JobCreate(BaseModel):
    """Create an image job. Only ``prompt`` is required."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "prompt": "A cinematic product photo of a running shoe on wet pavement",
                    "style": "studio",
                    "ratio": "16:9",
                    "variations": 4,
                }
            ]
        },
    )

    prompt: FreeText = Field(
        min_length=1,
        max_length=MAX_PROMPT_CHARS,
        description="What to draw; may carry flags: --ar 16:9 --seed 7 --no text --draft",
    )
    negative_prompt: FreeText | None = Field(default=None, max_length=2000)
    style: Name | None = Field(default=None, description="A style preset name")
    ratio: Name | None = Field(default=None, description="Aspect ratio 'W:H', default 1:1")
    variations: int | None = Field(default=None, ge=1, le=MAX_VARIATIONS)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    mode: Literal["draft", "standard"] | None = None
    output_format: Literal["png", "jpeg", "webp"] | None = Field(
        default=None, description="Encoding of the stored images, default png"
    )
    model: Name | None = Field(
        default=None, max_length=128, description="'auto' or 'provider:model'"
    )
    routing: Literal["priority", "cheapest", "fastest"] | None = Field(
        default=None,
        description="How 'auto' picks a provider; default: the workspace's or server's policy",
    )
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict, max_length=16, json_schema_extra=name_keys(1, 40)
    )
    user: Name | None = Field(default=None, min_length=1, max_length=128)
    webhook_url: Name | None = Field(
        default=None,
        min_length=1,
        max_length=2048,
        description="Also deliver this job's events here (https, public addresses), signed "
        "with the workspace's default secret (GET /api/image/webhooks/default/secret)",
    )

    @field_validator("metadata", mode="before")
    @classmethod
    def _null_metadata_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("prompt")
    @classmethod
    def _prompt_has_text(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must not be blank")
        return value


class JobError(BaseModel):
    code: str
    message: str | None


class JobCost(BaseModel):
    estimated_credits: int
    charged_credits: int


class JobImage(BaseModel):
    index: int
    url: str
    width: int
    height: int
    seed: int | None


class JobPublic(BaseModel):
    job_id: str
    status: str
    action: str
    parent_job_id: str | None
    prompt: str
    negative_prompt: str | None
    params: dict[str, Any]
    progress: int
    result_urls: list[str]
    images: list[JobImage]
    grid_url: str | None
    provider: str | None
    model: str | None
    # The provider's own id for the work (its prediction, request, task), for support.
    provider_job_id: str | None
    attempts: int
    dead_letter: bool
    error: JobError | None
    cost: JobCost
    user: str | None
    metadata: dict[str, str]
    webhook_url: str | None = None
    batch_id: str | None = None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None

    @classmethod
    def from_record(cls, job: JobRecord, storage: Storage) -> JobPublic:
        images = [
            JobImage(
                index=i.index,
                url=storage.url(i.storage_key),
                width=i.width,
                height=i.height,
                seed=i.seed,
            )
            for i in job.images
            if i.kind == "image"
        ]
        grid = next((i for i in job.images if i.kind == "grid"), None)
        return cls(
            job_id=job.id,
            status=job.status.value,
            action=job.action,
            parent_job_id=job.parent_job_id,
            prompt=job.prompt,
            negative_prompt=job.negative_prompt,
            params=job.params,
            progress=job.progress,
            result_urls=[i.url for i in images],
            images=images,
            grid_url=storage.url(grid.storage_key) if grid else None,
            provider=job.provider,
            model=job.model,
            provider_job_id=job.provider_job_id,
            attempts=job.attempts,
            dead_letter=job.dead_letter,
            error=JobError(code=job.error_code, message=job.error_message)
            if job.error_code
            else None,
            cost=JobCost(
                estimated_credits=job.estimated_credits, charged_credits=job.charged_credits
            ),
            user=job.user,
            metadata=job.metadata,
            webhook_url=job.webhook_url,
            batch_id=job.batch_id,
            created_at=job.created_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
        )


class JobsPublic(BaseModel):
    data: list[JobPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")
    has_more: bool


class Problem(BaseModel):
    """An RFC 9457 problem document (docs/errors.md). Branch on ``code``."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable and machine-readable: docs/errors.md lists them")
    field: str | None = Field(default=None, description="The request field at fault")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="Each invalid field: {field, message, type}"
    )
    retry_after: int | None = Field(
        default=None, description="429: seconds until the request fits, as Retry-After"
    )
