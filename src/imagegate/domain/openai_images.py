"""OpenAI's Images API, in imagegate's terms: which model names exist, which sizes
and qualities each family accepts, and the ratio and mode each maps to (pure).

OpenAI's value sets differ by model family (``gpt-image-*``, ``dall-e-3``,
``dall-e-2``); a value a family does not accept is refused as OpenAI refuses it, so
code written against OpenAI meets the same errors here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from imagegate.domain.params import MAX_VARIATIONS, Mode


class Family(StrEnum):
    GPT_IMAGE = "gpt-image"
    DALL_E_3 = "dall-e-3"
    DALL_E_2 = "dall-e-2"

    @classmethod
    def of(cls, name: str) -> Family:
        """The family an OpenAI model name belongs to: its value sets. A name of the
        operator's own (neither ``dall-e-*``) follows the newest, ``gpt-image``."""
        if name.startswith("dall-e-3"):
            return cls.DALL_E_3
        if name.startswith("dall-e-2"):
            return cls.DALL_E_2
        return cls.GPT_IMAGE


# Every name maps to imagegate's ``auto`` routing unless IMAGEGATE_OPENAI_MODELS says
# otherwise: a client's model name states a protocol, not a provider.
DEFAULT_MODELS = {
    "gpt-image-1": "auto",
    "gpt-image-1-mini": "auto",
    "gpt-image-1.5": "auto",
    "dall-e-3": "auto",
    "dall-e-2": "auto",
}
# The model of a request that names none. OpenAI's own default is dall-e-2; every
# client this facade serves names its model, and gpt-image's value sets are the ones
# current code is written against.
DEFAULT_MODEL = "gpt-image-1"
MAX_N = 10  # what OpenAI accepts; imagegate makes at most MAX_VARIATIONS per job
MAX_PARTIAL_IMAGES = 3

# size → (ratio, mode or None for "from the quality"), per family.
_SIZES: dict[Family, dict[str, tuple[str, Mode | None]]] = {
    Family.GPT_IMAGE: {
        "auto": ("1:1", None),
        "1024x1024": ("1:1", None),
        "1536x1024": ("3:2", None),
        "1024x1536": ("2:3", None),
    },
    Family.DALL_E_3: {
        "1024x1024": ("1:1", None),
        "1792x1024": ("7:4", None),
        "1024x1792": ("4:7", None),
    },
    Family.DALL_E_2: {
        "256x256": ("1:1", Mode.DRAFT),
        "512x512": ("1:1", Mode.DRAFT),
        "1024x1024": ("1:1", None),
    },
}
_QUALITIES = {
    Family.GPT_IMAGE: ("auto", "low", "medium", "high"),
    Family.DALL_E_3: ("auto", "standard", "hd"),
    Family.DALL_E_2: ("auto", "standard"),
}
# What ``auto`` becomes, as the response reports it.
_AUTO_QUALITY = {
    Family.GPT_IMAGE: "medium",
    Family.DALL_E_3: "standard",
    Family.DALL_E_2: "standard",
}
_MAX_N = {Family.GPT_IMAGE: MAX_N, Family.DALL_E_3: 1, Family.DALL_E_2: MAX_N}

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_TARGET = re.compile(
    r"^(auto|[A-Za-z0-9][A-Za-z0-9._/@+-]{0,63}:[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,127})$"
)


class OpenAIParamError(ValueError):
    """A value OpenAI's API would refuse: the message and the parameter it names."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Shape:
    """What a request's model, size, quality and n become in imagegate."""

    family: Family
    ratio: str
    mode: Mode
    size: str  # as the client asked (``auto`` resolved)
    quality: str  # as the response reports it (``auto`` resolved)


def parse_models(text: str) -> dict[str, str]:
    """``"gpt-image-1=openai:gpt-image-1,my-model=auto"`` → ``{name: imagegate model}``
    (the IMAGEGATE_OPENAI_MODELS syntax: each OpenAI name, ``=``, ``auto`` or
    ``provider:model``)."""
    models: dict[str, str] = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        name, sep, target = (part.strip() for part in pair.partition("="))
        if not sep or not _MODEL_NAME.match(name) or not _TARGET.match(target):
            raise ValueError(
                f"{pair.strip()!r} is not name=model (an OpenAI model name such as "
                "gpt-image-1, then 'auto' or 'provider:model')"
            )
        models[name] = target
    return models


def shape(model: str, size: str | None, quality: str | None, n: int) -> Shape:
    """Check ``size``, ``quality`` and ``n`` against the model's family; raise
    OpenAIParamError naming the parameter as OpenAI does."""
    family = Family.of(model)
    sizes = _SIZES[family]
    chosen_size = size or ("auto" if family is Family.GPT_IMAGE else "1024x1024")
    if chosen_size not in sizes:
        raise OpenAIParamError(
            "size",
            f"Invalid value: '{chosen_size}'. Supported values for {model} are: "
            + ", ".join(f"'{s}'" for s in sizes),
        )
    qualities = _QUALITIES[family]
    chosen_quality = quality or "auto"
    if chosen_quality not in qualities:
        raise OpenAIParamError(
            "quality",
            f"Invalid value: '{chosen_quality}'. Supported values for {model} are: "
            + ", ".join(f"'{q}'" for q in qualities),
        )
    if not 1 <= n <= _MAX_N[family]:
        raise OpenAIParamError("n", f"n must be between 1 and {_MAX_N[family]} for {model}")
    if n > MAX_VARIATIONS:
        raise OpenAIParamError(
            "n",
            f"imagegate makes at most {MAX_VARIATIONS} images per request; ask for "
            f"n <= {MAX_VARIATIONS} (and send several requests for more)",
        )
    ratio, size_mode = sizes[chosen_size]
    reported = _AUTO_QUALITY[family] if chosen_quality == "auto" else chosen_quality
    mode = size_mode or (Mode.DRAFT if reported == "low" else Mode.STANDARD)
    resolved_size = "1024x1024" if chosen_size == "auto" else chosen_size
    return Shape(family, ratio, mode, resolved_size, reported)


def always_b64(model: str) -> bool:
    """gpt-image models answer base64 whatever ``response_format`` says, as OpenAI's do."""
    return Family.of(model) is Family.GPT_IMAGE
