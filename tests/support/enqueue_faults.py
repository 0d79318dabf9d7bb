"""``imagegate`` whose job enqueues fail once, after the job's row has committed.

Run as a script in place of the ``imagegate`` command (``ServerProcess(program=...)``):
the first enqueue of every job run raises, as it would with the engine's database
away for a moment; later ones (the enqueue sweep's) go through. It stands in for a
fault that cannot be caused from outside the process at that exact point."""

from __future__ import annotations

from imagegate.cli.main import app
from imagegate.engine import dbos_engine

_real_enqueue = dbos_engine.enqueue
_failed_once: set[tuple[str, int]] = set()


async def _enqueue_failing_once(job_id: str, workspace_id: str, run: int = 1) -> None:
    if (job_id, run) not in _failed_once and len(_failed_once) < 10_000:
        _failed_once.add((job_id, run))
        raise ConnectionError(f"injected: enqueue of {job_id} run {run} failed after commit")
    await _real_enqueue(job_id, workspace_id, run)


if __name__ == "__main__":
    dbos_engine.enqueue = _enqueue_failing_once  # type: ignore[assignment]
    app(prog_name="imagegate")
