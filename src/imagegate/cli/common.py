"""What every client command shares: the options, the client, and how a failure reads.

What a script reads (JSON, the ids, the saved paths) goes to stdout; progress and
decoration go to stderr. Failures print ``error: <code>: <detail>`` to stderr and exit 1;
a missing key or bad configuration exits 2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from imagegate.cli.http_client import ClientError, ImagegateClient
from imagegate.settings import Settings, load_settings

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
OutOption = Annotated[
    Path | None,
    typer.Option(help="Where to save the images (default: ./imagegate-out/<job id>/)"),
]
NoWaitOption = Annotated[
    bool, typer.Option("--no-wait", help="Print the queued job as JSON and return")
]
IdempotencyKeyOption = Annotated[
    str | None,
    typer.Option(help="Makes a repeated create safe (default: a fresh one per run)"),
]
TimeoutOption = Annotated[float, typer.Option(min=0, help="Seconds to wait for the job to finish")]


def fail(code: str, detail: str, exit_code: int = 1) -> NoReturn:
    # Plain echo, not rich: a console narrower than the message would wrap it.
    typer.echo(f"error: {code}: {detail}", err=True)
    raise typer.Exit(exit_code)


def _settings() -> Settings:
    try:
        return load_settings()
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        fail("invalid_settings", f"check the IMAGEGATE_* environment: {problems}", 2)


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
        fail("no_api_key", f"cannot read the admin key file {path}: {error.strerror}", 2)
    if key:
        return key
    fail(
        "no_api_key",
        "no API key found: pass --key KEY or set IMAGEGATE_API_KEY "
        f"(create one with `imagegate keys create`); {path} does not exist either",
        2,
    )


@contextmanager
def connect(url: str | None, key: str | None) -> Iterator[ImagegateClient]:
    """A client for the server, turning its failures into ``error: …`` and an exit."""
    settings = _settings()
    api_key = _resolve_key(key, settings)
    base_url = (url or settings.server_url).rstrip("/")
    try:
        with ImagegateClient(base_url, api_key) as client:
            yield client
    except ClientError as error:
        fail(error.code, error.detail)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        raise typer.Exit(130) from None


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))
