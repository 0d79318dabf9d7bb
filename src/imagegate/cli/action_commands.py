"""The Midjourney loop from the command line: upscale, vary, reroll, zoom and pan a
finished job; describe and blend images; run a JSONL file of jobs as one batch.

Each command prints the new job's id, follows it with a progress bar on stderr, and
prints the saved files' paths (or, for describe, the four prompts) to stdout, as
``imagine`` does. Files are uploaded first (``POST /api/image/uploads``)."""

from __future__ import annotations

import uuid
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from imagegate.cli.common import (
    IdempotencyKeyOption,
    JobIdArg,
    KeyOption,
    NoWaitOption,
    OutOption,
    TimeoutOption,
    UrlOption,
    connect,
    echo_json,
    fail,
)
from imagegate.cli.following import finish, follow_batch, save_images
from imagegate.cli.http_client import ClientError, ImagegateClient
from imagegate.cli.uploading import image_reference

# The server refuses a batch body over its own cap (256 KiB) with a clear 413; this
# only keeps a mistaken path out of memory.
MAX_BATCH_FILE_BYTES = 16 * 1024 * 1024


class Direction(StrEnum):
    LEFT = "left"
    RIGHT = "right"
    UP = "up"
    DOWN = "down"


class Dimensions(StrEnum):
    PORTRAIT = "portrait"
    SQUARE = "square"
    LANDSCAPE = "landscape"


IndexArg = Annotated[
    int, typer.Argument(min=1, max=4, help="Which image of the job, 1-4", show_default=False)
]
PromptOption = Annotated[
    str | None,
    typer.Option(help="A new prompt for the new images (remix)", show_default=False),
]


def register(app: typer.Typer) -> None:
    """Attach the action commands to ``app``."""
    for command in (upscale, vary, reroll, zoom, pan, describe, blend, batch):
        app.command()(command)


def upscale(
    job_id: JobIdArg,
    index: IndexArg,
    creative: Annotated[
        bool, typer.Option("--creative", help="Add detail rather than keep the image as is")
    ] = False,
    factor: Annotated[int, typer.Option(help="2 or 4 times the pixels on each side")] = 2,
    out: OutOption = None,
    no_wait: NoWaitOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    timeout: TimeoutOption = 300.0,
) -> None:
    """Upscale image INDEX of JOB_ID."""
    if factor not in (2, 4):
        raise typer.BadParameter("the factor is 2 or 4", param_hint="--factor")
    body = {"action": "upscale", "index": index, "factor": factor,
            "mode": "creative" if creative else "subtle"}  # fmt: skip
    _act(job_id, body, out, no_wait, url, key, idempotency_key, timeout)


def vary(
    job_id: JobIdArg,
    index: IndexArg,
    strong: Annotated[
        bool, typer.Option("--strong", help="Move further from the image (default: subtle)")
    ] = False,
    prompt: PromptOption = None,
    out: OutOption = None,
    no_wait: NoWaitOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    timeout: TimeoutOption = 300.0,
) -> None:
    """Make variations of image INDEX of JOB_ID."""
    body = {"action": "variation", "index": index, "strength": "strong" if strong else "subtle",
            "prompt": prompt}  # fmt: skip
    _act(job_id, body, out, no_wait, url, key, idempotency_key, timeout)


def reroll(
    job_id: JobIdArg,
    out: OutOption = None,
    no_wait: NoWaitOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    timeout: TimeoutOption = 300.0,
) -> None:
    """Run JOB_ID's prompt again, with new seeds."""
    _act(job_id, {"action": "reroll"}, out, no_wait, url, key, idempotency_key, timeout)


def zoom(
    job_id: JobIdArg,
    index: IndexArg,
    factor: Annotated[
        float, typer.Option(min=1.0, max=2.0, help="How far to zoom out, 1.0-2.0")
    ] = 2.0,
    prompt: PromptOption = None,
    out: OutOption = None,
    no_wait: NoWaitOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    timeout: TimeoutOption = 300.0,
) -> None:
    """Zoom out of image INDEX of JOB_ID: the scene extended around it."""
    body = {"action": "zoom_out", "index": index, "factor": factor, "prompt": prompt}
    _act(job_id, body, out, no_wait, url, key, idempotency_key, timeout)


def pan(
    job_id: JobIdArg,
    index: IndexArg,
    direction: Annotated[Direction, typer.Argument(help="Which side to extend")],
    prompt: PromptOption = None,
    out: OutOption = None,
    no_wait: NoWaitOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    timeout: TimeoutOption = 300.0,
) -> None:
    """Extend image INDEX of JOB_ID to one side, keeping the image as it is."""
    body = {"action": "pan", "index": index, "direction": direction.value, "prompt": prompt}
    _act(job_id, body, out, no_wait, url, key, idempotency_key, timeout)


