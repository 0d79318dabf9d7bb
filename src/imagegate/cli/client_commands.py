"""Commands that talk HTTP to a running server: imagine, jobs (cli.common says how
their output and failures read; cli.action_commands holds the follow-ups)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table

from imagegate.cli.common import (
    IdempotencyKeyOption,
    JobIdArg,
    JsonOption,
    KeyOption,
    NoWaitOption,
    OutOption,
    TimeoutOption,
    UrlOption,
    connect,
    echo_json,
    stderr,
    stdout,
)
from imagegate.cli.following import STATUS_STYLE, finish
from imagegate.cli.uploading import image_reference

jobs_app = typer.Typer(no_args_is_help=True, help="List, inspect, cancel and requeue jobs.")


def register(app: typer.Typer) -> None:
    """Attach the client commands to ``app``."""
    app.command()(imagine)
    app.add_typer(jobs_app, name="jobs")


def imagine(
    prompt: Annotated[str, typer.Argument(help="What to draw", show_default=False)],
    ar: Annotated[str | None, typer.Option("--ar", help="Aspect ratio W:H, e.g. 16:9")] = None,
    style: Annotated[str | None, typer.Option(help="A style preset name")] = None,
    variations: Annotated[
        int | None, typer.Option(min=1, max=4, help="Images to make, 1-4 (server default: 4)")
    ] = None,
    mode: Annotated[str | None, typer.Option(help="draft or standard")] = None,
    seed: Annotated[int | None, typer.Option(min=0, help="Seed, for repeatable images")] = None,
    negative: Annotated[str | None, typer.Option(help="What to keep out of the image")] = None,
    model: Annotated[str | None, typer.Option(help="'auto' or 'provider:model'")] = None,
    output_format: Annotated[
        str | None, typer.Option("--format", help="png, jpeg or webp (server default: png)")
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="img2img: start from this image (a file, uploaded first, or an https URL)",
            show_default=False,
        ),
    ] = None,
    strength: Annotated[
        float | None,
        typer.Option(min=0, max=1, help="img2img: how far to move from --image, 0-1"),
    ] = None,
    out: OutOption = None,
    no_wait: NoWaitOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
    idempotency_key: IdempotencyKeyOption = None,
    timeout: TimeoutOption = 300.0,
) -> None:
    """Generate images for PROMPT, wait for them, and save them.

    Prints the job id, then the saved file paths, one per line, to stdout.
    """
    if strength is not None and image is None:
        raise typer.BadParameter("--strength needs --image", param_hint="--strength")
    body = {
        "prompt": prompt,
        "ratio": ar,
        "style": style,
        "variations": variations,
        "mode": mode,
        "seed": seed,
        "negative_prompt": negative,
        "model": model,
        "output_format": output_format,
        "strength": strength,
    }
    with connect(url, key) as client:
        if image is not None:
            body["init_image"] = image_reference(client, image)
        # One key per run: if the answer to the create is lost, the client's retry
        # gets the same job back instead of queueing (and paying for) a second one.
        job = client.create_job(
            {k: v for k, v in body.items() if v is not None},
            idempotency_key or str(uuid.uuid4()),
        )
        if no_wait:
            echo_json(job)
            return
        finish(client, job, out, timeout)


@jobs_app.command("list")
def list_jobs(
    status: Annotated[
        list[str] | None,
        typer.Option(
            help="queued, running, completed, failed or canceled; repeat or comma-separate",
            show_default=False,
        ),
    ] = None,
    dead_letter: Annotated[
        bool, typer.Option("--dead-letter", help="Only jobs that gave up after retries")
    ] = False,
    limit: Annotated[int | None, typer.Option(min=1, max=100, help="Page size")] = None,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page")] = None,
    as_json: JsonOption = False,
    url: UrlOption = None,
    key: KeyOption = None,
) -> None:
    """Your workspace's jobs, newest first."""
    with connect(url, key) as client:
        page = client.list_jobs(status or (), True if dead_letter else None, cursor, limit)
    if as_json:
        echo_json(page)
        return
    _print_jobs_table(page["data"])
    if page.get("next_cursor"):
        typer.echo(f"next cursor: {page['next_cursor']}")


def _print_jobs_table(jobs: list[dict[str, Any]]) -> None:
    if not jobs:
        stderr.print("no jobs")
        return
    rows: list[tuple[str, ...]] = [
        (
            escape(str(job["job_id"])),
            _styled_status(job),
            f"{job['progress']}%",
            escape(" ".join(str(job["prompt"]).split())),
            _age(str(job["created_at"]), datetime.now(UTC)),
        )
        for job in jobs
    ]
    # Ids are what a reader copies, so they are never cut; the prompt takes what is left.
    unbounded = stdout.options.update(max_width=10_000)
    fixed = Measurement.get(stdout, unbounded, _jobs_table(rows, 0)).maximum
    stdout.print(_jobs_table(rows, max(10, min(60, stdout.width - fixed))))


def _jobs_table(rows: list[tuple[str, ...]], prompt_width: int) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold underline")
    for name in ("id", "status", "progress", "prompt", "created"):
        table.add_column(
            name,
            no_wrap=True,
            overflow="ellipsis",
            max_width=prompt_width if name == "prompt" else None,
            justify="right" if name == "progress" else "left",
        )
    for row in rows:
        table.add_row(*row)
    return table


def _styled_status(job: dict[str, Any]) -> str:
    status = str(job["status"])
    label = status + (" (dead)" if job.get("dead_letter") else "")
    return f"[{STATUS_STYLE.get(status, '')}]{escape(label)}[/]"


def _age(timestamp: str, now: datetime) -> str:
    try:
        created = datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    seconds = int((now - created).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{max(seconds, 0)}s ago"


@jobs_app.command("get")
def get_job(
    job_id: JobIdArg, as_json: JsonOption = False, url: UrlOption = None, key: KeyOption = None
) -> None:
    """One job: status, progress, images."""
    with connect(url, key) as client:
        job = client.get_job(job_id)
    if as_json:
        echo_json(job)
        return
    error = job.get("error")
    rows = {
        "job": job["job_id"],
        "status": job["status"] + (" (dead letter)" if job.get("dead_letter") else ""),
        "progress": f"{job['progress']}%",
        "prompt": job["prompt"],
        "params": ", ".join(f"{k}={v}" for k, v in job["params"].items() if v is not None),
        "attempts": job["attempts"],
        "error": f"{error['code']}: {error['message']}" if error else None,
        "created": job["created_at"],
        "completed": job.get("completed_at"),
        "grid": job.get("grid_url"),
    }
    rows.update({f"image {i['index']}": i["url"] for i in job["images"]})
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")  # URLs must survive a narrow terminal whole
    for name, value in rows.items():
        if value is not None:
            grid.add_row(name, escape(str(value)))
    stdout.print(grid)


@jobs_app.command("cancel")
def cancel_job(
    job_id: JobIdArg, as_json: JsonOption = False, url: UrlOption = None, key: KeyOption = None
) -> None:
    """Cancel a queued or running job."""
    with connect(url, key) as client:
        job = client.cancel_job(job_id)
    _print_outcome(job, as_json)


@jobs_app.command("retry")
def retry_job(
    job_id: JobIdArg, as_json: JsonOption = False, url: UrlOption = None, key: KeyOption = None
) -> None:
    """Requeue a dead-lettered job (needs an admin key)."""
    with connect(url, key) as client:
        job = client.retry_job(job_id)
    _print_outcome(job, as_json)


def _print_outcome(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        echo_json(job)
    else:
        typer.echo(f"{job['job_id']} {job['status']}")
