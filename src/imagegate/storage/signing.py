"""HMAC-signed, expiring links to stored files (``/files/<key>?exp=…&sig=…``)."""

from __future__ import annotations

import hashlib
import hmac
import time
from urllib.parse import quote


class UrlSigner:
    def __init__(self, secret: bytes, ttl_s: int) -> None:
        self._secret = secret
        self._ttl_s = ttl_s

    def _signature(self, key: str, expires: int) -> str:
        message = f"{key}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()[:32]

    def sign(self, key: str, now: float | None = None) -> tuple[int, str]:
        # Expiry is rounded up to a minute so repeated reads give identical,
        # cacheable URLs.
        current = time.time() if now is None else now
        expires = int(current + self._ttl_s) // 60 * 60 + 60
        return expires, self._signature(key, expires)

    def verify(self, key: str, expires: int, signature: str, now: float | None = None) -> bool:
        current = time.time() if now is None else now
        if expires < current or not signature.isascii():
            # compare_digest raises TypeError on non-ASCII text: a query string's
            # `sig=é` must be a wrong signature, not a server error.
            return False
        return hmac.compare_digest(self._signature(key, expires), signature)

    def path(self, key: str, now: float | None = None) -> str:
        expires, signature = self.sign(key, now)
        return f"/files/{quote(key)}?exp={expires}&sig={signature}"