def _act(
    job_id: str,
    body: dict[str, Any],
    out: Path | None,
    no_wait: bool,
    url: str | None,
    key: str | None,
    idempotency_key: str | None,
    timeout: float,
) -> None:
    with connect(url, key) as client:
        # One key per run, as imagine: a lost answer retried does not act twice.
        job = client.act(
            job_id,
            {k: v for k, v in body.items() if v is not None},
            idempotency_key or str(uuid.uuid4()),
        )
        _finish(client, job, out, no_wait, timeout)


def _finish(
    client: ImagegateClient,
    job: dict[str, Any],
    out: Path | None,
    no_wait: bool,
    timeout: float,
) -> None:
    if no_wait:
        echo_json(job)
    else:
        finish(client, job, out, timeout)


ImageArg = Annotated[str, typer.Argument(help="An image file, https URL or upload id")]


def describe(
    image: ImageArg,
    no_wait: NoWaitOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    timeout: TimeoutOption = 300.0,
) -> None:
    """Four prompts that could have made IMAGE, one per line."""
    with connect(url, key) as client:
        body = {"action": "describe", "images": [image_reference(client, image)]}
        job = client.create_job(body, idempotency_key or str(uuid.uuid4()))
        _finish(client, job, None, no_wait, timeout)


def blend(
    images: Annotated[
        list[str], typer.Argument(help="2 to 5 image files, https URLs or upload ids")
    ],
    dimensions: Annotated[
        Dimensions, typer.Option(help="The shape of the blend")
    ] = Dimensions.SQUARE,
    prompt: Annotated[
        str | None, typer.Option(help="What to make of the blend", show_default=False)
    ] = None,
    out: OutOption = None,
    no_wait: NoWaitOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    timeout: TimeoutOption = 300.0,
) -> None:
    """Blend IMAGES into new images."""
    if not 2 <= len(images) <= 5:
        raise typer.BadParameter("blend takes 2 to 5 images", param_hint="IMAGES")
    with connect(url, key) as client:
        refs = [image_reference(client, image) for image in images]
        body = {"action": "blend", "images": refs, "dimensions": dimensions.value}
        if prompt is not None:
            body["prompt"] = prompt
        job = client.create_job(body, idempotency_key or str(uuid.uuid4()))
        _finish(client, job, out, no_wait, timeout)


def batch(
    file: Annotated[
        Path, typer.Argument(help="A JSONL file: one job body per line", show_default=False)
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Where to save (default: ./imagegate-out/<batch id>/<job id>/)"),
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Print the queued batch as JSON and return")
    ] = False,
    url: UrlOption = None,
    key: KeyOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    timeout: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for every job to finish")
    ] = 900.0,
) -> None:
    """Run every job of FILE (up to 100) as one batch, follow them all, save the results.

    Prints the batch id, then the saved file paths. Refused items and failed jobs are
    listed on stderr, and make the exit status 1.
    """
    content = _read_batch_file(file)
    with connect(url, key) as client:
        try:
            created = client.create_batch(content, idempotency_key or str(uuid.uuid4()))
        except ClientError as error:
            _print_refused((error.problem or {}).get("items") or [])
            raise
        if no_wait:
            echo_json(created)
            return
        batch_id = str(created["batch_id"])
        typer.echo(batch_id)
        _print_refused(created["items"])
        try:
            done = follow_batch(client, created, timeout)
        except KeyboardInterrupt:
            typer.echo(f"stopped following {batch_id}; its jobs keep running", err=True)
            raise typer.Exit(130) from None
        root = out or Path("imagegate-out") / batch_id
        failed = _save_batch(client, done, root)
    missing = int(created["rejected"]) + failed
    if missing:
        fail("batch_incomplete", f"{missing} of {created['item_count']} items did not complete")


def _read_batch_file(file: Path) -> bytes:
    try:
        with file.open("rb") as handle:
            content = handle.read(MAX_BATCH_FILE_BYTES + 1)
    except OSError as error:
        fail("read_failed", f"cannot read {file}: {error.strerror or error}")
    if len(content) > MAX_BATCH_FILE_BYTES:
        fail("file_too_large", f"{file} is over {MAX_BATCH_FILE_BYTES // (1024 * 1024)} MiB")
    return content


def _print_refused(items: list[dict[str, Any]]) -> None:
    for item in items:
        error = item.get("error")
        if error:
            reason = f"{error['code']}: {error['detail']}"
            typer.echo(f"item {item['index']}: refused: {reason}", err=True)


def _save_batch(client: ImagegateClient, batch: dict[str, Any], root: Path) -> int:
    """Save each completed job's files under ``root/<job id>/``; how many jobs failed."""
    failed = 0
    for item in batch["items"]:
        if item["job_id"] is None:
            continue
        if item["status"] != "completed":
            failed += 1
            error = item.get("error")
            reason = f": {error['code']}: {error['message']}" if error else ""
            typer.echo(
                f"item {item['index']}: job {item['job_id']} {item['status']}{reason}", err=True
            )
            continue
        job = client.get_job(str(item["job_id"]))
        for text in job.get("texts") or ():
            typer.echo(" ".join(str(text).split()))
        if job.get("images") or job.get("grid_url"):
            for path in save_images(client, job, root / str(job["job_id"])):
                typer.echo(str(path))
    return failed
