"""A webhook receiver for tests: a real HTTP server on 127.0.0.1, in a thread, that
records what it is sent and answers as the test scripts it."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def json(self) -> Any:
        return json.loads(self.body)

    def verify(self, secret: str) -> Any:
        """The body, if its signature verifies with ``secret`` (as a receiver would)."""
        return Webhook(secret).verify(self.body, self.headers)


# (status, headers, body) for a request; the default answers 204.
Answer = Callable[[Received], tuple[int, dict[str, str], bytes]]


def answer_in_turn(*statuses: int, then: int = 200) -> Answer:
    """Answer the given statuses in order, then ``then`` for ever."""
    remaining = list(statuses)
    lock = threading.Lock()

    def answer(_: Received) -> tuple[int, dict[str, str], bytes]:
        with lock:
            status = remaining.pop(0) if remaining else then
        return status, {}, f"answer {status}".encode()

    return answer


class Receiver:
    def __init__(self, port: int = 0, answer: Answer | None = None) -> None:
        self._port = port
        self.answer: Answer = answer or (lambda _: (204, {}, b""))
        self._received: list[Received] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                got = Received(
                    self.path,
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                    time.time(),
                )
                with receiver._lock:
                    receiver._received.append(got)
                status, headers, body = receiver.answer(got)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
