"""imagegate: run the server, manage keys, and talk to a server over HTTP."""

from __future__ import annotations

import typer

from imagegate.cli import (
    action_commands,
    client_commands,
    provider_commands,
    sandbox_command,
    server_commands,
)

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
server_commands.register(app)
client_commands.register(app)
action_commands.register(app)
provider_commands.register(app)
sandbox_command.register(app)
