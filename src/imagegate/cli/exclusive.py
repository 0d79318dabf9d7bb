"""What a server claims before it touches the database: its data dir and its port.

A second `serve` on the same data dir would run the engine under the same executor
id and execute jobs twice; one on a taken port would recover jobs for a few seconds
before failing to listen. Both are refused up front."""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path
from typing import IO


class AlreadyInUse(Exception):
    """The data dir or the port is held by another process."""


def lock_data_dir(data_dir: Path) -> IO[str]:
    """Hold an exclusive lock on ``data_dir`` for as long as the returned file is open
    (the kernel drops it when the process dies, SIGKILL included)."""
    handle = (data_dir / "serve.lock").open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as error:
        handle.close()
        raise AlreadyInUse(
            f"another imagegate server is using the data dir {data_dir.resolve()}"
        ) from error
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port``, bound before anything else starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise AlreadyInUse(f"cannot listen on {host}:{port}: {error.strerror}") from error
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
