"""Commands that talk HTTP to a running server: imagine, jobs.

What a script reads (JSON, the ids, the saved paths) goes to stdout; progress and
decoration go to stderr. Failures print ``error: <code>: <detail>`` to stderr and exit 1;
a missing key or bad configuration exits 2.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, NoReturn
from urllib.parse import urlsplit

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    Progress,
    SpinnerColumn,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from imagegate.cli.http_client import ClientError, ImagegateClient
from imagegate.settings import Settings, load_settings

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

stderr = Console(stderr=True)
stdout = Console()

UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Server URL (default: $IMAGEGATE_URL, else the configured public URL)",
        show_default=False,
    ),
]
KeyOption = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="API key (default: $IMAGEGATE_API_KEY, else <data dir>/admin.key)",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the JSON answer to stdout")]
JobIdArg = Annotated[str, typer.Argument(help="The job id (job_…)", show_default=False)]

jobs_app = typer.Typer(no_args_is_help=True, help="List, inspect, cancel and requeue jobs.")


def register(app: typer.Typer) -> None:
    """Attach the client commands to ``app``."""
    app.command()(imagine)
    app.add_typer(jobs_app, name="jobs")


def _fail(code: str, detail: str, exit_code: int = 1) -> NoReturn:
    # Plain echo, not rich: a console narrower than the message would wrap it.
    typer.echo(f"error: {code}: {detail}", err=True)
    raise typer.Exit(exit_code)


def _settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        _fail("invalid_settings", f"check the IMAGEGATE_* environment: {problems}", 2)


def _resolve_key(flag: str | None, settings: Settings) -> str:
    """``--key``, then ``$IMAGEGATE_API_KEY``, then the admin key file; blank counts as unset."""
    for candidate in (flag, settings.api_key):
        if candidate and candidate.strip():
            return candidate.strip()
    path = settings.admin_key_path
    try:
        key = path.read_text().strip()
    except FileNotFoundError:
        key = ""
    except OSError as error:
        _fail("no_api_key", f"cannot read the admin key file {path}: {error.strerror}", 2)
    if key:
        return key
    _fail(
        "no_api_key",
        "no API key found: pass --key KEY or set IMAGEGATE_API_KEY "
        f"(create one with `imagegate keys create`); {path} does not exist either",
        2,
    )


@contextmanager
def _client(url: str | None, key: str | None) -> Iterator[ImagegateClient]:
    settings = _settings()
    api_key = _resolve_key(key, settings)
    base_url = (url or settings.server_url).rstrip("/")
    try:
        with ImagegateClient(base_url, api_key) as client:
            yield client
    except ClientError as error:
        _fail(error.code, error.detail)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


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
    out: Annotated[
        Path | None,
        typer.Option(help="Where to save the images (default: ./imagegate-out/<job id>/)"),
    ] = None,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Print the queued job as JSON and return")
    ] = False,
    url: UrlOption = None,
    key: KeyOption = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(help="Makes a repeated create safe (default: a fresh one per run)"),
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=0, help="Seconds to wait for the job to finish")
    ] = 300.0,
) -> None:
    """Generate images for PROMPT, wait for them, and save them.

    Prints the job id, then the saved file paths, one per line, to stdout.
    """
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
    }
    with _client(url, key) as client:
        # One key per run: if the answer to the create is lost, the client's retry
        # gets the same job back instead of queueing (and paying for) a second one.
        job = client.create_job(
            {k: v for k, v in body.items() if v is not None},
            idempotency_key or str(uuid.uuid4()),
        )
        if no_wait:
            _echo_json(job)
            return
        job_id = str(job["job_id"])
        typer.echo(job_id)
        try:
            job = _follow(client, job, timeout)
        except KeyboardInterrupt:
            typer.echo(f"stopped following {job_id}; it keeps running on the server", err=True)
            raise typer.Exit(130) from None
        _check_outcome(job)
        paths = _save_images(client, job, out or Path("imagegate-out") / job_id)
    for path in paths:
        typer.echo(str(path))


def _follow(client: ImagegateClient, job: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Poll the job until it finishes, drawing its status and progress on stderr."""
    job_id = str(job["job_id"])
    deadline = time.monotonic() + timeout
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=stderr) as progress:
        task = progress.add_task(_describe(job), total=100, completed=job["progress"])
        while job["status"] not in TERMINAL:
            if time.monotonic() >= deadline:
                _fail(
                    "timeout",
                    f"{job_id} is still {job['status']} after {timeout:g}s; it keeps running "
                    f"(see `imagegate jobs get {job_id}`)",
                )
            time.sleep(POLL_INTERVAL_S)
            job = client.get_job(job_id)
            progress.update(task, description=_describe(job), completed=job["progress"])
    return job


def _describe(job: dict[str, Any]) -> str:
    status = str(job["status"])
    return f"{escape(str(job['job_id']))} [{STATUS_STYLE.get(status, '')}]{escape(status)}[/]"


def _check_outcome(job: dict[str, Any]) -> None:
    status = job["status"]
    if status == "completed":
        return
    error = job.get("error") or {}
    message = error.get("message")
    detail = f"{message} (job {job['job_id']} {status})" if message else None
    _fail(str(error.get("code") or status), detail or f"job {job['job_id']} was {status}")


def _save_images(client: ImagegateClient, job: dict[str, Any], out: Path) -> list[Path]:
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
            _fail("write_failed", f"cannot write {path}: {error.strerror or error}")
        paths.append(path)
    stderr.print(f"saved {len(paths)} file(s) to {escape(str(out.resolve()))}")
    return paths


def _index(image: dict[str, Any]) -> int:
    return int(image["index"])


def _suffix(file_url: str) -> str:
    suffix = PurePosixPath(urlsplit(file_url).path).suffix.lower()
    return suffix if suffix in IMAGE_SUFFIXES else ".png"


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
    with _client(url, key) as client:
        page = client.list_jobs(status or (), True if dead_letter else None, cursor, limit)
    if as_json:
        _echo_json(page)
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
    with _client(url, key) as client:
        job = client.get_job(job_id)
    if as_json:
        _echo_json(job)
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
    with _client(url, key) as client:
        job = client.cancel_job(job_id)
    _print_outcome(job, as_json)


@jobs_app.command("retry")
def retry_job(
    job_id: JobIdArg, as_json: JsonOption = False, url: UrlOption = None, key: KeyOption = None
) -> None:
    """Requeue a dead-lettered job (needs an admin key)."""
    with _client(url, key) as client:
        job = client.retry_job(job_id)
    _print_outcome(job, as_json)


def _print_outcome(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        _echo_json(job)
    else:
        typer.echo(f"{job['job_id']} {job['status']}")
