"""A provider table whose ``options`` are wrong stops the server at start-up: exit
status 2 and one message naming the provider and each bad option, not a traceback,
and not a server that quietly reads ``"false"`` as true."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.server import ServerProcess

CONFIG = """
[providers.quick]
type = "fal"
base_url = "http://127.0.0.1:9"

[providers.quick.options]
safety_checker = "false"      # a string: bool("false") is True
max_connections = "8"         # a string where a number belongs
safty_checker = false         # misspelt
"""


@pytest.mark.parametrize("command", ["serve", "worker"])
def test_bad_adapter_options_stop_start_up_naming_provider_and_field(
    tmp_path: Path, command: str
) -> None:
    config = tmp_path / "imagegate.toml"
    config.write_text(CONFIG)
    proc = ServerProcess(tmp_path / "data", command=command, IMAGEGATE_CONFIG=str(config))
    proc.spawn()
    try:
        status = proc.exit_code(timeout=60)
    finally:
        proc.kill()  # a server that started anyway must not outlive the test
    log = proc.log()
    assert status == 2, log
    assert "Traceback" not in log, log
    assert "providers.quick.options.safety_checker: Input should be a valid boolean" in log, log
    assert "got 'false'" in log
    assert "providers.quick.options.max_connections: Input should be a valid integer" in log
    assert "providers.quick.options.safty_checker: unknown option" in log
    assert "listening" not in log and "taking jobs" not in log
