"""A provider that misbehaves, for the bounded-read tests: a real HTTP server on
127.0.0.1, in a thread, speaking just enough of the OpenAI Images and Replicate APIs
to hand an adapter a result URL, and serving result URLs that are too big, endless,
slow, of the wrong type, or redirected where they must not go.

Big bodies are generated lazily, chunk by chunk, so the server itself holds one
chunk whatever it claims to send; it stops when the client hangs up."""

from __future__ import annotations

import io
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from PIL import Image

MB = 1024 * 1024
CHUNK = b"\0" * (64 * 1024)


def png_bytes(width: int = 64, height: int = 64) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 80, 40)).save(out, format="PNG")
    return out.getvalue()


class MisbehavingProvider:
    """``result_path`` is what the next generation's result URL points at (one of
    the paths below); ``replicate_answer`` is the Replicate create answer
    (``big-json``: 5 MB, ``endless-json``: for ever). ``open_connections`` counts the
    clients' connections still open (keep-alive ones included)."""

    def __init__(self) -> None:
        self.result_path = "/png"
        self.replicate_answer = "big-json"
        self.hits: Counter[str] = Counter()
        self.bytes_sent: Counter[str] = Counter()
        self.open_connections = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> MisbehavingProvider:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with owner._lock:
                    owner.open_connections += 1

            def finish(self) -> None:
                with owner._lock:
                    owner.open_connections -= 1
                try:
                    super().finish()
                except OSError:
                    pass

            def do_GET(self) -> None:
                owner._count(self.path)
                try:
                    owner._serve_get(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: exactly what should happen

            def do_POST(self) -> None:
                owner._count(self.path)
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                try:
                    owner._serve_post(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _count(self, path: str, sent: int = 0) -> None:
        with self._lock:
            if sent:
                self.bytes_sent[path] += sent
            else:
                self.hits[path.split("?")[0]] += 1

    # -- answers ---------------------------------------------------------------------

    def _serve_post(self, h: BaseHTTPRequestHandler) -> None:
        if h.path.endswith("/images/generations"):
            body = json.dumps({"created": 1, "data": [{"url": self.url + self.result_path}]})
            _send(h, 200, "application/json", body.encode())
        elif "/predictions" in h.path and self.replicate_answer == "big-json":
            # 5 MB of valid JSON, chunked (no Content-Length to refuse it by).
            _chunked(h, "application/json", self, h.path, total=5 * MB, head=b'{"id": "')
        elif "/predictions" in h.path:
            _chunked(h, "application/json", self, h.path, total=None, head=b'{"id": "')
        else:
            _send(h, 404, "text/plain", b"no such path")

    def _serve_get(self, h: BaseHTTPRequestHandler) -> None:
        path = h.path.split("?")[0]
        if path == "/png":
            _send(h, 200, "image/png", png_bytes())
        elif path == "/big":  # 200 MB, chunked: only streaming can refuse it in time
            _chunked(h, "image/png", self, path, total=200 * MB)
        elif path == "/big-declared":  # 200 MB, said up front
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Content-Length", str(200 * MB))
            h.end_headers()
            _stream(h, self, path, 200 * MB)
        elif path == "/endless":
            _chunked(h, "image/png", self, path, total=None)
        elif path == "/trickle":  # a byte every 0.2 s, for ever: no read ever times out
            h.send_response(200)
            h.send_header("Content-Type", "image/png")
            h.send_header("Transfer-Encoding", "chunked")
            h.end_headers()
            while True:
                h.wfile.write(b"1\r\n\0\r\n")
                h.wfile.flush()
                time.sleep(0.2)
        elif path == "/html":
            _send(h, 200, "text/html; charset=utf-8", b"<html><body>Sign in</body></html>")
        elif path == "/to-metadata":
            _redirect(h, "http://169.254.169.254/latest/meta-data/iam/security-credentials/")
        elif path.startswith("/to-port/"):
            _redirect(h, f"http://127.0.0.1:{path.removeprefix('/to-port/')}/png")
        elif path == "/hop":  # one redirect on the same host: fine
            _redirect(h, "/png")
        elif path == "/loop":
            _redirect(h, "/loop")
        else:
            _send(h, 404, "text/plain", b"no such path")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up mid-body is the point of these tests, not an error."""


def _send(h: BaseHTTPRequestHandler, status: int, kind: str, body: bytes) -> None:
    h.send_response(status)
    h.send_header("Content-Type", kind)
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)


def _redirect(h: BaseHTTPRequestHandler, location: str) -> None:
    h.send_response(302)
    h.send_header("Location", location)
    h.send_header("Content-Length", "0")
    h.end_headers()


def _stream(h: BaseHTTPRequestHandler, owner: MisbehavingProvider, path: str, total: int) -> None:
    sent = 0
    while sent < total:
        h.wfile.write(CHUNK)
        sent += len(CHUNK)
        owner._count(path, len(CHUNK))


def _chunked(
    h: BaseHTTPRequestHandler,
    kind: str,
    owner: MisbehavingProvider,
    path: str,
    total: int | None,
    head: bytes = b"",
) -> None:
    """A chunked body of ``total`` bytes (``None``: for ever), made as it is sent."""
    h.send_response(200)
    h.send_header("Content-Type", kind)
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    sent = 0
    filler = CHUNK.replace(b"\0", b"a") if head else CHUNK
    pieces = [head] if head else []
    while total is None or sent < total:
        piece = pieces.pop() if pieces else filler
        h.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        sent += len(piece)
        owner._count(path, len(piece))
    if head:
        tail = b'", "status": "starting"}'
        h.wfile.write(b"%x\r\n%s\r\n" % (len(tail), tail))
    h.wfile.write(b"0\r\n\r\n")
