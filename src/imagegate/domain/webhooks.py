"""Webhook delivery as data: event types, delivery states, the retry decision and the
body's size limit. Pure: the engine carries out what these functions decide."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

EVENT_TYPES: tuple[str, ...] = (
    "job.queued",
    "job.running",
    "job.progress",
    "job.completed",
    "job.failed",
    "job.canceled",
)
# Progress is opt-in: up to two events a second per running job is more than most
# receivers want. Every other event is sent unless the endpoint narrows the list.
DEFAULT_EVENT_TYPES: tuple[str, ...] = tuple(t for t in EVENT_TYPES if t != "job.progress")
# A job's own ``webhook_url`` receives these.
JOB_URL_EVENT_TYPES = DEFAULT_EVENT_TYPES

# The suggested Standard Webhooks schedule: the delay before each attempt.
DEFAULT_SCHEDULE_S: tuple[float, ...] = (
    0, 5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400,
)  # fmt: skip
JITTER = 0.1
# Bodies stay under this many bytes (Standard Webhooks: under 20 KB).
MAX_BODY_BYTES = 20_000
# Statuses whose Retry-After is honoured (the receiver asks us to slow down).
RETRY_AFTER_STATUSES = frozenset({429, 502, 503, 504})


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # attempts remain (or the first has yet to happen)
    DELIVERED = "delivered"  # a 2xx answer
    FAILED = "failed"  # stopped for good without one: its endpoint was deleted
    EXHAUSTED = "exhausted"  # every attempt of the schedule failed
    DISABLED = "disabled"  # its endpoint is disabled (by a 410 Gone, or by its owner)

    def is_final(self) -> bool:
        return self is not DeliveryStatus.PENDING


@dataclass(frozen=True)
class Decision:
    """What follows an attempt: a final status, or another attempt after ``delay_s``."""

    status: DeliveryStatus
    delay_s: float = 0.0

    @property
    def final(self) -> bool:
        return self.status.is_final()


def parse_schedule(text: str) -> tuple[float, ...]:
    """``"0,5,300"`` → ``(0.0, 5.0, 300.0)``: the delay before each attempt."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated seconds, got {text!r}") from None
    if not values or any(v < 0 or v != v or v == float("inf") for v in values):
        raise ValueError(f"expected one or more delays of 0 s or more, got {text!r}")
    return values


def jittered(delay_s: float, key: str) -> float:
    """``delay_s`` moved by up to ±10 %, by a factor derived from ``key``: random-looking
    across deliveries, yet the same when a durable workflow replays the decision."""
    digest = hashlib.sha256(key.encode()).digest()
    factor = 1 - JITTER + (int.from_bytes(digest[:4], "big") / 2**32) * 2 * JITTER
    return round(delay_s * factor, 3)


def decide(
    *,
    attempt: int,
    schedule: Sequence[float],
    status_code: int | None,
    retry_after_s: float | None,
    retry_after_max_s: float,
    jitter_key: str,
) -> Decision:
    """After attempt number ``attempt`` (1-based) answered ``status_code`` (``None``:
    no answer — refused, timed out, unsafe address), what next?

    2xx is delivered; 410 Gone disables the endpoint; anything else (3xx included:
    redirects are never followed) is a failed attempt, retried after the schedule's
    next delay — or after the receiver's Retry-After on 429/502/503/504 when that is
    longer, up to ``retry_after_max_s`` — until the schedule runs out."""
    if status_code is not None and 200 <= status_code < 300:
        return Decision(DeliveryStatus.DELIVERED)
    if status_code == 410:
        return Decision(DeliveryStatus.DISABLED)
    if attempt >= len(schedule):
        return Decision(DeliveryStatus.EXHAUSTED)
    delay = jittered(schedule[attempt], jitter_key)
    if status_code in RETRY_AFTER_STATUSES and retry_after_s is not None:
        delay = max(delay, min(retry_after_s, retry_after_max_s))
    return Decision(DeliveryStatus.PENDING, delay)


# Where a webhook body carries prompt text: the job's fields, its frozen preset, and a
# /mj task's (prompt, promptEn, description, properties.finalPrompt).
PROMPT_FIELDS = frozenset(
    {"prompt", "negative_prompt", "promptEn", "description", "finalPrompt", "revised_prompt"}
)


def without_prompts(body: Any) -> Any:
    """``body`` with every prompt field, at any depth, set to None (a workspace with
    ``private_prompts``)."""
    if isinstance(body, dict):
        return {k: None if k in PROMPT_FIELDS else without_prompts(v) for k, v in body.items()}
    if isinstance(body, list):
        return [without_prompts(item) for item in body]
    return body


def encode_body(body: dict[str, Any], limit: int = MAX_BODY_BYTES) -> bytes:
    """The body as compact JSON of at most ``limit`` bytes. A job whose free-text
    fields make it larger loses its ``metadata``, then the tail of its
    ``negative_prompt`` and ``prompt``, and the body says ``"truncated": true`` (the
    receiver fetches the job for the whole of it). URLs and the rest are never cut."""
    encoded = _dump(body)
    if len(encoded) <= limit:
        return encoded
    trimmed = copy.deepcopy(body)
    trimmed["truncated"] = True
    data = trimmed.get("data")
    if not isinstance(data, dict):
        raise ValueError(f"a webhook body of {len(encoded)} bytes cannot be trimmed")
    if data.get("metadata"):
        data["metadata"] = {}
    for field in ("negative_prompt", "prompt"):
        encoded = _dump(trimmed)
        text = data.get(field)
        if len(encoded) <= limit or not isinstance(text, str):
            continue
        over = len(encoded) - limit
        raw = text.encode()
        data[field] = raw[: max(0, len(raw) - over - 8)].decode(errors="ignore")
    encoded = _dump(trimmed)
    if len(encoded) > limit:
        raise ValueError(f"a webhook body of {len(encoded)} bytes cannot be trimmed")
    return encoded


def _dump(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class EndpointRecord:
    """A webhook endpoint as stored; its secrets still sealed."""

    id: str
    workspace_id: str
    url: str
    event_types: tuple[str, ...]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    sealed_secret: str
    sealed_previous_secret: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class AttemptRecord:
    attempt: int
    at: datetime
    url: str
    status_code: int | None
    latency_ms: int | None
    response_snippet: str | None
    error: str | None


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    workspace_id: str
    job_id: str
    event_id: int
    event_type: str
    event_at: datetime
    endpoint_id: str | None
    url: str
    webhook_id: str
    redelivery_of: str | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None
    created_at: datetime
    finished_at: datetime | None
    attempt_log: tuple[AttemptRecord, ...] = ()
