"""Midjourney prompt parameters (domain.flags) resolved into job params
(services.submission.resolve): property-based over any prompt, round trips of valid
flag combinations, every range's boundaries, and style presets applied at create."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagegate.domain.flags import (
    DEFAULT_VERSION_MODELS,
    SUPPORTED_FLAGS,
    parse_prompt_flags,
    parse_version_models,
)
from imagegate.domain.params import MAX_SEED, STYLES
from imagegate.domain.presets import BUILTIN_PRESETS, Preset
from imagegate.errors import InvalidRequest
from imagegate.services.submission import JobSpec, Resolved, resolve
from imagegate.settings import Settings

PROPERTY = settings(max_examples=400, database=None, deadline=None)
# What a pasted prompt writes for "--": the real thing, or what an editor made of it.
DASHES = ("--", "\u2014", "\u2013", "\u2014-")


class FixedSeeds:
    def randbelow(self, n: int) -> int:
        return 1234


def problem(spec: JobSpec, **kwargs: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        resolve(spec, **kwargs)
    return caught.value


def ok(prompt: str, **fields: Any) -> Resolved:
    return resolve(JobSpec(prompt=prompt, **fields), seed_source=FixedSeeds())


# Any prompt: it parses, or the answer names what is wrong.

# Values that sit at an edge of some flag's parsing (non-ASCII digits among them:
# "²".isdigit() is true, and int("²") raises).
AWKWARD = ["0", ".25", ".5", "1.0", "2.5", "3.0001", "7", "6.1", "niji", "raw", "16:9",
           "1:5", "0:0", "x", "", "²", "٣", "1e3", "inf", "nan", "-0", "9" * 30, "noir",
           "https://example.com/a.png", "http://example.com/a.png", "up_01ABC",
           "text, logos", ",", "::2", "—", "--"]  # fmt: skip
_VALUES = st.one_of(st.integers(-5, 5000).map(str), st.sampled_from(AWKWARD), st.text(max_size=12))
_FLAG_WORDS = st.builds(
    lambda dash, name: dash + name.removeprefix("--"),
    st.sampled_from(DASHES),
    st.one_of(st.sampled_from(SUPPORTED_FLAGS), st.sampled_from(["--zoom", "--cref", "--X"])),
)
# Flags with a value after them (the usual shape), alone, and stray words.
_WORDS = st.lists(
    st.one_of(
        st.tuples(_FLAG_WORDS, _VALUES).map(" ".join),
        _FLAG_WORDS,
        _VALUES,
        st.text(max_size=20),
    ),
    max_size=8,
)


def _assert_names_what_is_wrong(error: InvalidRequest) -> None:
    field = error.extra.get("field")
    assert field, error.detail
    flag = error.extra.get("flag")
    if flag is not None:
        assert flag in error.detail, (flag, error.detail)


@PROPERTY
@given(st.text(max_size=200))
def test_any_text_parses_or_is_an_invalid_request_naming_a_field(prompt: str) -> None:
    try:
        resolve(JobSpec(prompt=prompt))
    except InvalidRequest as error:
        _assert_names_what_is_wrong(error)


@PROPERTY
@given(_WORDS, st.sampled_from([" ", "  ", "\n", "\t"]))
def test_flag_soup_parses_or_is_an_invalid_request_naming_the_flag(
    words: list[str], separator: str
) -> None:
    try:
        resolve(JobSpec(prompt=separator.join(["a fox", *words])))
    except InvalidRequest as error:
        _assert_names_what_is_wrong(error)


@PROPERTY
@given(_FLAG_WORDS, st.lists(_VALUES, max_size=3))
def test_each_flag_with_any_value_parses_or_is_refused_by_name(
    flag: str, values: list[str]
) -> None:
    # One flag at a time: in a soup, the first bad flag hides those after it.
    try:
        resolve(JobSpec(prompt=" ".join(["https://example.com/a.png a fox", flag, *values])))
    except InvalidRequest as error:
        _assert_names_what_is_wrong(error)


def test_every_flag_with_every_awkward_value() -> None:
    for name in SUPPORTED_FLAGS:
        for value in AWKWARD:
            try:
                resolve(JobSpec(prompt=f"https://example.com/a.png a fox {name} {value}"))
            except InvalidRequest as error:
                _assert_names_what_is_wrong(error)


# Round trips: valid flags, written any way Midjourney users write them, land in params.

_INTEGER_FLAGS = {
    "stylize": (("--stylize", "--s"), 0, 1000),
    "chaos": (("--chaos", "--c"), 0, 100),
    "weird": (("--weird", "--w"), 0, 3000),
}


@st.composite
def flag_combos(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A prompt with some valid flags, and the params it must resolve to."""
    groups: list[list[str]] = []  # one flag and its value each
    want: dict[str, Any] = {"tuning": {}}

    def write(names: tuple[str, ...], *value: str) -> None:
        groups.append([draw(st.sampled_from(DASHES)) + draw(st.sampled_from(names))[2:], *value])

    for key, (names, low, high) in _INTEGER_FLAGS.items():
        if draw(st.booleans()):
            value = draw(st.integers(low, high))
            write(names, str(value))
            want["tuning"][key] = value
    if draw(st.booleans()):
        quality = draw(st.sampled_from([(".25", 0.25), ("0.5", 0.5), ("1", 1), ("2", 2), ("4", 4)]))
        write(("--quality", "--q"), quality[0])
        want["tuning"]["quality"] = quality[1]
    for key, names in (("tile", ("--tile",)), ("raw", ("--raw",))):
        if draw(st.booleans()):
            write(names)
            want["tuning"][key] = True
    if draw(st.booleans()):
        seed = draw(st.integers(0, MAX_SEED))
        write(("--seed",), str(seed))
        want["seed"] = seed
    if draw(st.booleans()):
        w, h = draw(st.sampled_from([(1, 1), (16, 9), (9, 16), (3, 2), (4, 1), (1, 4)]))
        write(("--ar", "--aspect"), f"{w}:{h}")
        want["ratio"] = f"{w}:{h}"
    if draw(st.booleans()):
        version, written = draw(st.sampled_from([("v7", "7"), ("v6.1", "6.1"), ("v6", "6.0")]))
        write(("--v", "--version"), written)
        want["version"] = version
    if draw(st.booleans()):
        repeat = draw(st.integers(1, 40))
        write(("--repeat", "--r"), str(repeat))
        want["repeat"] = repeat
    if draw(st.booleans()):
        write(("--draft",))
        want["mode"] = "draft"
    flags = [word for group in draw(st.permutations(groups)) for word in group]
    return "a lighthouse at dusk::2 " + " ".join(flags), want


