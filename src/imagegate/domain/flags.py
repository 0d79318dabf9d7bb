"""Midjourney-style flags inside a prompt: ``--ar 16:9 --seed 7 --no text --draft``."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from imagegate.domain.params import ParamError

# flag → (field it sets, whether it takes a value)
_FLAGS: dict[str, tuple[str, bool]] = {
    "--ar": ("ratio", True),
    "--aspect": ("ratio", True),
    "--seed": ("seed", True),
    "--no": ("negative_prompt", True),
    "--style": ("style", True),
    "--draft": ("mode", False),
}
SUPPORTED_FLAGS = tuple(sorted(_FLAGS))


@dataclass(frozen=True)
class ParsedPrompt:
    text: str
    values: dict[str, str] = field(default_factory=dict)


def parse_prompt_flags(prompt: str) -> ParsedPrompt:
    """Split ``prompt`` into its text and the fields its flags set.

    Flags start at the first ``--`` word; everything before is the prompt text.
    """
    try:
        words = shlex.split(prompt)
    except ValueError:
        words = prompt.split()
    first = next((i for i, w in enumerate(words) if w.startswith("--")), None)
    if first is None:
        return ParsedPrompt(prompt.strip())
    text = " ".join(words[:first]).strip()
    values: dict[str, str] = {}
    i = first
    while i < len(words):
        flag = words[i].lower()
        if flag not in _FLAGS:
            raise ParamError(
                "prompt",
                f"unknown prompt flag {words[i]!r}; supported: {', '.join(SUPPORTED_FLAGS)}",
            )
        name, takes_value = _FLAGS[flag]
        if not takes_value:
            values[name] = "draft"
            i += 1
            continue
        args: list[str] = []
        i += 1
        while i < len(words) and not words[i].startswith("--"):
            args.append(words[i])
            i += 1
        if not args:
            raise ParamError("prompt", f"prompt flag {flag} needs a value")
        if name in values:
            raise ParamError("prompt", f"prompt flag {flag} given twice")
        values[name] = " ".join(args)
    return ParsedPrompt(text, values)
