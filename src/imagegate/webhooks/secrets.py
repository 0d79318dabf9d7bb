"""The signing keys of a receiver: an endpoint's own (with the previous one during a
rotation's grace period), or the workspace's default secret for jobs' own URLs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError

from imagegate.db import webhooks_repo as repo
from imagegate.domain.webhooks import EndpointRecord
from imagegate.runtime import Runtime
from imagegate.webhooks.signing import SecretBox, new_secret, secret_box


def box(rt: Runtime) -> SecretBox:
    return secret_box(rt.settings.resolved_secret_key)


@dataclass(frozen=True)
class Secrets:
    """An endpoint's keys, opened: the current one, then the previous one while its
    grace period lasts."""

    current: str
    previous: str | None
    previous_expires_at: datetime | None

    def signing_keys(self, now: datetime) -> list[str]:
        keys = [self.current]
        if self.previous and self.previous_expires_at and now < self.previous_expires_at:
            keys.append(self.previous)
        return keys


def open_secrets(rt: Runtime, endpoint: EndpointRecord) -> Secrets:
    sealer = box(rt)
    previous = endpoint.sealed_previous_secret
    return Secrets(
        sealer.open(endpoint.sealed_secret, endpoint.id),
        sealer.open(previous, endpoint.id) if previous else None,
        endpoint.previous_secret_expires_at,
    )


async def default_secret(rt: Runtime, workspace_id: str) -> str:
    """The workspace's default secret, made on first use (by whichever process asks
    first: the others read the one it stored)."""
    async with rt.db.connect() as conn:
        sealed = await repo.get_default_secret(conn, workspace_id)
    if sealed is None:
        try:
            async with rt.db.begin() as conn:
                sealed = box(rt).seal(new_secret(), workspace_id)
                await repo.insert_default_secret(conn, workspace_id, sealed, rt.clock.now())
        except IntegrityError:
            async with rt.db.connect() as conn:
                sealed = await repo.get_default_secret(conn, workspace_id)
    assert sealed is not None
    return box(rt).open(sealed, workspace_id)
