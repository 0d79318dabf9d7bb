"""``imagegate``: run the server, manage keys, and talk to a server over HTTP."""

from __future__ import annotations

import asyncio

import typer
import uvicorn
from rich.console import Console

from imagegate.cli import client_commands
from imagegate.db.migrate import upgrade
from imagegate.observability.logging import configure
from imagegate.runtime import Runtime
from imagegate.services import keys as keys_service
from imagegate.settings import load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys (works on the database).")
app.add_typer(keys_app, name="keys")
client_commands.register(app)
console = Console(stderr=True)


@app.command()
def migrate() -> None:
    """Apply database migrations."""
    settings = load_settings()
    settings.ensure_data_dir()
    upgrade(settings.resolved_database_url)
    console.print("[green]database is up to date[/green]")


@app.command()
def serve() -> None:
    """Run the API and a worker in one process (the embedded default)."""
    from imagegate.api.app import create_app

    settings = load_settings()
    configure(settings.log_level)
    settings.ensure_data_dir()
    upgrade(settings.resolved_database_url)
    rt = Runtime.build(settings)
    new_key = asyncio.run(_bootstrap(rt))
    if new_key is not None:
        console.print(
            f"[bold]Admin API key[/bold] for workspace 'default' (shown once, also in "
            f"{settings.admin_key_path}):\n  {new_key}"
        )
    console.print(f"imagegate listening on {settings.resolved_public_url}  (docs: /docs)")
    uvicorn.run(
        create_app(rt),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )


async def _bootstrap(rt: Runtime) -> str | None:
    try:
        key = await keys_service.bootstrap_admin_key(rt)
    finally:
        await rt.close()
    return key.secret if key else None


@keys_app.command("create")
def keys_create(
    workspace: str = typer.Option(..., "--workspace", "-w", help="Workspace name (created if new)"),
    name: str = typer.Option("key", "--name", "-n", help="A label for the key"),
    admin: bool = typer.Option(False, "--admin", help="Allow requeueing dead-lettered jobs"),
) -> None:
    """Create an API key and print it (the only time it is shown)."""
    settings = load_settings()
    settings.ensure_data_dir()
    upgrade(settings.resolved_database_url)
    rt = Runtime.build(settings)

    async def _create() -> keys_service.NewKey:
        try:
            return await keys_service.create_key(
                rt, workspace, name, role="admin" if admin else "member"
            )
        finally:
            await rt.close()

    key = asyncio.run(_create())
    console.print(f"key {key.key_id} ({key.role}) for workspace '{key.workspace}':")
    typer.echo(key.secret)
