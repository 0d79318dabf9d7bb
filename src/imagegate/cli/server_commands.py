"""Commands that run on the server's side: serve, api, worker, migrate, keys.

The heavy imports (the web server, the database, the engine) happen inside the
commands, so the client commands, which need none of them, start quickly."""

from __future__ import annotations

import asyncio
import faulthandler
import signal
from datetime import datetime
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from imagegate.settings import Settings, load_settings

if TYPE_CHECKING:
    from imagegate.domain.records import KeyInfo
    from imagegate.runtime import Runtime
    from imagegate.services.keys import NewKey
    from imagegate.services.metrics_listener import MetricsListener
    from imagegate.services.workers import Membership

console = Console(stderr=True)


def _prepared_settings(settings: Settings | None = None) -> Settings:
    """``settings`` (else the environment's), with the data dir made and migrated."""
    from imagegate.db.migrate import upgrade

    settings = settings or load_settings()
    settings.ensure_data_dir()
    upgrade(settings.resolved_database_url)
    return settings


def migrate() -> None:
    """Apply database migrations."""
    _prepared_settings()
    console.print("[green]database is up to date[/green]")


def _stacks_on_sigusr2() -> None:
    """``kill -USR2 <pid>`` writes every thread's stack to stderr (the log), for a
    process that will not stop or seems stuck; the process goes on."""
    faulthandler.register(signal.SIGUSR2, all_threads=True)


def serve() -> None:
    """Run the API and a worker in one process (the embedded default)."""
    _stacks_on_sigusr2()
    _run_http(runs_jobs=True)


def api() -> None:
    """Run the HTTP API only: it enqueues jobs for `imagegate worker` processes."""
    _stacks_on_sigusr2()
    _run_http(runs_jobs=False)


def worker() -> None:
    """Run a worker: it executes jobs and serves no HTTP. Stops on SIGTERM after
    finishing (or handing back) its running jobs."""
    _stacks_on_sigusr2()
    from imagegate.observability import otel
    from imagegate.observability.logging import configure

    settings = load_settings()
    configure(settings.log_level)
    otel.configure(settings.otlp_endpoint, "imagegate-worker")
    rt = _runtime(_prepared_settings(settings))
    try:
        raise typer.Exit(asyncio.run(_work(rt)))
    finally:
        _observability_done()


def _observability_done() -> None:
    """At exit: flush the spans still buffered, and leave the host's metric sums."""
    from imagegate.observability import otel
    from imagegate.services.scrape import mark_process_dead

    otel.shutdown()
    mark_process_dead()


def _runtime(settings: Settings) -> Runtime:
    """The process's runtime; a broken provider configuration ends it with a clear
    message instead of a traceback."""
    from imagegate.providers.config import ConfigError
    from imagegate.runtime import Runtime

    try:
        return Runtime.build(settings)
    except ConfigError as error:
        # As written: a message naming ``[providers.x]`` is not markup, and one line
        # per problem greps better than one wrapped at the terminal's width.
        console.print(f"error: {error.detail}", markup=False, highlight=False, soft_wrap=True)
        raise typer.Exit(2) from error


async def _work(rt: Runtime) -> int:
    import signal

    from imagegate.api.app import job_presenter, own_url_body
    from imagegate.services import process_lifecycle

    membership = await _join(rt, "worker")
    if membership is None:
        await rt.close()
        return 1
    running = await process_lifecycle.start(
        rt, membership, present_job=job_presenter(rt), own_url_body=own_url_body(rt)
    )
    listener = await _metrics_listener(rt)
    console.print(f"imagegate worker {membership.worker_id} is taking jobs")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    console.print(f"worker {membership.worker_id} stopping: draining running jobs")
    try:
        if listener is not None:
            await listener.stop()
        await process_lifecycle.stop(running)
    finally:
        await rt.close()
    return 0


async def _metrics_listener(rt: Runtime) -> MetricsListener | None:
    """The worker's /metrics port, when IMAGEGATE_METRICS_PORT is set."""
    from imagegate.services.metrics_listener import MetricsListener
    from imagegate.services.scrape import Exposition

    settings = rt.settings
    if settings.metrics_port is None or not settings.metrics_enabled:
        return None
    listener = MetricsListener(rt, Exposition(rt))
    port = await listener.start(settings.metrics_host or settings.host, settings.metrics_port)
    console.print(f"metrics on http://{settings.metrics_host or settings.host}:{port}/metrics")
    return listener


async def _join(rt: Runtime, role: str) -> Membership | None:
    """Claim a worker id for this process, or say why not (``None``)."""
    from imagegate.services.workers import WorkerIdInUse, join

    try:
        return await join(rt, role)
    except WorkerIdInUse as error:
        console.print(f"error: {error}")
        return None


