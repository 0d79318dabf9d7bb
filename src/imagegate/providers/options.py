"""Typed adapter ``options``: each adapter declares a model of the
``[providers.<name>.options]`` table it reads, checked when the adapter is built,
that is at start-up.

The models are strict: TOML has real booleans and numbers, so ``flag = "false"`` or
``max_images = "8"`` is a mistake to report, not a value to coerce (``bool("false")``
is true); a misspelt option is refused rather than silently ignored. A float option
takes an integer (``price = 1``), which loses nothing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from imagegate.providers.config import ConfigError

# One process may hold a thousand calls at once: they wait on providers for seconds to
# minutes. ``max_connections`` lowers it for a touchy provider.
DEFAULT_MAX_CONNECTIONS = 1000


class AdapterOptions(BaseModel):
    """No options at all: the base of every adapter's model."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    @classmethod
    def of(cls, name: str, options: Mapping[str, Any] | AdapterOptions) -> Self:
        """``options`` checked against this model; a :class:`ConfigError` naming the
        provider and each offending option otherwise (exit status 2 at start-up)."""
        if isinstance(options, cls):
            return options
        if isinstance(options, AdapterOptions):
            options = options.model_dump()
        try:
            return cls.model_validate(dict(options))
        except ValidationError as error:
            problems = "; ".join(_problem(name, cls, e) for e in error.errors())
            raise ConfigError(problems) from error


class HttpOptions(AdapterOptions):
    """What every network adapter takes."""

    max_connections: int = Field(default=DEFAULT_MAX_CONNECTIONS, ge=1)


def _problem(name: str, model: type[AdapterOptions], error: ErrorDetails) -> str:
    where = ".".join(str(part) for part in error["loc"])
    field = f"providers.{name}.options.{where}" if where else f"providers.{name}.options"
    if error["type"] == "extra_forbidden":
        known = ", ".join(sorted(model.model_fields)) or "none"
        return f"{field}: unknown option (known: {known})"
    got = error.get("input")
    hint = ""
    if isinstance(got, str) and error["type"] in {"bool_type", "int_type", "float_type"}:
        hint = " (a string: write the value without quotes)"
    return f"{field}: {error['msg']}, got {got!r}{hint}"