@PROPERTY
@given(flag_combos())
def test_valid_flags_round_trip_into_params(combo: tuple[str, dict[str, Any]]) -> None:
    prompt, want = combo
    resolved = ok(prompt)
    assert resolved.prompt == "a lighthouse at dusk::2"  # multi-prompt weights stay text
    tuning = want.pop("tuning")
    assert resolved.params.get("tuning", {}) == tuning
    for key, value in want.items():
        assert resolved.params[key] == value, key
    for key in ("version", "repeat"):
        assert (key in resolved.params) == (key in want)


# Boundaries: each range's ends are accepted, one step past them is refused by name.

BOUNDS = [
    ("--stylize", 0, 1000, ("tuning", "stylize")),
    ("--s", 0, 1000, ("tuning", "stylize")),
    ("--chaos", 0, 100, ("tuning", "chaos")),
    ("--c", 0, 100, ("tuning", "chaos")),
    ("--weird", 0, 3000, ("tuning", "weird")),
    ("--w", 0, 3000, ("tuning", "weird")),
    ("--repeat", 1, 40, ("repeat",)),
    ("--r", 1, 40, ("repeat",)),
    ("--seed", 0, MAX_SEED, ("seed",)),
]


def _get(params: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        params = params[key]
    return params


@pytest.mark.parametrize(("flag", "low", "high", "path"), BOUNDS)
def test_integer_ranges_hold_at_their_ends(
    flag: str, low: int, high: int, path: tuple[str, ...]
) -> None:
    for value in (low, high):
        assert _get(ok(f"a fox {flag} {value}").params, path) == value
    for value in (low - 1, high + 1):
        error = problem(JobSpec(prompt=f"a fox {flag} {value}"))
        assert error.extra == {"field": "prompt", "flag": flag}
        if value >= 0:
            assert error.detail == f"{flag} must be a number from {low} to {high}, got {value}"
        else:  # "-1" is not even a number to Midjourney: a word, not the flag's value
            assert flag in error.detail


def test_the_briefs_example_message() -> None:
    error = problem(JobSpec(prompt="a fox --chaos 150"))
    assert error.detail == "--chaos must be a number from 0 to 100, got 150"


@pytest.mark.parametrize("flag", ["--chaos", "--s", "--seed", "--repeat"])
def test_integer_flags_refuse_fractions_and_words(flag: str) -> None:
    assert "whole number" in problem(JobSpec(prompt=f"a fox {flag} 2.5")).detail
    assert flag in problem(JobSpec(prompt=f"a fox {flag} lots")).detail
    assert flag in problem(JobSpec(prompt=f"a fox {flag} 1 2")).detail
    assert "needs a value" in problem(JobSpec(prompt=f"a fox {flag}")).detail


def test_image_weight_from_0_to_3_with_an_image_prompt() -> None:
    image = "https://example.com/a.png"
    for value, expected in (("0", 0.0), ("3", 3.0), ("1.5", 1.5), (".5", 0.5)):
        assert ok(f"{image} a fox --iw {value}").params["image_weight"] == expected
    for value in ("3.01", "4", "x"):
        error = problem(JobSpec(prompt=f"{image} a fox --iw {value}"))
        assert error.detail.startswith("--iw must be a number from 0 to 3, got")
    with_body_image = ok("a fox --iw 2", init_image="up_01ABC")
    assert with_body_image.params["image_weight"] == 2 and with_body_image.refs == {}
    assert "image prompt" in problem(JobSpec(prompt="a fox --iw 2")).detail


def test_style_reference_and_its_weight() -> None:
    resolved = ok("a fox --sref https://example.com/style.png --sw 1000")
    assert resolved.refs == {"style_reference": "https://example.com/style.png"}
    assert resolved.params["style_weight"] == 1000
    assert ok("a fox --sref up_01ABCDEF --sw 0").refs == {"style_reference": "up_01ABCDEF"}
    assert "0 to 1000" in problem(JobSpec(prompt="a fox --sref up_1 --sw 1001")).detail
    assert "--sref" in problem(JobSpec(prompt="a fox --sw 100")).detail
    for bad in ("123456", "random", "http://example.com/s.png", "a b"):
        error = problem(JobSpec(prompt=f"a fox --sref {bad}"))
        assert error.extra["flag"] == "--sref", bad


@pytest.mark.parametrize("value", [".25", "0.25", ".5", "1", "1.0", "2", "4"])
def test_quality_takes_what_midjourney_takes(value: str) -> None:
    assert ok(f"a fox --q {value}").params["tuning"]["quality"] == float(value)


@pytest.mark.parametrize("value", ["0", ".75", "3", "5", "0.1", "high"])
def test_other_qualities_are_refused(value: str) -> None:
    error = problem(JobSpec(prompt=f"a fox --quality {value}"))
    assert error.detail.startswith("--quality must be one of .25, .5, 1, 2, 4")


def test_switches_and_style_raw() -> None:
    params = ok("a fox --tile --style raw --draft").params
    assert params["tuning"] == {"tile": True, "raw": True} and params["mode"] == "draft"
    assert ok("a fox --raw").params["tuning"] == {"raw": True}
    assert "takes no value" in problem(JobSpec(prompt="a fox --tile seamless")).detail
    assert "both set raw" in problem(JobSpec(prompt="a fox --raw --style raw")).detail


def test_negative_prompt_is_a_comma_separated_list() -> None:
    assert ok("a fox --no text, logos,,  watermark ").negative_prompt == "text, logos, watermark"
    assert "comma-separated" in problem(JobSpec(prompt="a fox --no , ,")).detail
    conflict = problem(JobSpec(prompt="a fox --no text", negative_prompt="logos"))
    assert conflict.extra == {"field": "negative_prompt"}


def test_pasted_dashes_start_flags() -> None:
    resolved = ok("a fox \u2014ar 16:9 \u2013s 250 \u2014-chaos 5 \u2014no text")
    assert resolved.prompt == "a fox"
    assert resolved.params["ratio"] == "16:9"
    assert resolved.params["tuning"] == {"stylize": 250, "chaos": 5}
    assert resolved.negative_prompt == "text"
    # A dash in the text that starts no word, or no letter, stays text.
    assert ok("a fox\u2014quick \u2014 and -- brown --8k").prompt == (
        "a fox\u2014quick \u2014 and -- brown --8k"
    )


def test_unknown_flags_list_the_supported_ones() -> None:
    error = problem(JobSpec(prompt="a fox --cref https://example.com/c.png"))
    assert error.extra == {"field": "prompt", "flag": "--cref"}
    assert all(flag in error.detail for flag in SUPPORTED_FLAGS)
    long = problem(JobSpec(prompt="a fox --" + "x" * 3000))
    assert len(long.detail) < 500


def test_image_prompts_before_the_text() -> None:
    resolved = ok("https://example.com/a.png a fox in snow --iw 1.5")
    assert resolved.prompt == "a fox in snow"
    assert resolved.refs == {"init_image": "https://example.com/a.png"}
    same = ok("https://example.com/a.png a fox", init_image="https://example.com/a.png")
    assert same.refs == {}
    other = problem(
        JobSpec(prompt="https://example.com/a.png a fox", init_image="https://example.com/b.png")
    )
    assert other.extra == {"field": "init_image"}
    assert "one image prompt" in problem(JobSpec(prompt="https://a.com/1 https://a.com/2 x")).detail
    assert "https" in problem(JobSpec(prompt="http://example.com/a.png a fox")).detail
    assert "text" in problem(JobSpec(prompt="https://example.com/a.png --ar 1:1")).detail
    # A URL inside the text is text.
    assert ok("a poster of https://example.com").refs == {}


def test_versions_map_through_the_configured_aliases() -> None:
    assert ok("a fox --v 7").params["version"] == "v7"
    assert ok("a fox --niji").params["version"] == "niji"
    assert ok("a fox --niji 6").params["version"] == "niji6"
    assert ok("a fox --v 7").params["requested_model"] == "auto"
    models = {**DEFAULT_VERSION_MODELS, "niji6": "replicate:anime", "v8": "openai:gpt-image-1"}
    niji = resolve(JobSpec(prompt="a fox --niji 6"), version_models=models)
    assert niji.params["requested_model"] == "replicate:anime"
    assert resolve(JobSpec(prompt="a fox --v 8"), version_models=models).params["version"] == "v8"
    unknown = problem(JobSpec(prompt="a fox --v 5.3"))
    assert unknown.extra["flag"] == "--v" and "v7" in unknown.detail
    assert problem(JobSpec(prompt="a fox --niji 3")).extra["flag"] == "--niji"
    # The body's model and a version's model must agree; "auto" states no preference.
    conflict = problem(JobSpec(prompt="a fox --niji 6", model="builtin"), version_models=models)
    assert conflict.extra == {"field": "model"}
    agreed = JobSpec(prompt="a fox --niji 6", model="replicate:anime")
    assert resolve(agreed, version_models=models).params["requested_model"] == "replicate:anime"
    body_wins = JobSpec(prompt="a fox --v 7", model="builtin")
    assert resolve(body_wins, version_models=models).params["requested_model"] == "builtin"


def test_the_version_setting() -> None:
    assert parse_version_models(" v7=auto , niji6=replicate:anime,") == {
        "v7": "auto",
        "niji6": "replicate:anime",
    }
    settings_ = Settings(model_versions="niji7=fal:flux")
    assert settings_.version_models["niji7"] == "fal:flux"
    assert settings_.version_models["v7"] == "auto"
    for bad in ("v7", "seven=auto", "v7=", "v7=a b", "v6.0=auto"):
        with pytest.raises(ValueError, match="IMAGEGATE_MODEL_VERSIONS"):
            Settings(model_versions=bad)


def test_flags_and_body_fields_agree_or_are_refused() -> None:
    assert ok("a fox --ar 16:9", ratio="32:18").params["ratio"] == "16:9"
    assert problem(JobSpec(prompt="a fox --ar 16:9", ratio="4:3")).extra == {"field": "ratio"}
    assert problem(JobSpec(prompt="a fox --draft", mode="standard")).extra == {"field": "mode"}
    assert problem(JobSpec(prompt="a fox --seed 3", seed=4)).extra == {"field": "seed"}
    assert problem(JobSpec(prompt="a fox", mode="turbo")).extra == {"field": "mode"}
    assert "1:4 and 4:1" in problem(JobSpec(prompt="a fox --ar 1:5")).detail


def test_params_only_carry_the_flags_given() -> None:
    assert set(ok("a fox").params) == {"ratio", "style", "variations", "seed", "mode", "width",
                                       "height", "output_format", "requested_model"}  # fmt: skip
    parsed = parse_prompt_flags("a fox --s 0 --w 0")
    assert parsed.values == {"stylize": 0, "weird": 0}


# Style presets applied at create.

PRODUCT = Preset(
    name="product",
    template="{prompt} on a marble plinth, {studio light}",
    negative_prompt="clutter",
    base_style="studio",
    ratio="4:5",
    mode="draft",
    model="builtin",
    provider_options={"openai": {"quality": "high"}},
)
PRESETS = {**BUILTIN_PRESETS, "product": PRODUCT}


def test_a_preset_templates_the_prompt_and_is_frozen_into_params() -> None:
    resolved = resolve(JobSpec(prompt="a shoe --no text", style="product"), presets=PRESETS)
    assert resolved.prompt == "a shoe on a marble plinth, {studio light}"
    assert resolved.negative_prompt == "text, clutter"
    params = resolved.params
    assert (params["style"], params["ratio"], params["mode"]) == ("studio", "4:5", "draft")
    assert params["requested_model"] == "builtin"
    assert params["provider_options"] == {"openai": {"quality": "high"}}
    assert params["preset"] == {
        "name": "product", "builtin": False, "prompt": "a shoe",
        "template": "{prompt} on a marble plinth, {studio light}",
        "negative_prompt": "clutter", "base_style": "studio", "ratio": "4:5", "mode": "draft",
        "model": "builtin", "provider_options": {"openai": {"quality": "high"}},
    }  # fmt: skip


def test_body_and_flags_win_over_the_preset() -> None:
    spec = JobSpec(prompt="a shoe --ar 1:1", style="product", mode="standard", model="auto")
    params = resolve(spec, presets=PRESETS).params
    assert (params["ratio"], params["mode"]) == ("1:1", "standard")
    # "auto" in the body states no preference: the preset's model stands.
    assert params["requested_model"] == "builtin"
    spec = JobSpec(prompt="a shoe --style product --draft", model="openai")
    assert resolve(spec, presets=PRESETS).params["requested_model"] == "openai"


@pytest.mark.parametrize("name", STYLES)
def test_every_builtin_preset_renders_with_its_own_look(name: str) -> None:
    resolved = ok("a fox", style=name)
    assert resolved.params["style"] == name
    assert "a fox" in resolved.prompt
    assert resolved.params["preset"]["builtin"] is True


def test_an_unknown_style_is_refused_listing_the_choices() -> None:
    error = problem(JobSpec(prompt="a fox", style="bauhaus"), presets=PRESETS)
    assert error.extra == {"field": "style"}
    assert "noir" in error.detail and "product" in error.detail
    assert problem(JobSpec(prompt="a fox --style bauhaus")).extra == {"field": "style"}
    conflict = problem(JobSpec(prompt="a fox --style noir", style="anime"))
    assert conflict.extra == {"field": "style"}
