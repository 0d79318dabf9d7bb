"""Standard Webhooks signatures (checked by the standardwebhooks package, as a
receiver would) and secrets sealed at rest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from imagegate.webhooks.signing import SecretBox, SecretUnreadable, new_secret, signature_header


def headers(signature: str, msg_id: str, when: datetime) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


def test_secrets_are_whsec_and_random() -> None:
    secret = new_secret()
    assert secret.startswith("whsec_") and len(secret) == 6 + 44
    assert secret != new_secret()


def test_a_receiver_verifies_our_signature() -> None:
    secret, now, body = new_secret(), datetime.now(UTC), '{"type":"job.completed","é":1}'.encode()
    signature = signature_header([secret], "msg_1", now, body)
    assert signature.startswith("v1,")
    assert Webhook(secret).verify(body, headers(signature, "msg_1", now))["é"] == 1
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(body, headers(signature, "msg_1", now))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers(signature, "msg_1", now))
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers(signature, "msg_2", now))


def test_during_a_rotation_both_secrets_sign() -> None:
    old, new, now, body = new_secret(), new_secret(), datetime.now(UTC), b"{}"
    signature = signature_header([new, old], "msg_1", now, body)
    assert len(signature.split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(body, headers(signature, "msg_1", now))


def test_sealed_secrets_open_only_with_the_server_key_and_for_their_owner() -> None:
    box, secret = SecretBox(b"server secret"), new_secret()
    sealed = box.seal(secret, "ep_1")
    assert secret not in sealed and sealed.startswith("v1:")
    assert box.open(sealed, "ep_1") == secret
    assert box.seal(secret, "ep_1") != sealed  # a fresh nonce each time
    with pytest.raises(SecretUnreadable):
        box.open(sealed, "ep_2")
    with pytest.raises(SecretUnreadable):
        SecretBox(b"another server").open(sealed, "ep_1")
