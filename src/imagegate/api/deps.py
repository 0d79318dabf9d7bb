"""Dependencies as ``Annotated`` aliases: ``RuntimeDep``, ``PrincipalDep``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from imagegate.api.rate_limit_headers import remember
from imagegate.domain.records import Principal
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


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
