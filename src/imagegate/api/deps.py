"""Dependencies as ``Annotated`` aliases: ``RuntimeDep``, ``PrincipalDep``, ``ActorDep``."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from imagegate.api.rate_limit_headers import remember
from imagegate.domain.records import Principal
from imagegate.errors import Forbidden, Unauthenticated
from imagegate.runtime import Runtime
from imagegate.services import rate_limits
from imagegate.services.audit import MAX_USER_AGENT, Actor
from imagegate.services.keys import Authenticator

# What a viewer key may send: it reads, it never changes anything.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

_bearer = HTTPBearer(auto_error=False, description="An imagegate API key")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    authenticate: Authenticator = request.app.state.authenticator
    principal = with_client(
        request, await authenticate(credentials.credentials if credentials else None)
    )
    if not principal.can_write and request.method not in READ_METHODS:
        raise Forbidden("this is a viewer key: it may only read")
    # Every authenticated request counts against its key's rate, whichever the route.
    remember(request, await rate_limits.check_request(get_runtime(request), principal))
    return principal


def with_client(request: Request, principal: Principal) -> Principal:
    """The principal with the request's client address and User-Agent (the
    authenticator's cached principal carries neither)."""
    ip = request.client.host if request.client else None
    agent = (request.headers.get("user-agent") or "")[:MAX_USER_AGENT] or None
    return replace(principal, ip=ip, user_agent=agent)


async def get_actor(principal: Annotated[Principal, Depends(get_principal)]) -> Actor:
    """Who makes a change, for the audit log: the key, the client's address and
    User-Agent."""
    return Actor.of(principal)


async def get_admin_or_anonymous(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> bool:
    """For routes anyone may call that say more to an admin: True for a valid admin
    key; no key, a bad key or another role is simply anonymous (never a 401)."""
    if credentials is None:
        return False
    authenticate: Authenticator = request.app.state.authenticator
    try:
        principal = await authenticate(credentials.credentials)
    except Unauthenticated:
        return False
    return principal.is_admin


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
AdminCallerDep = Annotated[bool, Depends(get_admin_or_anonymous)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
ActorDep = Annotated[Actor, Depends(get_actor)]
