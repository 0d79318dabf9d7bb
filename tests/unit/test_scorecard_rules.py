"""The provider checklist's overall score (domain/scorecard.py), the routing plan and
its reasons (domain/routing.py), and the configuration that feeds them: facts,
``[routing.prefer]`` and ``min_compliance``."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate.domain import scorecard
from imagegate.domain.routing import Candidate, Preference, explain, plan
from imagegate.providers.config import ConfigError, ConfigFile, Policy, load


def test_the_overall_score_is_the_mean_of_what_has_points() -> None:
    result = scorecard.overall({"compliance_comfort": 5, "support": 2}, reliability=4)
    assert result.score == pytest.approx(3.7)  # (4 + 5 + 2) / 3, one decimal
    # In the checklist's order, the measured item first.
    assert list(result.items) == ["reliability", "compliance_comfort", "support"]


def test_missing_items_are_left_out_not_counted_as_low() -> None:
    assert scorecard.overall({"support": 4}, reliability=None).score == 4.0
    assert scorecard.overall({}, reliability=None) == scorecard.Overall(None, {})


def test_the_overall_score_refuses_what_the_config_should_have_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        scorecard.overall({"support": 6}, None)
    with pytest.raises(ValueError, match="not a checklist item"):
        scorecard.overall({"vibes": 3}, None)


@pytest.mark.parametrize(
    ("calls", "ok", "moderated", "points"),
    [
        (100, 99, 0, 5),
        (100, 98, 0, 4),
        (100, 97, 0, 4),
        (100, 93, 0, 3),
        (100, 85, 0, 2),
        (100, 84, 0, 1),
        (100, 0, 0, 1),
        # Moderated calls are left out: a refused prompt says nothing about uptime.
        (100, 90, 10, 5),
        # Too few calls for a rate to mean anything.
        (19, 19, 0, None),
        (30, 10, 11, None),
    ],
)
def test_reliability_points(calls: int, ok: int, moderated: int, points: int | None) -> None:
    assert scorecard.reliability_points(calls, ok, moderated) == points


def test_a_compliance_floor_keeps_low_and_unrated_providers_out() -> None:
    assert scorecard.meets_floor(None, None)
    assert scorecard.meets_floor(1, None)
    assert scorecard.meets_floor(3, 3)
    assert not scorecard.meets_floor(2, 3)
    assert not scorecard.meets_floor(None, 1)


A = Candidate("a", "m", priority=10, order=0, price=0.04)
B = Candidate("b", "m", priority=0, order=1, price=0.01)
C = Candidate("c", "m", priority=5, order=2, price=None)


def test_without_a_preference_the_policy_orders() -> None:
    planned = plan([B, C, A], "priority", None)
    assert [c.provider for c in planned.order] == ["a", "c", "b"]
    assert planned.reason == "highest priority capable"


def test_preferred_providers_go_first_and_the_rest_keep_the_policy_order() -> None:
    planned = plan([A, B, C], "priority", Preference("style anime", providers=("b",)))
    assert [c.provider for c in planned.order] == ["b", "a", "c"]
    assert planned.reason == "style anime prefers b"
    # Listed order counts: c before b.
    planned = plan([A, B, C], "priority", Preference("style anime", providers=("c", "b")))
    assert [c.provider for c in planned.order] == ["c", "b", "a"]


def test_a_preference_none_of_whose_providers_can_do_the_job_says_so() -> None:
    planned = plan([A, C], "cheapest", Preference("style anime", providers=("b",)))
    assert [c.provider for c in planned.order] == ["a", "c"]
    assert planned.reason == "style anime prefers b, none capable; cheapest capable"


def test_a_preferred_policy_replaces_the_jobs() -> None:
    planned = plan([A, B, C], "priority", Preference("upscale", policy="cheapest"))
    assert [c.provider for c in planned.order] == ["b", "a", "c"]  # unpriced last
    assert planned.reason == "cheapest capable for upscale"


def test_a_fallback_says_why_the_first_was_passed_over() -> None:
    planned = plan([A, B], "priority", Preference("style anime", providers=("b",)))
    assert explain(planned, "b", {}) == "style anime prefers b"
    assert explain(planned, "a", {"b": "open"}) == "fallback: b open (style anime prefers b)"
    assert explain(planned, "a", {"b": "failed"}).startswith("fallback: b failed")


def _load(tmp_path: Path, text: str) -> ConfigFile:
    path = tmp_path / "imagegate.toml"
    path.write_text(text)
    return load(path)


GOOD = """
[routing]
min_compliance = 2
[routing.prefer]
styles = { anime = ["a"], photographic = ["b", "a"], my-look = "fastest" }
actions = { upscale = "cheapest", describe = ["builtin"] }
[routing.workspaces.strict]
min_compliance = 4
[routing.workspaces.quick]
policy = "fastest"

