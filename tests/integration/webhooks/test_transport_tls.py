"""The guarded transport over real TLS on loopback: it dials the checked address while
SNI, certificate verification and the Host header use the URL's name."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from imagegate.net.ssrf import GuardedTransport, UrlGuard, UrlPolicy

LOOPBACK = UrlPolicy(allowlist=(ipaddress.ip_network("127.0.0.0/8"),))


def certificate(tmp: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``name`` (its own CA): (cert, key) files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}.crt", tmp / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsReceiver:
    def __init__(self, cert: Path, key: Path) -> None:
        self.sni: list[str | None] = []
        self.hosts: list[str] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.sni_callback = lambda sock, name, ctx: self.sni.append(name)  # type: ignore[assignment,func-returns-value]
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.hosts.append(self.headers["host"])
                self.rfile.read(int(self.headers.get("content-length", 0)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[TlsReceiver, Path]]:
    cert, key = certificate(tmp_path, "hooks.test")
    receiver = TlsReceiver(cert, key)
    yield receiver, cert
    receiver.stop()


async def to_loopback(host: str, port: int) -> list[str]:
    return ["127.0.0.1"]


async def test_tls_uses_the_name_while_dialing_the_checked_address(
    tls: tuple[TlsReceiver, Path],
) -> None:
    receiver, cert = tls
    trust = ssl.create_default_context(cafile=str(cert))
    transport = GuardedTransport(UrlGuard(LOOPBACK, to_loopback), ssl_context=trust)
    async with httpx.AsyncClient(transport=transport) as client:
        response = await client.post(f"https://hooks.test:{receiver.port}/in", content=b"{}")
    assert response.status_code == 204
    assert receiver.sni == ["hooks.test"]
    assert receiver.hosts == [f"hooks.test:{receiver.port}"]


async def test_a_certificate_for_another_name_is_refused(
    tls: tuple[TlsReceiver, Path], tmp_path: Path
) -> None:
    """The certificate is checked against the URL's name, not the dialed address."""
    receiver, cert = tls
    trust = ssl.create_default_context(cafile=str(cert))
    transport = GuardedTransport(UrlGuard(LOOPBACK, to_loopback), ssl_context=trust)
    async with httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError, match="certificate"):
            await client.post(f"https://elsewhere.test:{receiver.port}/in", content=b"{}")
