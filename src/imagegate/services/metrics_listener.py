"""/metrics for a process that serves no HTTP (``imagegate worker``), on its own port
(``IMAGEGATE_METRICS_PORT``; off when unset).

A few lines of HTTP/1.1 on asyncio's own server, in the worker's event loop, rather
than a web framework's server: it answers one path, reads at most a small request
head within a deadline, holds a bounded number of connections and closes each after
one answer. The worker's signal handlers stay its own."""

from __future__ import annotations

import asyncio
import contextlib

from imagegate.observability.logging import get_logger
from imagegate.runtime import Runtime
from imagegate.services.scrape import Exposition, authorized

log = get_logger("imagegate.metrics")
MAX_HEAD_BYTES = 8 * 1024
HEAD_TIMEOUT_S = 5.0
MAX_CONNECTIONS = 16


class MetricsListener:
    def __init__(self, rt: Runtime, exposition: Exposition) -> None:
        self._rt, self._exposition = rt, exposition
        self._server: asyncio.Server | None = None
        self._slots = asyncio.Semaphore(MAX_CONNECTIONS)

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port); the port taken."""
        self._server = await asyncio.start_server(self._serve, host, port, limit=MAX_HEAD_BYTES)
        taken = int(self._server.sockets[0].getsockname()[1])
        log.info("metrics.listening", url=f"http://{host}:{taken}/metrics")
        return taken

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self._slots.locked():
                await _answer(writer, 503, b"busy\n")
                return
            async with self._slots:
                await self._one(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass  # the scraper went away or sent junk: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(HEAD_TIMEOUT_S):
            head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEAD_BYTES:
            await _answer(writer, 431, b"request head too large\n")
            return
        lines = head.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        path = rest.partition(" ")[0].partition("?")[0]
        if path != "/metrics":
            await _answer(writer, 404, b"not found: this port serves /metrics only\n")
            return
        if method not in ("GET", "HEAD"):
            await _answer(writer, 405, b"method not allowed\n", {"Allow": "GET, HEAD"})
            return
        headers = dict(_header(line) for line in lines[1:] if ":" in line)
        if not authorized(self._rt.settings, headers.get("authorization")):
            await _answer(writer, 401, b"unauthenticated\n", {"WWW-Authenticate": "Bearer"})
            return
        body, content_type = await self._exposition.render()
        await _answer(writer, 200, body, {"Content-Type": content_type}, head_only=method == "HEAD")


_REASONS = {
    200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed",
    431: "Request Header Fields Too Large", 503: "Service Unavailable",
}  # fmt: skip


def _header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()


async def _answer(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    head_only: bool = False,
) -> None:
    reason = _REASONS[status]
    fields = {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}
    fields["Content-Length"] = str(len(body))
    fields["Connection"] = "close"
    head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    writer.write(head.encode("latin-1") + b"\r\n" + (b"" if head_only else body))
    await writer.drain()
