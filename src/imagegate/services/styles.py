"""Style presets: the built-in ones and each workspace's own (create, read, change,
delete). A workspace sees only its own; another workspace's preset is not found. The
names of the built-in presets are reserved."""

from __future__ import annotations

from typing import Any

from imagegate.db import styles_repo as repo
from imagegate.domain.params import DEFAULT_STYLE, ParamError
from imagegate.domain.presets import (
    BUILTIN_PRESETS,
    MAX_DESCRIPTION_CHARS,
    MAX_NEGATIVE_CHARS,
    MAX_PRESETS_PER_WORKSPACE,
    PLACEHOLDER,
    Preset,
    check_base_style,
    check_mode,
    check_name,
    check_provider_options,
    check_ratio,
    check_template,
    check_text,
)
from imagegate.domain.records import Principal
from imagegate.errors import (
    BuiltinStyle,
    InvalidRequest,
    StyleExists,
    StyleLimitReached,
    StyleNotFound,
    UnsupportedModel,
)
from imagegate.runtime import Runtime

# The fields a preset has besides its name, and what checks each.
_CHECKS = {
    "description": lambda v: check_text("description", v, MAX_DESCRIPTION_CHARS),
    "template": check_template,
    "negative_prompt": lambda v: check_text("negative_prompt", v, MAX_NEGATIVE_CHARS),
    "base_style": check_base_style,
    "ratio": check_ratio,
    "mode": check_mode,
    "model": lambda v: v,  # checked against the providers: _check_model
    "provider_options": check_provider_options,
}
_DEFAULTS: dict[str, Any] = {"template": PLACEHOLDER, "base_style": DEFAULT_STYLE,
                             "provider_options": {}}  # fmt: skip


def _reserved(name: str) -> None:
    if name in BUILTIN_PRESETS:
        raise BuiltinStyle(
            f"{name!r} is a built-in style preset; built-in presets cannot be created, "
            "changed or deleted",
            field="name",
        )


def _checked(rt: Runtime, fields: dict[str, Any]) -> dict[str, Any]:
    """The fields, each checked (None clears an optional one)."""
    unknown = set(fields) - set(_CHECKS)
    if unknown:
        raise InvalidRequest(f"a style preset has no field {sorted(unknown)[0]!r}")
    checked: dict[str, Any] = {}
    try:
        for key, value in fields.items():
            if value is None and key in _DEFAULTS:
                value = _DEFAULTS[key]
            checked[key] = _CHECKS[key](value)
    except ParamError as error:
        raise InvalidRequest(str(error), field=error.field) from error
    if checked.get("model") is not None:
        _check_model(rt, checked["model"])
    _check_providers(rt, checked.get("provider_options") or {})
    return checked


def _check_model(rt: Runtime, model: str) -> None:
    # The same check a create body's model gets; a job made with the preset is
    # checked again (the configuration may have changed since).
    if rt.providers.resolve(model) is None:
        raise UnsupportedModel(
            f"no provider serves model {model!r}; available: auto, "
            + ", ".join(rt.providers.models()),
            field="model",
        )


def _check_providers(rt: Runtime, options: dict[str, Any]) -> None:
    names = sorted(entry.name for entry in rt.providers.entries())
    for provider in options:
        if provider not in names:
            raise InvalidRequest(
                f"provider_options names {provider[:64]!r}, which is not a configured "
                f"provider; configured: {', '.join(names)}",
                field=f"provider_options.{provider[:64]}",
            )


async def list_presets(rt: Runtime, principal: Principal) -> list[Preset]:
    """The built-in presets, then the workspace's own by name."""
    return [*BUILTIN_PRESETS.values(), *(await workspace_presets(rt, principal)).values()]


async def workspace_presets(rt: Runtime, principal: Principal) -> dict[str, Preset]:
    async with rt.db.connect() as conn:
        found = await repo.list_styles(conn, principal.workspace_id)
    return {preset.name: preset for preset in found}


async def find(rt: Runtime, principal: Principal, name: str) -> Preset | None:
    """The preset of this name, built in or the workspace's; None if there is none."""
    if name in BUILTIN_PRESETS:
        return BUILTIN_PRESETS[name]
    try:
        check_name(name)
    except ParamError:
        return None
    async with rt.db.connect() as conn:
        return await repo.get_style(conn, principal.workspace_id, name)


async def get(rt: Runtime, principal: Principal, name: str) -> Preset:
    preset = await find(rt, principal, name)
    if preset is None:
        raise StyleNotFound()
    return preset


async def create(rt: Runtime, principal: Principal, name: str, fields: dict[str, Any]) -> Preset:
    """A new preset of the workspace; ``fields`` as :data:`_CHECKS` names them."""
    _reserved(name)
    try:
        check_name(name)
    except ParamError as error:
        raise InvalidRequest(str(error), field=error.field) from error
    values = {**_DEFAULTS, "description": None, "negative_prompt": None, "ratio": None,
              "mode": None, "model": None, **_checked(rt, fields)}  # fmt: skip
    now = rt.clock.now()
    async with rt.db.begin() as conn:
        await repo.lock_workspace(conn, principal.workspace_id)
        if await repo.count_styles(conn, principal.workspace_id) >= MAX_PRESETS_PER_WORKSPACE:
            raise StyleLimitReached(
                f"a workspace has at most {MAX_PRESETS_PER_WORKSPACE} style presets; "
                "delete one first"
            )
        values.update(name=name, created_at=now, updated_at=now)
        if not await repo.insert_style(conn, principal.workspace_id, values):
            raise StyleExists(f"your workspace has a style preset named {name!r}", field="name")
    return Preset(**values)


async def update(rt: Runtime, principal: Principal, name: str, changes: dict[str, Any]) -> Preset:
    """Change the fields given; None clears an optional one (and resets ``template``,
    ``base_style`` and ``provider_options`` to their defaults). Jobs already made keep
    the preset as it was."""
    _reserved(name)
    values = {**_checked(rt, changes), "updated_at": rt.clock.now()}
    async with rt.db.begin() as conn:
        preset = await repo.update_style(conn, principal.workspace_id, name, values)
    if preset is None:
        raise StyleNotFound()
    return preset


async def delete(rt: Runtime, principal: Principal, name: str) -> None:
    """Remove the preset; jobs made with it keep their copy."""
    _reserved(name)
    async with rt.db.begin() as conn:
        if not await repo.delete_style(conn, principal.workspace_id, name):
            raise StyleNotFound()
