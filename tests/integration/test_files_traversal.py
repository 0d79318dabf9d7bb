"""Path traversal against ``/files``, sent as raw request lines over a socket: an HTTP
client would normalise ``..`` (and some encodings of it) before sending, and the
server would never see the attack. Each attempt also carries a signature that is
valid for the key the server decodes, so it is the path resolution that must refuse
it, not only the signature check."""

from __future__ import annotations

import socket
from urllib.parse import unquote

import pytest

from imagegate.storage.signing import UrlSigner
from tests.support.server import ServerProcess

# What a successful attack would read: the server's own admin key (outside the files
# root, inside the data dir) and the system's password file.
ATTEMPTS = [
    "../admin.key",
    "../../../../../../etc/passwd",
    "ws/../../admin.key",
    "%2e%2e/admin.key",
    "%2e%2e%2fadmin.key",
    "..%2fadmin.key",
    "%2E%2E%2F%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "..\\admin.key",
    "..%5cadmin.key",
    "ws%5c..%5c..%5cadmin.key",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "%2Fetc/passwd",
    "ws/%00/1.png",
    "..%00/admin.key",
    "%00",
    "./../admin.key",
    ".",
    "",
]
MAX_ANSWER = 64 * 1024


def _raw_get(server: ServerProcess, target: str) -> tuple[int, bytes]:
    """Send ``GET <target>`` exactly as written; the status and the body read back."""
    request = f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request.encode("latin-1"))
        answer = b""
        while len(answer) < MAX_ANSWER and (chunk := sock.recv(4096)):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def _signed_target(server: ServerProcess, raw_key: str) -> str:
    # The server verifies the key as it decodes it from the path.
    signer = UrlSigner(server.settings().resolved_secret_key, 3600)
    expires, signature = signer.sign(unquote(raw_key))
    return f"/files/{raw_key}?exp={expires}&sig={signature}"


@pytest.mark.parametrize("raw_key", ATTEMPTS)
def test_traversal_is_refused_however_it_is_spelled(server: ServerProcess, raw_key: str) -> None:
    secret = server.admin_key.encode()
    for target in (_signed_target(server, raw_key), f"/files/{raw_key}?exp=9999999999&sig=x"):
        status, body = _raw_get(server, target)
        assert status in {400, 403, 404}, (target, status, body[:200])
        assert secret not in body
        assert b"root:" not in body


def test_a_signed_link_to_a_real_file_still_works(server: ServerProcess) -> None:
    # The control: the raw path the tests above bend does reach files when it is sound.
    key = "ws_traversal/job_1/1.png"
    path = server.settings().files_dir / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x89PNG\r\n\x1a\n-not-really")
    status, body = _raw_get(server, _signed_target(server, key))
    assert (status, body) == (200, b"\x89PNG\r\n\x1a\n-not-really")
