"""API keys: minted here, stored only as SHA-256 hashes, looked up by hash."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError

from imagegate.db import accounts_repo
from imagegate.domain.records import KeyInfo, Principal
from imagegate.errors import InvalidRequest, NotFound, Unauthenticated
from imagegate.runtime import Runtime

KEY_PREFIX = "ig_"
DEFAULT_WORKSPACE = "default"
ROLES = ("member", "admin")
# The bootstrap admin key's fixed id: however many processes start at once on an
# empty database, the primary key lets one of them insert it.
BOOTSTRAP_KEY_ID = "key_bootstrap_admin"


@dataclass(frozen=True)
class NewKey:
    key_id: str
    workspace_id: str
    workspace: str
    role: str
    secret: str


def hash_key(secret: str) -> str:
    # Keys carry 256 random bits, so a plain SHA-256 is enough: there is nothing to
    # brute-force that a slow hash would protect.
    return hashlib.sha256(secret.encode()).hexdigest()


def _valid_name(value: str, what: str) -> str:
    value = value.strip()
    if not value or len(value) > 64 or not all(c.isalnum() or c in "-_." for c in value):
        raise InvalidRequest(f"{what} must be 1-64 letters, digits, '-', '_' or '.'")
    return value


async def create_key(
    rt: Runtime, workspace: str, name: str, role: str = "member", key_id: str | None = None
) -> NewKey:
    """Mint a key for ``workspace`` (created if new). The secret is shown only here."""
    workspace = _valid_name(workspace, "workspace")
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    now = rt.clock.now()
    async with rt.sessions.begin() as session:
        workspace_id = await accounts_repo.get_or_create_workspace(session, workspace, now)
        key_id = await accounts_repo.add_key(
            session,
            workspace_id=workspace_id,
            name=name.strip()[:100] or "key",
            prefix=secret[:10],
            key_hash=hash_key(secret),
            role=role,
            now=now,
            key_id=key_id,
        )
    return NewKey(key_id, workspace_id, workspace, role, secret)


async def bootstrap_admin_key(rt: Runtime) -> NewKey | None:
    """On first start, create workspace ``default`` and an admin key, and keep the key
    in ``<data dir>/admin.key`` (mode 600). ``None`` if keys already exist."""
    async with rt.sessions() as session:
        if await accounts_repo.has_any_key(session):
            return None
    try:
        key = await create_key(
            rt, DEFAULT_WORKSPACE, "bootstrap admin", role="admin", key_id=BOOTSTRAP_KEY_ID
        )
    except IntegrityError:
        return None  # another process starting at the same moment made it
    path = rt.settings.admin_key_path
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key.secret + "\n")
    os.chmod(path, 0o600)
    return key


async def list_keys(rt: Runtime, workspace: str | None = None) -> list[KeyInfo]:
    async with rt.sessions() as session:
        return await accounts_repo.list_keys(session, workspace)


async def revoke_key(rt: Runtime, key_id: str) -> None:
    """Revoke a key. Running servers stop accepting it within the auth cache TTL."""
    async with rt.sessions.begin() as session:
        if not await accounts_repo.revoke_key(session, key_id, rt.clock.now()):
            raise NotFound(f"no active key with id {key_id!r}")


class Authenticator:
    """Resolves bearer tokens to principals, with a short cache so the hot path
    (every request) does not hit the database. A revoked key keeps working for at
    most ``IMAGEGATE_KEY_CACHE_TTL_S``."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self._ttl_s = rt.settings.key_cache_ttl_s
        self._cache: dict[str, tuple[Principal, float]] = {}

    async def __call__(self, token: str | None) -> Principal:
        if not token:
            raise Unauthenticated()
        digest = hash_key(token)
        cached = self._cache.get(digest)
        if cached and cached[1] > time.monotonic():
            return cached[0]
        async with self._rt.sessions() as session:
            principal = await accounts_repo.principal_for_hash(session, digest)
        if principal is None:
            raise Unauthenticated("The API key is not valid.")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (principal, time.monotonic() + self._ttl_s)
        return principal
