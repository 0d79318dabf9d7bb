"""Dependencies as ``Annotated`` aliases: ``RuntimeDep``, ``PrincipalDep``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from imagegate.api.rate_limit_headers import remember
from imagegate.domain.records import Principal
from imagegate.errors import Unauthenticated
from imagegate.runtime import Runtime
from imagegate.services import rate_limits
from imagegate.services.keys import Authenticator

_bearer = HTTPBearer(auto_error=False, description="An imagegate API key")


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    authenticate: Authenticator = request.app.state.authenticator
    principal = await authenticate(credentials.credentials if credentials else None)
    # Every authenticated request counts against its key's rate, whichever the route.
    remember(request, await rate_limits.check_request(get_runtime(request), principal))
    return principal


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