[providers.a]
type = "openai"
[providers.a.facts]
compliance_comfort = { score = 4, note = "official API, clear terms" }
support = 3

[providers.b]
type = "openai"
"""


def test_a_good_file_with_facts_and_preferences(tmp_path: Path) -> None:
    config = _load(tmp_path, GOOD)
    facts = config.providers["a"].facts.given()
    assert {k: (f.score, f.note) for k, f in facts.items()} == {
        "compliance_comfort": (4, "official API, clear terms"),
        "support": (3, None),
    }
    assert config.providers["a"].compliance == 4
    assert config.providers["b"].compliance is None
    assert config.min_compliance_for("strict") == 4
    assert config.min_compliance_for("quick") == 2  # the global floor
    assert config.min_compliance_for("anyone") == 2
    assert config.policy_for("quick") is Policy.FASTEST
    assert config.policy_for("strict") is Policy.PRIORITY  # a floor alone keeps the policy

    assert config.preference_for("imagine", "anime", None) == Preference(
        "style anime", providers=("a",)
    )
    # The preset's name first, then its base style.
    assert config.preference_for("imagine", "anime", "my-look") == Preference(
        "style my-look", policy="fastest"
    )
    assert config.preference_for("imagine", "photographic", "unlisted") == Preference(
        "style photographic", providers=("b", "a")
    )
    # The action's preference wins over the style's.
    assert config.preference_for("upscale", "anime", None) == Preference(
        "upscale", policy="cheapest"
    )
    assert config.preference_for("imagine", "cinematic", None) is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[providers.a]\ntype='openai'\n[providers.a.facts]\nsupport = 6", "support.score"),
        ("[providers.a]\ntype='openai'\n[providers.a.facts]\nsupport = 0", "support.score"),
        ("[providers.a]\ntype='openai'\n[providers.a.facts]\nsupport = true", "support"),
        ("[providers.a]\ntype='openai'\n[providers.a.facts]\nsupport = 2.5", "support"),
        ("[providers.a]\ntype='openai'\n[providers.a.facts]\nvibes = 3", "vibes"),
        (
            "[providers.a]\ntype='openai'\n[providers.a.facts]\n"
            f"support = {{ score = 3, note = '{'x' * 201}' }}",
            "note",
        ),
        ("[routing.workspaces.w]\nmin_compliance = 9", "min_compliance"),
        ("[routing]\nmin_compliance = 0", "min_compliance"),
        ("[routing.prefer]\nstyles = { anime = ['nobody'] }", "unknown provider(s): nobody"),
        ("[routing.prefer]\nstyles = { anime = 'builtin' }", 'list providers as ["builtin"]'),
        ("[routing.prefer]\nstyles = { anime = [] }", "list 1 to 16"),
        (
            "[routing.prefer]\nstyles = { anime = ['builtin', 'builtin'] }",
            "listed twice",
        ),
        ("[routing.prefer]\nstyles = { 'Bad Name' = 'cheapest' }", "not a style preset name"),
        ("[routing.prefer]\nactions = { enhance = 'cheapest' }", "unknown action(s) enhance"),
        ("[routing.prefer]\ncolours = {}", "colours"),
    ],
)
def test_bad_facts_and_preferences_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, text)
    assert message in str(caught.value)
