"""``imagegate sandbox <provider>``: run a provider's emulator on loopback."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console(stderr=True)


def sandbox(
    provider: str = typer.Argument(
        ..., help="openai, stability, replicate, fal, bfl, comfyui, a1111"
    ),
    port: int = typer.Option(9100, "--port", "-p", help="Port to listen on"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on"),
) -> None:
    """Run an emulator of a provider's HTTP API: real images, injectable faults,
    submission counts at /_sandbox/stats. For tests and for trying integrations."""
    import uvicorn

    from imagegate.sandbox.registry import EMULATORS, create_app

    if provider not in EMULATORS:
        console.print(f"error: no emulator for {provider!r}; choose from {', '.join(EMULATORS)}")
        raise typer.Exit(2)
    console.print(f"{provider} sandbox listening on http://{host}:{port}  (stats: /_sandbox/stats)")
    # A request told to hang (``sandbox:timeout``) must not hold up shutdown.
    uvicorn.run(
        create_app(provider),
        host=host,
        port=port,
        log_level="warning",
        timeout_graceful_shutdown=1,
    )


def register(app: typer.Typer) -> None:
    app.command()(sandbox)
