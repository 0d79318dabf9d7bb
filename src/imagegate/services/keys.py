"""API keys: minted here, stored only as SHA-256 hashes, looked up by hash.

Roles: ``viewer`` reads only; ``member`` creates and follows jobs; ``admin`` also
manages the workspace (its keys, the audit and moderation logs, requeueing); the
``operator`` (made with ``imagegate keys create --operator``) manages every workspace.
A key may expire; a rotation gives it a new secret and keeps the old one valid for a
grace period, so clients can switch without an outage (docs/keys.md)."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from imagegate.db import accounts_repo
from imagegate.domain.ids import well_formed
from imagegate.domain.records import KeyInfo, Principal
from imagegate.errors import Forbidden, InvalidRequest, NotFound, Unauthenticated
from imagegate.runtime import Runtime
from imagegate.services import audit
from imagegate.services.audit import COMMAND_LINE, Actor
from imagegate.services.pagination import decode_cursor, encode_cursor

KEY_PREFIX = "ig_"
DEFAULT_WORKSPACE = "default"
ROLES = ("viewer", "member", "admin", "operator")
# What an admin may hand out over HTTP (the operator role only from the command line).
GRANTABLE = ("viewer", "member", "admin")
MAX_GRACE = timedelta(days=7)
DEFAULT_GRACE = timedelta(hours=24)
MAX_LIFETIME = timedelta(days=3650)
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
    rt: Runtime,
    workspace: str,
    name: str,
    role: str = "member",
    key_id: str | None = None,
    *,
    expires_at: datetime | None = None,
    actor: Actor = COMMAND_LINE,
) -> NewKey:
    """Mint a key for ``workspace`` (created if new). The secret is shown only here."""
    workspace = _valid_name(workspace, "workspace")
    if role not in ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(ROLES)}", field="role")
    now = rt.clock.now()
    _check_expiry(expires_at, now)
    secret = _secret()
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
            expires_at=expires_at,
            created_by=actor.key_id,
        )
        await audit.record(
            session, rt, workspace_id, actor, "key.created", key_id, role=role,
            name=name.strip()[:100], expires_at=expires_at.isoformat() if expires_at else None,
        )  # fmt: skip
    return NewKey(key_id, workspace_id, workspace, role, secret)


def _secret() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _check_expiry(expires_at: datetime | None, now: datetime) -> None:
    if expires_at is None:
        return
    if expires_at.tzinfo is None:
        raise InvalidRequest("expires_at needs a time zone (e.g. Z)", field="expires_at")
    if not now < expires_at <= now + MAX_LIFETIME:
        raise InvalidRequest(
            "expires_at must be in the future, at most 10 years ahead", field="expires_at"
        )


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


async def revoke_key(rt: Runtime, key_id: str, actor: Actor = COMMAND_LINE) -> None:
    """Revoke a key (any workspace's: the command line). Running servers stop
    accepting it within the auth cache TTL."""
    async with rt.sessions.begin() as session:
        workspace_id = await accounts_repo.key_workspace(session, key_id)
        if workspace_id is None or not await accounts_repo.revoke_key(
            session, key_id, rt.clock.now()
        ):
            raise NotFound(f"no active key with id {key_id!r}")
        await audit.record(session, rt, workspace_id, actor, "key.revoked", key_id)


async def key_info(rt: Runtime, key_id: str) -> KeyInfo:
    """A key as listed, by id (one just made: services call this, never clients)."""
    async with rt.sessions() as session:
        found = await accounts_repo.get_key(session, None, key_id)
    if found is None:
        raise NotFound(f"no key with id {key_id!r}")
    return found


def require_writer(principal: Principal) -> None:
    """Refuse a viewer key a change. The HTTP layer refuses a viewer every method but
    GET/HEAD already; the services that create and cancel say so too, for the
    facades (/v1, /mj) whose reads are POSTs and whose writes go through them."""
    if not principal.can_write:
        raise Forbidden("this is a viewer key: it may only read")


# -- over HTTP: an admin's own workspace -------------------------------------------


@dataclass(frozen=True)
class KeysPage:
    keys: list[KeyInfo]
    next_cursor: str | None


def _admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("managing API keys needs an admin key")


async def create_for(
    rt: Runtime,
    principal: Principal,
    actor: Actor,
    *,
    name: str,
    role: str,
    expires_at: datetime | None,
    workspace: str | None = None,
) -> NewKey:
    """A key in the caller's workspace (the operator may name another, created if
    new); never the operator role."""
    _admin(principal)
    if role not in GRANTABLE:
        raise InvalidRequest(f"role must be one of {', '.join(GRANTABLE)}", field="role")
    if workspace is not None and workspace != principal.workspace_name:
        if not principal.is_operator:
            raise Forbidden("only the operator key makes keys for another workspace")
        target = workspace
    else:
        target = principal.workspace_name
    return await create_key(rt, target, name, role, expires_at=expires_at, actor=actor)


async def list_for(
    rt: Runtime, principal: Principal, *, cursor: str | None, limit: int
) -> KeysPage:
    """The workspace's keys, newest first (never their secrets)."""
    _admin(principal)
    before = decode_cursor(cursor, "key") if cursor else None
    async with rt.sessions() as session:
        found = await accounts_repo.workspace_keys(
            session, principal.workspace_id, before_id=before, limit=limit + 1
        )
    page = found[:limit]
    more = len(found) > limit
    return KeysPage(page, encode_cursor(page[-1].key_id) if more and page else None)


