"""Following jobs to their end on stderr, and saving what they made.

Polling, not the event stream: one GET every ``POLL_INTERVAL_S`` is what a proxy or a
flaky connection never breaks, and a batch is followed with one GET for all its jobs.
"""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from imagegate.cli.common import fail, stderr
from imagegate.cli.http_client import ImagegateClient

POLL_INTERVAL_S = 0.25
TERMINAL = frozenset({"completed", "failed", "canceled"})
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp"})
STATUS_STYLE = {
    "queued": "yellow",
    "running": "cyan",
    "completed": "green",
    "failed": "red",
    "canceled": "dim",
}


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        console=stderr,
    )


def finish(client: ImagegateClient, job: dict[str, Any], out: Path | None, timeout: float) -> None:
    """What every creating command does with its new job: print its id, follow it to
    its end, and print what it made: the saved files' paths, or its texts (describe)."""
    job_id = str(job["job_id"])
    typer.echo(job_id)
    try:
        job = follow(client, job, timeout)
    except KeyboardInterrupt:
        typer.echo(f"stopped following {job_id}; it keeps running on the server", err=True)
        raise typer.Exit(130) from None
    check_outcome(job)
    for text in job.get("texts") or ():
        typer.echo(" ".join(str(text).split()))
    if job.get("images") or job.get("grid_url"):
        for path in save_images(client, job, out or Path("imagegate-out") / job_id):
            typer.echo(str(path))


def follow(client: ImagegateClient, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Poll the job until it finishes, drawing its status and progress on stderr."""
    job_id = str(job["job_id"])
    deadline = time.monotonic() + timeout
    with _progress() as progress:
        task = progress.add_task(_describe(job), total=100, completed=job["progress"])
        while job["status"] not in TERMINAL:
            if time.monotonic() >= deadline:
                fail(
                    "timeout",
                    f"{job_id} is still {job['status']} after {timeout:g}s; it keeps running "
                    f"(see `imagegate jobs get {job_id}`)",
                )
            time.sleep(POLL_INTERVAL_S)
            job = client.get_job(job_id)
            progress.update(task, description=_describe(job), completed=job["progress"])
    return job


def follow_batch(client: ImagegateClient, batch: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Poll the batch until every job has ended: one bar for all of them, on stderr."""
    batch_id = str(batch["batch_id"])
    deadline = time.monotonic() + timeout
    with _progress() as progress:
        task = progress.add_task(f"{escape(batch_id)}", total=100)
        while True:
            batch = client.get_batch(batch_id)
            progress.update(task, description=_counts(batch), completed=batch["progress"])
            if batch["done"]:
                return batch
            if time.monotonic() >= deadline:
                fail(
                    "timeout",
                    f"{batch_id} is still running after {timeout:g}s; its jobs keep running "
                    f"(see `imagegate jobs list`)",
                )
            time.sleep(POLL_INTERVAL_S)


def _counts(batch: dict[str, Any]) -> str:
    shown = [
        f"[{STATUS_STYLE[status]}]{count} {status}[/]"
        for status, count in batch["counts"].items()
        if count and status in STATUS_STYLE
    ]
    return f"{escape(str(batch['batch_id']))} " + ", ".join(shown)


def _describe(job: dict[str, Any]) -> str:
    status = str(job["status"])
    return f"{escape(str(job['job_id']))} [{STATUS_STYLE.get(status, '')}]{escape(status)}[/]"


def check_outcome(job: dict[str, Any]) -> None:
    status = job["status"]
    if status == "completed":
        return
    error = job.get("error") or {}
    message = error.get("message")
    detail = f"{message} (job {job['job_id']} {status})" if message else None
    fail(str(error.get("code") or status), detail or f"job {job['job_id']} was {status}")


def save_images(client: ImagegateClient, job: dict[str, Any], out: Path) -> list[Path]:
    """Download each image as ``<index><ext>`` and the grid as ``grid<ext>`` into ``out``."""
    wanted = [(str(i["index"]), str(i["url"])) for i in sorted(job["images"], key=_index)]
    if job.get("grid_url"):
        wanted.append(("grid", str(job["grid_url"])))
    paths: list[Path] = []
    for stem, file_url in wanted:
        path = (out / (stem + _suffix(file_url))).resolve()
        try:
            client.download(file_url, path)
        except OSError as error:
            fail("write_failed", f"cannot write {path}: {error.strerror or error}")
        paths.append(path)
    stderr.print(f"saved {len(paths)} file(s) to {escape(str(out.resolve()))}")
    return paths


def _index(image: dict[str, Any]) -> int:
    return int(image["index"])


def _suffix(file_url: str) -> str:
    suffix = PurePosixPath(urlsplit(file_url).path).suffix.lower()
    return suffix if suffix in IMAGE_SUFFIXES else ".png"
