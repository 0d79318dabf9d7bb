"""Workspaces, for the operator key: list them, and open a new one with its first
admin key (the secret shown once). Other keys see only their own workspace."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from imagegate.db import accounts_repo
from imagegate.domain.records import Principal
from imagegate.errors import Forbidden, InvalidState
from imagegate.runtime import Runtime
from imagegate.services import keys
from imagegate.services.audit import Actor
from imagegate.services.keys import NewKey


@dataclass(frozen=True)
class WorkspaceInfo:
    workspace_id: str
    name: str
    created_at: datetime
    active_keys: int


def _operator(principal: Principal) -> None:
    if not principal.is_operator:
        raise Forbidden("managing workspaces needs the operator key")


async def list_all(
    rt: Runtime, principal: Principal, *, after: str | None, limit: int
) -> list[WorkspaceInfo]:
    """Every workspace by name, ``limit`` at a time after the name ``after``."""
    _operator(principal)
    async with rt.sessions() as session:
        rows = await accounts_repo.list_workspaces(session, after_name=after, limit=limit)
    return [WorkspaceInfo(*row) for row in rows]


async def open_workspace(rt: Runtime, principal: Principal, actor: Actor, name: str) -> NewKey:
    """A new workspace and its first admin key; 409 ``invalid_state`` if it exists."""
    _operator(principal)
    async with rt.sessions() as session:
        if await accounts_repo.workspace_exists(session, name.strip()):
            raise InvalidState(f"workspace {name.strip()!r} exists already", field="name")
    return await keys.create_key(rt, name, "first admin", "admin", actor=actor)