async def get_for(rt: Runtime, principal: Principal, key_id: str) -> KeyInfo:
    _admin(principal)
    found = None
    if well_formed(key_id, "key"):
        async with rt.sessions() as session:
            found = await accounts_repo.get_key(session, principal.workspace_id, key_id)
    if found is None:
        raise NotFound("no API key with this id in your workspace")
    return found


async def revoke_for(rt: Runtime, principal: Principal, actor: Actor, key_id: str) -> None:
    """Revoke one of the workspace's keys (the caller's own included)."""
    await get_for(rt, principal, key_id)
    async with rt.sessions.begin() as session:
        if not await accounts_repo.revoke_key(
            session, key_id, rt.clock.now(), principal.workspace_id
        ):
            raise NotFound("no active API key with this id in your workspace")
        await audit.record(session, rt, principal.workspace_id, actor, "key.revoked", key_id)


async def rotate_for(
    rt: Runtime, principal: Principal, actor: Actor, key_id: str, grace: timedelta | None
) -> tuple[KeyInfo, str]:
    """A new secret for the key; the current one is accepted for ``grace`` more
    (default 24 h, at most 7 days; 0 ends it at once). Returns the key and secret."""
    await get_for(rt, principal, key_id)
    grace = DEFAULT_GRACE if grace is None else grace
    if not timedelta(0) <= grace <= MAX_GRACE:
        raise InvalidRequest("grace_s must be from 0 to 604800 (7 days)", field="grace_s")
    now = rt.clock.now()
    secret = _secret()
    async with rt.sessions.begin() as session:
        rotated = await accounts_repo.rotate_key(
            session, principal.workspace_id, key_id, key_hash=hash_key(secret),
            prefix=secret[:10], grace_until=now + grace, now=now,
        )  # fmt: skip
        if not rotated:
            raise NotFound("no active API key with this id in your workspace")
        await audit.record(
            session, rt, principal.workspace_id, actor, "key.rotated", key_id,
            grace_s=int(grace.total_seconds()),
        )  # fmt: skip
    return await get_for(rt, principal, key_id), secret


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
        # A transaction: a cache miss also marks the key used (so last_used_at is
        # accurate to the cache TTL, with no write per request).
        async with self._rt.sessions.begin() as session:
            principal = await accounts_repo.principal_for_hash(
                session, digest, self._rt.clock.now()
            )
        if principal is None:
            raise Unauthenticated("The API key is not valid (unknown, revoked or expired).")
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (principal, time.monotonic() + self._ttl_s)
        return principal
