"""Request and response bodies of the webhook API (docs/api.md#webhooks)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from imagegate.api.text import FreeText, Name
from imagegate.domain.webhooks import (
    DEFAULT_EVENT_TYPES,
    AttemptRecord,
    DeliveryRecord,
    EndpointRecord,
)

EventType = Literal[
    "job.queued", "job.running", "job.progress", "job.completed", "job.failed", "job.canceled"
]
URL_FIELD = Field(
    min_length=1, max_length=2048, description="An https URL that resolves to public addresses"
)


def _unique(value: list[str] | None) -> list[str] | None:
    if value is not None and len(set(value)) != len(value):
        raise ValueError("event types must not repeat")
    return value


class WebhookEndpointCreate(BaseModel):
    """A receiver for the workspace's job events."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"url": "https://example.com/hooks/imagegate",
                 "event_types": ["job.completed", "job.failed"]}
            ]
        },
    )  # fmt: skip

    url: Name = URL_FIELD
    event_types: list[EventType] | None = Field(
        default=None,
        min_length=1,
        description=f"Default: every type but job.progress ({', '.join(DEFAULT_EVENT_TYPES)})",
    )
    description: FreeText | None = Field(default=None, max_length=500)
    enabled: bool = True

    _check_types = field_validator("event_types")(_unique)


class WebhookEndpointUpdate(BaseModel):
    """The fields to change; the others stay as they are."""

    model_config = ConfigDict(extra="forbid")

    url: Name | None = Field(default=None, min_length=1, max_length=2048)
    event_types: list[EventType] | None = Field(default=None, min_length=1)
    description: FreeText | None = Field(default=None, max_length=500)
    enabled: bool | None = None

    _check_types = field_validator("event_types")(_unique)


class WebhookEndpointPublic(BaseModel):
    id: str
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(description="Why it was disabled (410 Gone, or you)")
    previous_secret_expires_at: datetime | None = Field(
        description="Until then, the secret before the last rotation signs too"
    )
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_record(cls, endpoint: EndpointRecord) -> WebhookEndpointPublic:
        return cls(
            id=endpoint.id,
            url=endpoint.url,
            event_types=list(endpoint.event_types),
            description=endpoint.description,
            enabled=endpoint.enabled,
            disabled_reason=endpoint.disabled_reason,
            previous_secret_expires_at=endpoint.previous_secret_expires_at,
            created_at=endpoint.created_at,
            updated_at=endpoint.updated_at,
        )


class WebhookEndpointCreated(WebhookEndpointPublic):
    secret: str = Field(description="The signing secret (whsec_…); GET /secret shows it again")


class WebhookEndpointsPublic(BaseModel):
    data: list[WebhookEndpointPublic]


class WebhookSecretPublic(BaseModel):
    key: str = Field(description="A Standard Webhooks secret, whsec_…")
    previous_key_expires_at: datetime | None = Field(
        default=None, description="Until then the previous secret signs as well"
    )


class DeliveryAttemptPublic(BaseModel):
    at: datetime
    status_code: int | None
    latency_ms: int | None
    response_snippet: str | None = Field(description="The first 500 bytes of the answer")
    error: str | None

    @classmethod
    def from_record(cls, attempt: AttemptRecord) -> DeliveryAttemptPublic:
        return cls(
            at=attempt.at,
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            response_snippet=attempt.response_snippet,
            error=attempt.error,
        )


class DeliveryPublic(BaseModel):
    id: str
    event_type: str
    webhook_id: str = Field(description="The webhook-id header: dedupe on it")
    job_id: str
    endpoint_id: str | None = Field(description="None: the job's own webhook_url")
    url: str
    status: Literal["pending", "delivered", "failed", "exhausted", "disabled"]
    attempts: list[DeliveryAttemptPublic]
    next_attempt_at: datetime | None
    redelivery_of: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def from_record(cls, delivery: DeliveryRecord) -> DeliveryPublic:
        return cls(
            id=delivery.id,
            event_type=delivery.event_type,
            webhook_id=delivery.webhook_id,
            job_id=delivery.job_id,
            endpoint_id=delivery.endpoint_id,
            url=delivery.url,
            status=delivery.status.value,
            attempts=[DeliveryAttemptPublic.from_record(a) for a in delivery.attempt_log],
            next_attempt_at=delivery.next_attempt_at,
            redelivery_of=delivery.redelivery_of,
            created_at=delivery.created_at,
            finished_at=delivery.finished_at,
        )


class DeliveriesPublic(BaseModel):
    data: list[DeliveryPublic]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")
    has_more: bool
