"""Write a job row straight to the database, as a submit that never reached the queue."""

from __future__ import annotations

from imagegate.db import jobs_repo
from imagegate.domain.ids import new_id
from imagegate.runtime import Runtime
from imagegate.services.submission import JobSpec, resolve


async def insert_unqueued_job(
    rt: Runtime, workspace_id: str, key_id: str, provider: str, prompt: str
) -> str:
    """A queued one-image draft job for ``provider``; returns its id."""
    resolved = resolve(JobSpec(prompt=prompt, variations=1, mode="draft"))
    now = rt.clock.now()
    job_id = new_id("job")
    async with rt.db.begin() as conn:
        await jobs_repo.insert_job(
            conn,
            {
                "id": job_id, "workspace_id": workspace_id, "api_key_id": key_id,
                "end_user": None, "status": "queued", "action": "imagine",
                "prompt": resolved.prompt, "negative_prompt": None,
                "params": {**resolved.params, "model": provider}, "provider": provider,
                "model": provider, "estimated_credits": 1, "metadata": {},
                "created_at": now, "updated_at": now,
            },
        )  # fmt: skip
    return job_id
