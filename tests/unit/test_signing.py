from __future__ import annotations

from imagegate.storage.signing import UrlSigner


def test_signed_links_verify_and_expire() -> None:
    signer = UrlSigner(b"secret", ttl_s=3600)
    expires, sig = signer.sign("ws/job/1.png", now=1_000_000)
    assert expires >= 1_000_000 + 3600
    assert signer.verify("ws/job/1.png", expires, sig, now=1_000_000)
    assert not signer.verify("ws/job/2.png", expires, sig, now=1_000_000)
    assert not signer.verify("ws/job/1.png", expires + 60, sig, now=1_000_000)
    assert not signer.verify("ws/job/1.png", expires, sig, now=expires + 1)
    assert not UrlSigner(b"other", 3600).verify("ws/job/1.png", expires, sig, now=1_000_000)


def test_links_are_stable_within_a_minute() -> None:
    signer = UrlSigner(b"secret", ttl_s=60)
    assert signer.path("k", now=120.0) == signer.path("k", now=121.0)
