"""Midjourney-style prompt parameters: ``a fox --ar 16:9 --s 250 --no text --draft``.

:func:`parse_prompt_flags` splits a prompt into its leading image URLs (Midjourney's
image prompts), its text, and the typed values of its flags, checking each value's
range. Everything from the first flag on is flags: Midjourney reads them only at the
end. Pasted prompts often carry an em dash (U+2014) or an en dash (U+2013) where ``--`` was
typed, because editors "smart"-replace it; those start a flag too. ``::`` multi-prompt
weights are text and stay in it. Which versions exist, and the model each maps to, is
configuration: :func:`model_for_version` checks a parsed version against that table.
docs/prompt-flags.md lists every flag."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from imagegate.domain.params import MAX_SEED, ParamError, Ratio

QUALITIES = (0.25, 0.5, 1, 2, 4)  # V7 takes 1, 2, 4; V6.x and Niji .25, .5, 1, 2
MAX_REPEAT = 40
MAX_URL_CHARS = 2048
# Midjourney's versions, as ``--v``/``--niji`` name them; each maps to a model through
# the configured aliases (settings.model_versions), by default to "auto".
KNOWN_VERSIONS = (
    "v1", "v2", "v3", "v4", "v5", "v5.1", "v5.2", "v6", "v6.1", "v7",
    "niji", "niji4", "niji5", "niji6", "niji7",
)  # fmt: skip
DEFAULT_VERSION_MODELS: Mapping[str, str] = dict.fromkeys(KNOWN_VERSIONS, "auto")

# A flag word: two dashes, or a dash a text editor made of them, then a letter.
_FLAG_START = re.compile(r"^(?:--|[\u2014\u2013]-?)(?=[A-Za-z])")
_WORD = re.compile(r"\S+")
_INTEGER = re.compile(r"^[0-9]{1,12}$")
_NUMBER = re.compile(r"^(?:[0-9]{1,12}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})$")
_VERSION = re.compile(r"^([0-9]{1,2})(?:\.([0-9]))?$")
_ID = re.compile(r"^[a-z]{1,8}_[0-9A-Za-z]{1,64}$")


class FlagError(ParamError):
    """A prompt flag (or image prompt) is malformed or out of range. ``field`` is
    ``prompt``, where the flag was written; ``flag`` names it as the client wrote it."""

    def __init__(self, flag: str | None, message: str) -> None:
        super().__init__("prompt", message)
        self.flag = flag


def _shown(value: str) -> str:
    # Error messages quote what the client sent, but never an unbounded amount of it.
    return repr(value if len(value) <= 40 else value[:37] + "...")


# A parser turns the flag's value words into (the key it sets, the typed value).
Parser = Callable[[str, list[str]], tuple[str, Any]]


def _single(flag: str, args: list[str], what: str) -> str:
    if len(args) != 1:
        raise FlagError(flag, f"{flag} takes one value ({what}), got {_shown(' '.join(args))}")
    return args[0]


def _integer(key: str, low: int, high: int) -> Parser:
    def parse(flag: str, args: list[str]) -> tuple[str, Any]:
        text = _single(flag, args, f"a whole number from {low} to {high}")
        if not _INTEGER.match(text):
            kind = "whole number" if _NUMBER.match(text) else "number"
            raise FlagError(
                flag, f"{flag} must be a {kind} from {low} to {high}, got {_shown(text)}"
            )
        value = int(text)
        if not low <= value <= high:
            raise FlagError(flag, f"{flag} must be a number from {low} to {high}, got {value}")
        return key, value

    return parse


def _number(key: str, low: float, high: float) -> Parser:
    def parse(flag: str, args: list[str]) -> tuple[str, Any]:
        text = _single(flag, args, f"a number from {low:g} to {high:g}")
        value = float(text) if _NUMBER.match(text) else None
        if value is None or not low <= value <= high:
            shown = _shown(text) if value is None else f"{value:g}"
            raise FlagError(flag, f"{flag} must be a number from {low:g} to {high:g}, got {shown}")
        return key, value

    return parse


def _switch(key: str, value: Any) -> Parser:
    def parse(flag: str, args: list[str]) -> tuple[str, Any]:
        if args:
            raise FlagError(
                flag,
                f"{flag} takes no value, got {_shown(' '.join(args))}; the prompt's text "
                "goes before its flags",
            )
        return key, value

    return parse


def _ratio(flag: str, args: list[str]) -> tuple[str, Any]:
    text = " ".join(args)
    try:
        return "ratio", str(Ratio.parse(text))
    except ParamError as error:
        raise FlagError(
            flag, f"{flag} must be a ratio W:H between 1:4 and 4:1, got {_shown(text)} ({error})"
        ) from None


def _negative(flag: str, args: list[str]) -> tuple[str, Any]:
    words = [w.strip() for w in " ".join(args).split(",")]
    if not any(words):
        raise FlagError(flag, f"{flag} needs a comma-separated list of things to leave out")
    return "negative_prompt", ", ".join(w for w in words if w)


def _style(flag: str, args: list[str]) -> tuple[str, Any]:
    name = _single(flag, args, "raw, or a style preset's name")
    return ("raw", True) if name.lower() == "raw" else ("style", name)


def _quality(flag: str, args: list[str]) -> tuple[str, Any]:
    text = _single(flag, args, "one of .25, .5, 1, 2, 4")
    value = float(text) if _NUMBER.match(text) else None
    if value not in QUALITIES:
        raise FlagError(flag, f"{flag} must be one of .25, .5, 1, 2, 4, got {_shown(text)}")
    assert value is not None
    return "quality", int(value) if value.is_integer() else value


def _version(prefix: str, optional: bool) -> Parser:
    def parse(flag: str, args: list[str]) -> tuple[str, Any]:
        if optional and not args:
            return "version", prefix
        text = _single(flag, args, "a version such as 7 or 6.1")
        match = _VERSION.match(text)
        if not match:
            raise FlagError(flag, f"{flag} must be a version such as 7 or 6.1, got {_shown(text)}")
        major, minor = match.groups()
        # "--v 6.0" is version 6: the alias table names versions without a ".0".
        return "version", f"{prefix}{int(major)}" + (
            f".{minor}" if minor not in (None, "0") else ""
        )

    return parse


def _reference(flag: str, args: list[str]) -> tuple[str, Any]:
    text = _single(flag, args, "an upload id or an https URL")
    if not (_ID.match(text) or (text.startswith("https://") and len(text) <= MAX_URL_CHARS)):
        raise FlagError(
            flag,
            f"{flag} must be an upload id or an https URL of an image, got {_shown(text)} "
            "(Midjourney's numeric style codes have no meaning outside Midjourney)",
        )
    return "style_reference", text


@dataclass(frozen=True)
class Flag:
    names: tuple[str, ...]
    parse: Parser
    # Whether the flag must be followed by a value (a switch takes none; the parser
    # refuses one; ``--niji`` alone is the current Niji).
    needs_value: bool = True


FLAGS: tuple[Flag, ...] = (
    Flag(("--ar", "--aspect"), _ratio),
    Flag(("--seed",), _integer("seed", 0, MAX_SEED)),
    Flag(("--no",), _negative),
    Flag(("--style",), _style),
    Flag(("--raw",), _switch("raw", True), needs_value=False),
    Flag(("--draft",), _switch("mode", "draft"), needs_value=False),
    Flag(("--stylize", "--s"), _integer("stylize", 0, 1000)),
    Flag(("--chaos", "--c"), _integer("chaos", 0, 100)),
    Flag(("--weird", "--w"), _integer("weird", 0, 3000)),
    Flag(("--tile",), _switch("tile", True), needs_value=False),
    Flag(("--quality", "--q"), _quality),
    Flag(("--version", "--v"), _version("v", optional=False)),
    Flag(("--niji",), _version("niji", optional=True), needs_value=False),
    Flag(("--iw",), _number("image_weight", 0, 3)),
    Flag(("--sref",), _reference),
    Flag(("--sw",), _integer("style_weight", 0, 1000)),
    Flag(("--repeat", "--r"), _integer("repeat", 1, MAX_REPEAT)),
)
_BY_NAME = {name: flag for flag in FLAGS for name in flag.names}
SUPPORTED_FLAGS = tuple(sorted(_BY_NAME))
# The keys that go into params["tuning"]: Midjourney's knobs with no portable meaning.
TUNING_KEYS = ("stylize", "chaos", "weird", "tile", "quality", "raw")


@dataclass(frozen=True)
class ParsedPrompt:
    """A prompt taken apart. ``values`` maps what each flag sets (``ratio``, ``seed``,
    ``negative_prompt``, ``style``, ``mode``, ``stylize``, ``chaos``, ``weird``,
    ``tile``, ``quality``, ``raw``, ``version``, ``image_weight``,
    ``style_reference``, ``style_weight``, ``repeat``) to its checked value;
    ``image_urls`` are the image prompts written before the text."""

    text: str
    values: dict[str, Any] = field(default_factory=dict)
    image_urls: tuple[str, ...] = ()


def flag_word(word: str) -> str | None:
    """``word`` as the flag it starts (``—ar`` → ``--ar``), or None if it is text."""
    dashes = _FLAG_START.match(word)
    return None if dashes is None else "--" + word[dashes.end() :].lower()


def parse_prompt_flags(prompt: str) -> ParsedPrompt:
    """Split ``prompt`` into image URLs, text and flag values; raise :class:`FlagError`
    naming the flag for an unknown flag or a value out of its range."""
    words = list(_WORD.finditer(prompt))
    urls: list[str] = []
    start = 0
    for match in words:
        scheme = match.group()[:8].lower()
        if not scheme.startswith(("https://", "http://")):
            break
        if scheme != "https://" or len(match.group()) > MAX_URL_CHARS:
            raise FlagError(None, f"image prompts must be https URLs, got {_shown(match.group())}")
        urls.append(match.group())
        start += 1
    first = next((i for i in range(start, len(words)) if flag_word(words[i].group())), None)
    end = words[first].start() if first is not None else len(prompt)
    text_from = words[start].start() if start < len(words) else len(prompt)
    text = prompt[text_from:end].strip()
    values: dict[str, Any] = {}
    set_by: dict[str, str] = {}
    i = first if first is not None else len(words)
    while i < len(words):
        name = flag_word(words[i].group())
        assert name is not None
        flag = _BY_NAME.get(name)
        if flag is None:
            shown = name if len(name) <= 40 else name[:37] + "..."
            raise FlagError(
                shown, f"unknown prompt flag {shown}; supported: {', '.join(SUPPORTED_FLAGS)}"
            )
        i += 1
        args: list[str] = []
        while i < len(words) and not flag_word(words[i].group()):
            args.append(words[i].group())
            i += 1
        if flag.needs_value and not args:
            raise FlagError(name, f"prompt flag {name} needs a value")
        key, value = flag.parse(name, args)
        if key in set_by:
            earlier = set_by[key]
            raise FlagError(
                name,
                f"prompt flag {name} given twice"
                if earlier == name
                else f"prompt flags {earlier} and {name} both set {key}; give one",
            )
        set_by[key] = name
        values[key] = value
    if "style_weight" in values and "style_reference" not in values:
        raise FlagError(set_by["style_weight"], "--sw weighs a style reference: add --sref")
    return ParsedPrompt(text, values, tuple(urls))


def model_for_version(version: str, models: Mapping[str, str]) -> str:
    """The model a ``--v``/``--niji`` version maps to, by the configured ``models``
    (version → ``auto`` or ``provider:model``); unknown versions are refused."""
    if version in models:
        return models[version]
    flag = "--niji" if version.startswith("niji") else "--v"
    shown = version.removeprefix("niji").removeprefix("v") or "(none)"
    known = ", ".join(sorted(models))
    raise FlagError(flag, f"{flag} {shown} is not a version this server knows; known: {known}")


_VERSION_NAME = re.compile(r"^(?:v[0-9]{1,2}(?:\.[1-9])?|niji(?:[0-9]{1,2}(?:\.[1-9])?)?)$")
_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127}$")


def parse_version_models(text: str) -> dict[str, str]:
    """``"v7=auto,niji6=replicate:anime"`` → ``{"v7": "auto", "niji6": "replicate:anime"}``
    (the setting's syntax; versions are written as :func:`parse_prompt_flags` names
    them: ``v6.1``, ``niji6``, ``niji`` for a bare ``--niji``)."""
    models: dict[str, str] = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        version, sep, model = (part.strip() for part in pair.partition("="))
        if not sep or not _VERSION_NAME.match(version) or not _MODEL_NAME.match(model):
            raise ValueError(
                f"{pair.strip()!r} is not version=model (a version like v7, v6.1, niji6 or "
                "niji; a model 'auto' or 'provider:model')"
            )
        models[version] = model
    return models
