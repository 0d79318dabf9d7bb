"""Dependencies as ``Annotated`` aliases: ``RuntimeDep``, ``PrincipalDep``."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from imagegate.domain.records import Principal
from imagegate.runtime import Runtime
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
    return await authenticate(credentials.credentials if credentials else None)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
