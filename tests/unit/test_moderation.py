# Look-alike letters are what these tests are about.
# ruff: noqa: RUF001, RUF003
"""The prompt stage's matching (domain.moderation): disguised terms are caught, and
innocent words made of the same letters are not."""

from __future__ import annotations

import pytest

from imagegate.domain.moderation import CATEGORIES, Rules, screen, term_words
from imagegate.providers.config import ConfigFile

BUILTIN = Rules.build({})

# Each a way of writing a built-in term that a plain word list would miss.
DISGUISED = [
    ("a nude figure", "sexual"),
    ("A NUDE figure", "sexual"),
    ("ＮＵＤＥ figure", "sexual"),  # fullwidth
    ("nüde figure", "sexual"),  # an accent
    ("nu\u200bde figure", "sexual"),  # a zero-width space inside
    ("nud\u0435 figure", "sexual"),  # a Cyrillic е
    ("n\u03c5de figure", "sexual"),  # a Greek υ
    ("nud3 figure", "sexual"),  # leetspeak
    ("p0rn", "sexual"),
    ("$ex scene", "sexual"),
    ("n u d e figure", "sexual"),  # spaced out
    ("n.u.d.e figure", "sexual"),
    ("n-u-d-e figure", "sexual"),
    ("n_u_d_e figure", "sexual"),
    ("a n u d e figure", "sexual"),  # spelled out after a one-letter word
    ("two nudes", "sexual"),  # a plural
    ("l0l1c0n art", "sexual/minors"),  # 1 read as l
    ("a teen, nude", "sexual/minors"),  # a sexual term beside a minor
    ("g0re everywhere", "violence/graphic"),
    ("a severed   head", "violence/graphic"),  # a phrase across extra spaces
    ("SELF-HARM", "self-harm"),
    ("swastikas on a wall", "hate"),
    ("gore and porn", "violence/graphic"),  # the graver category named
]

# Innocent prompts that share letters or words with a term.
PLAIN = [
    "a dune at dusk",  # the letters of nude
    "undone laces",
    "the wind will denude the hills",
    "a class photo",
    "Sussex and Essex at 4k",
    "a 3d render of a 1990s castle",
    "hello! a nice day",
    "the naked eye sees stars",  # an allowed phrase
    "a naked mole rat",
    "nude lipstick on a table",
    "a gorge in the mountains",
    "a selfie of a harmless cat",
    "sextant on a ship's deck",
    "a b c blocks",  # spelled letters that hold no term
    "",
]


@pytest.mark.parametrize(("prompt", "category"), DISGUISED)
def test_disguised_terms_are_refused(prompt: str, category: str) -> None:
    verdict = screen(BUILTIN, prompt)
    assert verdict is not None, prompt
    assert verdict.category == category


@pytest.mark.parametrize("prompt", PLAIN)
def test_plain_prompts_with_the_same_letters_pass(prompt: str) -> None:
    assert screen(BUILTIN, prompt) is None


def test_own_terms_and_allowed_phrases() -> None:
    rules = Rules.build({"violence": ["blood bath", "Knife Fight"]}, ["knife fight club"])
    assert screen(rules, "a blood   bath") is not None
    assert screen(rules, "a KNIFE-FIGHT") == screen(rules, "knife fight")
    assert screen(rules, "the knife fight club") is None  # allowed as a whole
    assert screen(rules, "a blood bank") is None


def test_without_builtin_lists_only_own_terms_count() -> None:
    rules = Rules.build({"illicit": ["lockpicking"]}, builtin=False)
    assert screen(rules, "a nude figure") is None
    assert screen(rules, "l0ckp1ck1ng kit") is not None
    assert Rules.build({}, builtin=False).empty


def test_every_builtin_category_is_an_openai_name() -> None:
    assert set(BUILTIN.terms) <= set(CATEGORIES)
    assert term_words("Self-Harm") == ("self", "harm")


def test_config_per_workspace() -> None:
    config = ConfigFile.model_validate(
        {
            "moderation": {
                "terms": {"violence": ["blood bath"]},
                "workspaces": {
                    "art-school": {"builtin": False},
                    "lab": {"prompt": False},
                    "kids": {"terms": {"violence": ["sword"]}},
                },
            }
        }
    ).moderation
    default = config.rules_for("anyone")
    assert default is not None and screen(default, "nude") is not None
    art = config.rules_for("art-school")
    assert art is not None and screen(art, "nude") is None
    assert screen(art, "blood bath") is not None  # the global terms still apply
    assert config.rules_for("lab") is None
    kids = config.rules_for("kids")
    assert kids is not None and screen(kids, "a sword") is not None
    assert screen(default, "a sword") is None


@pytest.mark.parametrize(
    "table",
    [
        {"terms": {"violent": ["x"]}},  # not a category
        {"terms": {"violence": ["   "]}},  # no words
        {"terms": {"violence": ["one two three four five six seven"]}},  # too long
        {"workspaces": {"a": {"terms": {"gore": ["x"]}}}},
        {"promt": True},  # misspelt
    ],
)
def test_bad_moderation_tables_are_refused(table: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="moderation"):
        ConfigFile.model_validate({"moderation": table})
