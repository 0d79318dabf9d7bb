"""For adapters that make a job's images as several provider jobs (one per seed): the
ids kept together in the one correlation string, and the provider jobs followed
together, the first failure ending them all."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any, TypeVar

from imagegate.providers.errors import ModeratedError

# The job row keeps at most this many characters of ids (jobs.provider_job_id).
MAX_ID_CHARS = 1024
T = TypeVar("T")


def joined(ids: list[str]) -> str:
    """The ids, in seed order, as many as fit the job row's column; a resumed attempt
    submits again for those left out."""
    kept: list[str] = []
    for part_id in ids:
        if len(",".join([*kept, part_id])) > MAX_ID_CHARS:
            break
        kept.append(part_id)
    return ",".join(kept)


def split(ids: str | None) -> list[str]:
    """The ids of a correlation string (``None`` or ``""``: none)."""
    return [part for part in (ids or "").split(",") if part]


async def gather(coroutines: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Run the coroutines together; the first failure cancels the rest and is raised
    as itself (a moderation verdict first: it must not be retried)."""
    try:
        async with asyncio.TaskGroup() as group:
            running = [group.create_task(job) for job in coroutines]
    except ExceptionGroup as failures:
        leaves = list(_leaves(failures))
        moderated = [e for e in leaves if isinstance(e, ModeratedError)]
        raise (moderated or leaves)[0] from None
    return [task.result() for task in running]


def _leaves(group: BaseExceptionGroup[Any]) -> Iterator[BaseException]:
    for error in group.exceptions:
        if isinstance(error, BaseExceptionGroup):
            yield from _leaves(error)
        else:
            yield error
