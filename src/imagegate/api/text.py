"""The characters a text field of the API may hold: the one rule, as pydantic types.

PostgreSQL cannot store NUL in ``text``, so a prompt holding one reached the server
as a 5xx. Other control characters are stored fine but are never meant: in a name, an
id or a URL they hide what is really there (a log line split by ``\\r``, a header
injected by ``\\n``). (Lone surrogates, which ``json.loads`` lets through from
``"\\ud800"`` and no database can encode, pydantic already refuses as
``string_unicode``.)

- ``FreeText`` (prompts, descriptions, metadata values): no C0 control except tab,
  line feed and carriage return.
- ``Name`` (styles, ratios, models, users, metadata keys, URLs): no C0 control and
  no DEL.

A refused value answers 422 ``validation_error`` whose ``errors[].type`` is
``control_character`` and whose ``field`` names the field (docs/errors.md). The
OpenAPI document carries the rule as a ``pattern``, so clients can check first."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, GetJsonSchemaHandler
from pydantic.config import JsonDict
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError

# Written with regex escapes so that the OpenAPI document shows them legibly; the same
# syntax means the same in Python and in ECMA-262 (JSON Schema's regex dialect).
_FREE_TEXT_REFUSED = r"\x00-\x08\x0b\x0c\x0e-\x1f"
_NAME_REFUSED = r"\x00-\x1f\x7f"
FREE_TEXT_PATTERN = f"^[^{_FREE_TEXT_REFUSED}]*$"
NAME_PATTERN = f"^[^{_NAME_REFUSED}]*$"

_FREE_TEXT_BAD = re.compile(f"[{_FREE_TEXT_REFUSED}]")
_NAME_BAD = re.compile(f"[{_NAME_REFUSED}]")


def first_bad_character(value: str, *, free_text: bool) -> str | None:
    """The first character ``value`` may not hold, or None if it is clean."""
    found = (_FREE_TEXT_BAD if free_text else _NAME_BAD).search(value)
    return found.group() if found else None


def _refuse(value: str, free_text: bool) -> str:
    bad = first_bad_character(value, free_text=free_text)
    if bad is not None:
        allowed = " (tab, line feed and carriage return are allowed)" if free_text else ""
        raise PydanticCustomError(
            "control_character",
            "must not contain control characters such as U+{codepoint}{allowed}",
            {"codepoint": f"{ord(bad):04X}", "allowed": allowed},
        )
    return value


def _free_text(value: str) -> str:
    return _refuse(value, free_text=True)


def _name(value: str) -> str:
    return _refuse(value, free_text=False)


@dataclass(frozen=True)
class _Documented:
    """Adds the rule to the field's JSON Schema, keeping its other keywords."""

    pattern: str

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.pattern
        return json_schema


FreeText = Annotated[str, AfterValidator(_free_text), _Documented(FREE_TEXT_PATTERN)]
Name = Annotated[str, AfterValidator(_name), _Documented(NAME_PATTERN)]
# For the keys of a dict: pydantic would document a key's pattern as
# ``patternProperties``, which constrains only the keys that match; the dict's field
# documents ``propertyNames`` itself instead (see ``name_keys``).
NameKey = Annotated[str, AfterValidator(_name)]


def name_keys(min_length: int, max_length: int) -> JsonDict:
    """``json_schema_extra`` for a dict whose keys are ``NameKey``."""
    return {
        "propertyNames": {"minLength": min_length, "maxLength": max_length, "pattern": NAME_PATTERN}
    }
