"""The one rule for the characters API text fields may hold (api/text.py)."""

from __future__ import annotations

import re

import pytest
from pydantic import BaseModel, ValidationError

from imagegate.api.text import FREE_TEXT_PATTERN, NAME_PATTERN, FreeText, Name
from imagegate.domain.ids import new_id, well_formed


class _Body(BaseModel):
    text: FreeText | None = None
    name: Name | None = None


@pytest.mark.parametrize("value", ["a fox", "a\tfox\nin\r\nsnow", "ünïcödé 雪 🦊", ""])
def test_free_text_keeps_printable_text_tabs_and_newlines(value: str) -> None:
    assert _Body(text=value).text == value


@pytest.mark.parametrize("char", [*map(chr, range(0x20)), "\x7f"])
def test_names_refuse_every_c0_control_and_del(char: str) -> None:
    with pytest.raises(ValidationError) as raised:
        _Body(name=f"studio{char}")
    error = raised.value.errors()[0]
    assert (error["type"], error["loc"]) == ("control_character", ("name",))
    assert f"U+{ord(char):04X}" in error["msg"]


@pytest.mark.parametrize("char", sorted(set(map(chr, range(0x20))) - {"\t", "\n", "\r"}))
def test_free_text_refuses_other_c0_controls(char: str) -> None:
    with pytest.raises(ValidationError, match="control_character"):
        _Body(text=f"a{char}fox")


def test_the_documented_patterns_say_the_same_as_the_validators() -> None:
    for code in range(0x100):
        char = chr(code)
        free_ok = _passes(text=char)
        name_ok = _passes(name=char)
        assert free_ok == bool(re.fullmatch(FREE_TEXT_PATTERN, char)), hex(code)
        assert name_ok == bool(re.fullmatch(NAME_PATTERN, char)), hex(code)


def _passes(**fields: str) -> bool:
    try:
        _Body(**fields)  # type: ignore[arg-type]
    except ValidationError:
        return False
    return True


def test_the_pattern_is_in_the_json_schema() -> None:
    schema = _Body.model_json_schema()["properties"]
    assert schema["text"]["anyOf"][0]["pattern"] == FREE_TEXT_PATTERN
    assert schema["name"]["anyOf"][0]["pattern"] == NAME_PATTERN


def test_ids_are_well_formed_only_with_their_prefix_and_plain_characters() -> None:
    job = new_id("job")
    assert well_formed(job, "job")
    assert not well_formed(job, "ep")
    assert well_formed("job_doesnotexist", "job")
    for bad in ["job_", "job", "job_\x00", "job_a/b", "job_é", "job_" + "a" * 65, "JOB_1", ""]:
        assert not well_formed(bad, "job"), bad