def _run_http(*, runs_jobs: bool) -> None:
    import uvicorn

    from imagegate.api.app import create_app
    from imagegate.cli.exclusive import AlreadyInUse, bind, lock_data_dir
    from imagegate.observability import otel
    from imagegate.observability.logging import configure

    settings = load_settings()
    configure(settings.log_level)
    otel.configure(settings.otlp_endpoint, "imagegate-serve" if runs_jobs else "imagegate-api")
    settings.ensure_data_dir()
    try:
        # The one-process default owns its data dir; `api` processes may share one.
        lock = lock_data_dir(settings.data_dir) if runs_jobs else None
        sock = bind(settings.host, settings.port)
    except AlreadyInUse as error:
        console.print(f"error: {error}")
        raise typer.Exit(1) from error
    _prepared_settings(settings)
    rt = _runtime(settings)
    new_key, membership = asyncio.run(_before_start(rt, "serve" if runs_jobs else None))
    if runs_jobs and membership is None:
        raise typer.Exit(1)
    if new_key is not None:
        console.print(
            f"[bold]Admin API key[/bold] for workspace 'default' (shown once, also in "
            f"{settings.admin_key_path}):\n  {new_key}"
        )
    console.print(f"imagegate listening on {settings.resolved_public_url}  (docs: /docs)")
    config = uvicorn.Config(
        create_app(rt, membership),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        _observability_done()
        if lock is not None:
            lock.close()


async def _before_start(rt: Runtime, role: str | None) -> tuple[str | None, Membership | None]:
    """The first start's admin key (if this is it), and a worker id if ``role``."""
    from imagegate.services.keys import bootstrap_admin_key

    try:
        key = await bootstrap_admin_key(rt)
        membership = await _join(rt, role) if role else None
    finally:
        # The server's event loop is another one: it must open its own connections
        # (the providers' pools stay open for it; the server closes them at the end).
        await rt.release()
    return (key.secret if key else None), membership


def keys_create(
    workspace: str = typer.Option(..., "--workspace", "-w", help="Workspace name (created if new)"),
    name: str = typer.Option("key", "--name", "-n", help="A label for the key"),
    role: str = typer.Option(
        "member", "--role", help="viewer (reads only), member, or admin (manages the workspace)"
    ),
    admin: bool = typer.Option(False, "--admin", help="Same as --role admin"),
    operator: bool = typer.Option(
        False, "--operator", help="A key that manages every workspace (/api/image/workspaces)"
    ),
    expires_in_days: int | None = typer.Option(
        None, "--expires-in-days", min=1, max=3650, help="The key stops working after this"
    ),
) -> None:
    """Create an API key and print it (the only time it is shown)."""
    from datetime import UTC, datetime, timedelta

    from imagegate.errors import ImagegateError
    from imagegate.runtime import Runtime
    from imagegate.services.keys import create_key

    chosen = "operator" if operator else "admin" if admin else role
    expires = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
    rt = Runtime.build(_prepared_settings(), with_providers=False)

    async def _create() -> NewKey:
        try:
            return await create_key(rt, workspace, name, role=chosen, expires_at=expires)
        finally:
            await rt.close()

    try:
        key = asyncio.run(_create())
    except ImagegateError as error:
        console.print(f"error: {error.code}: {error.detail}")
        raise typer.Exit(1) from error
    console.print(f"key {key.key_id} ({key.role}) for workspace '{key.workspace}':")
    typer.echo(key.secret)


def keys_list(
    workspace: str | None = typer.Option(None, "--workspace", "-w", help="Only this workspace"),
) -> None:
    """List API keys (ids, prefixes and roles; never the secrets)."""
    from rich.table import Table

    from imagegate.runtime import Runtime
    from imagegate.services.keys import list_keys

    rt = Runtime.build(_prepared_settings(), with_providers=False)

    async def _list() -> list[KeyInfo]:
        try:
            return await list_keys(rt, workspace)
        finally:
            await rt.close()

    def when(at: datetime | None) -> str:
        return f"{at:%Y-%m-%d %H:%M}" if at else ""

    table = Table("id", "workspace", "name", "prefix", "role", "created", "last used",
                  "expires", "revoked")  # fmt: skip
    for key in asyncio.run(_list()):
        table.add_row(key.key_id, key.workspace, key.name, key.prefix + "…", key.role,
                      when(key.created_at), when(key.last_used_at), when(key.expires_at),
                      when(key.revoked_at))  # fmt: skip
    Console().print(table)


def keys_revoke(key_id: str = typer.Argument(..., help="The key's id (key_…)")) -> None:
    """Revoke an API key; servers refuse it within IMAGEGATE_KEY_CACHE_TTL_S."""
    from imagegate.errors import ImagegateError
    from imagegate.runtime import Runtime
    from imagegate.services.keys import revoke_key

    rt = Runtime.build(_prepared_settings(), with_providers=False)

    async def _revoke() -> None:
        try:
            await revoke_key(rt, key_id)
        finally:
            await rt.close()

    try:
        asyncio.run(_revoke())
    except ImagegateError as error:
        console.print(f"error: {error.code}: {error.detail}")
        raise typer.Exit(1) from error
    console.print(f"revoked {key_id}")


def register(app: typer.Typer) -> None:
    """Attach the server-side commands to ``app``."""
    app.command()(serve)
    app.command()(api)
    app.command()(worker)
    app.command()(migrate)
    keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys (works on the database).")
    keys_app.command("create")(keys_create)
    keys_app.command("list")(keys_list)
    keys_app.command("revoke")(keys_revoke)
    app.add_typer(keys_app, name="keys")
