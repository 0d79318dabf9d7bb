"""The image inputs a job names in its ``params`` (a parent's image, uploads, a mask),
read from storage into the provider request at the start of each attempt.

Jobs store references, not bytes: a job row stays small, and an input is read only by
the attempt that needs it. The shapes (written by ``services.actions`` and
``services.submission``): ``source`` and each of ``sources`` and ``style_reference``
is ``{"key", "width", "height", "content_type", …}``; ``mask`` is either
``{"rectangles": [box, …]}`` in the source's pixels or a stored mask image like the
others."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from imagegate.db import jobs_repo
from imagegate.domain.actions import Box
from imagegate.domain.records import JobRecord
from imagegate.imaging import normalize_mask, rectangles_mask
from imagegate.providers.base import GenerationRequest
from imagegate.runtime import Runtime
from imagegate.storage.base import ObjectNotFound


class InputMissing(Exception):
    """An input the job names is no longer stored (its upload expired or was deleted)."""


async def request_for(rt: Runtime, job: JobRecord) -> GenerationRequest:
    """The provider request of ``job``'s next attempt, its inputs' bytes included."""
    request = GenerationRequest.from_params(
        job.prompt, job.negative_prompt, job.params, str(job.model), job.attempts, job.action,
        provider=job.provider,
    )  # fmt: skip
    p = job.params
    changes: dict[str, Any] = {}
    source = p.get("source")
    if source:
        changes["source_image"] = await _read(rt, source)
        parent_task = await _parent_provider_job_id(rt, job, source)
        if parent_task:
            changes["parent_provider_job_id"] = parent_task
    if p.get("sources"):
        changes["source_images"] = tuple([await _read(rt, s) for s in p["sources"]])
    if p.get("style_reference"):
        changes["style_image"] = await _read(rt, p["style_reference"])
    mask = p.get("mask")
    if mask and source:
        width, height = int(source["width"]), int(source["height"])
        if "rectangles" in mask:
            boxes = [Box.from_dict(b) for b in mask["rectangles"]]
            changes["mask"] = await asyncio.to_thread(rectangles_mask, width, height, boxes)
        else:
            data = await _read(rt, mask)
            async with rt.decodes:
                changes["mask"] = await asyncio.to_thread(normalize_mask, data, width, height)
    return replace(request, **changes) if changes else request


async def _parent_provider_job_id(
    rt: Runtime, job: JobRecord, source: dict[str, Any]
) -> str | None:
    """The parent's provider job id, when the parent ran on the provider this attempt
    runs on (an id is meaningful only to the provider that handed it out)."""
    parent_id = source.get("job_id")
    if not parent_id or not job.provider:
        return None
    async with rt.db.connect() as conn:
        parent = await jobs_repo.get_job(conn, str(parent_id), job.workspace_id, children=False)
    if parent is None or parent.provider != job.provider:
        return None
    return parent.provider_job_id


async def _read(rt: Runtime, ref: dict[str, Any]) -> bytes:
    try:
        return await rt.storage.get(str(ref["key"]))
    except ObjectNotFound as error:
        what = f"upload {ref['upload_id']}" if ref.get("upload_id") else "an input image"
        raise InputMissing(f"{what} of this job is no longer stored") from error
