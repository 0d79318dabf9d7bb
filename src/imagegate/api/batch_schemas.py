"""Request and response bodies of the batch API (docs/batches.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from imagegate.api.schemas import JobError, MetadataKey, MetadataValue, Problem
from imagegate.api.text import name_keys
from imagegate.domain.batches import MAX_ITEMS, BatchRecord
from imagegate.services.batches import BatchView
from imagegate.storage.base import Storage


class BatchCreate(BaseModel):
    """Up to 100 job bodies, each the body of ``POST /api/image/jobs``. Each item is
    validated alone: a bad item is reported with its problem, the others run. The
    same items may come as JSONL instead (``Content-Type: application/x-ndjson``),
    one body per line."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"prompt": "a lighthouse at dusk", "ratio": "16:9"},
                        {"prompt": "a lighthouse at dawn --draft", "variations": 1},
                    ],
                    "metadata": {"campaign": "coast"},
                }
            ]
        },
    )

    # Kept as sent: each item is validated on its own (as a JobCreate), not here.
    items: list[Any] = Field(
        description="The job bodies, in order; an item's `index` is its place here, from 0",
        json_schema_extra={"minItems": 1, "maxItems": MAX_ITEMS},
    )
    metadata: dict[MetadataKey, MetadataValue] = Field(
        default_factory=dict, max_length=16, json_schema_extra=name_keys(1, 40)
    )


class BatchItemCreated(BaseModel):
    """One item: the job it became, or the problem that refused it."""

    index: int
    job_id: str | None = None
    error: Problem | None = None


class BatchCreated(BaseModel):
    batch_id: str
    item_count: int
    accepted: int = Field(description="Items that became jobs")
    rejected: int = Field(description="Items refused, each with its `error`")
    items: list[BatchItemCreated]
    metadata: dict[str, str]
    created_at: datetime

    @classmethod
    def from_record(cls, batch: BatchRecord) -> BatchCreated:
        return cls(
            batch_id=batch.id,
            item_count=batch.item_count,
            accepted=batch.accepted,
            rejected=batch.item_count - batch.accepted,
            items=[BatchItemCreated.model_validate(item) for item in batch.items],
            metadata=batch.metadata,
            created_at=batch.created_at,
        )


class BatchCounts(BaseModel):
    """The batch's jobs per status."""

    queued: int
    running: int
    completed: int
    failed: int
    canceled: int


class BatchItemPublic(BaseModel):
    index: int
    job_id: str | None = Field(description="None: the item was refused (see `problem`)")
    status: str | None
    progress: int
    result_urls: list[str]
    error: JobError | None = Field(description="Why the item's job failed")
    problem: Problem | None = Field(description="Why the item was refused at submit")


class BatchSummary(BaseModel):
    batch_id: str
    item_count: int
    accepted: int
    rejected: int
    counts: BatchCounts
    progress: int = Field(description="The mean of the jobs' progress, an ended job as 100")
    done: bool = Field(description="Every job of the batch has ended")
    metadata: dict[str, str]
    created_at: datetime

    @classmethod
    def fields_of(cls, view: BatchView) -> dict[str, Any]:
        batch = view.batch
        return {
            "batch_id": batch.id,
            "item_count": batch.item_count,
            "accepted": batch.accepted,
            "rejected": batch.item_count - batch.accepted,
            "counts": BatchCounts(**view.summary.counts),
            "progress": view.summary.progress,
            "done": view.summary.done,
            "metadata": batch.metadata,
            "created_at": batch.created_at,
        }

    @classmethod
    def from_view(cls, view: BatchView) -> BatchSummary:
        return cls(**cls.fields_of(view))


class BatchPublic(BatchSummary):
    items: list[BatchItemPublic]

    @classmethod
    def from_view_with_items(cls, view: BatchView, storage: Storage) -> BatchPublic:
        return cls(**cls.fields_of(view), items=[_item(i, view, storage) for i in view.batch.items])


def _item(item: dict[str, Any], view: BatchView, storage: Storage) -> BatchItemPublic:
    job = view.jobs.get(str(item.get("job_id")))
    if job is None:
        # Refused at submit (or, rarely, a job removed since by retention).
        return BatchItemPublic(
            index=item["index"], job_id=item.get("job_id"), status=None, progress=0,
            result_urls=[], error=None, problem=item.get("error"),
        )  # fmt: skip
    return BatchItemPublic(
        index=item["index"],
        job_id=job.id,
        status=job.status.value,
        progress=job.progress,
        result_urls=[storage.url(i.storage_key) for i in job.images if i.kind == "image"],
        error=JobError(code=job.error_code, message=job.error_message) if job.error_code else None,
        problem=None,
    )


class BatchesPublic(BaseModel):
    data: list[BatchSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")
    has_more: bool
