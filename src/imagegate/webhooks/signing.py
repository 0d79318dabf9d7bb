"""Standard Webhooks signing, and the sealing of secrets at rest.

Webhook secrets are HMAC keys, not passwords: the server must read them to sign, so
they are stored, not hashed. They are sealed with AES-256-GCM under a key derived
(HKDF) from the server secret (``IMAGEGATE_SECRET_KEY``, or ``secret.key`` in the
data dir), with the row's owner as associated data: a database dump or backup alone
reveals none, and a sealed value copied to another row does not open. Any API key of
the workspace can read them back through the API."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from standardwebhooks import Webhook

PREFIX = "whsec_"
SECRET_BYTES = 32
_SEALED = "v1:"


class SecretUnreadable(Exception):
    """A sealed secret did not open: the server secret changed since it was sealed."""


def new_secret() -> str:
    """A fresh ``whsec_…`` secret: 32 random bytes, base64."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def signature_header(keys: Iterable[str], msg_id: str, timestamp: datetime, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,<base64>`` per key, space-separated
    (during a rotation the old and the new secret both sign)."""
    payload = body.decode()
    return " ".join(Webhook(key).sign(msg_id, timestamp, payload) for key in keys)


class SecretBox:
    """Seals and opens webhook secrets with a key derived from the server secret."""

    def __init__(self, server_secret: bytes) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"imagegate webhook secrets v1"
        ).derive(server_secret)
        self._aead = AESGCM(key)

    def seal(self, secret: str, owner: str) -> str:
        nonce = os.urandom(12)
        sealed = self._aead.encrypt(nonce, secret.encode(), owner.encode())
        return _SEALED + base64.b64encode(nonce + sealed).decode()

    def open(self, sealed: str, owner: str) -> str:
        if not sealed.startswith(_SEALED):
            raise SecretUnreadable("not a sealed secret")
        raw = base64.b64decode(sealed.removeprefix(_SEALED))
        try:
            return self._aead.decrypt(raw[:12], raw[12:], owner.encode()).decode()
        except InvalidTag:
            raise SecretUnreadable(
                "the webhook secret cannot be read: IMAGEGATE_SECRET_KEY changed since it "
                "was made; rotate the endpoint's secret"
            ) from None


@lru_cache(maxsize=4)
def secret_box(server_secret: bytes) -> SecretBox:
    return SecretBox(server_secret)
