"""The prompt stage of moderation: term lists matched against a normalised prompt.

A prompt is refused when one of its words, or a run of them, is a listed term of a
category (named like OpenAI's moderation categories). Matching is on whole words of
the prompt after normalising what people use to slip a word past a list:

- case and compatibility forms (NFKC + casefold: ``ＮＵＤＥ``, ``Nude``);
- accents and invisible characters (``nüde``, ``nu\u200bde``);
- homoglyphs: Cyrillic and Greek letters that look like Latin ones (``nudе`` with a
  Cyrillic ``е``);
- leetspeak inside a word (``nud3``, ``p0rn``, ``$ex``);
- spacing: three or more single letters in a row are read as one word (``n u d e``,
  ``n.u.d.e``, ``n-u-d-e``).

Whole words keep the lists from catching innocent words that contain a term
(``dune`` and ``undone`` are not ``nude``; ``class`` is not ``ass``), which a substring
match would. The homoglyph table is written here rather than taken from a library: the
confusables packages on the index map whole scripts to skeletons (UTS #39) and would
turn far more of a prompt into Latin than the few dozen look-alikes that matter here,
and none of them does the leetspeak and spacing steps. Pure: no I/O."""

# The look-alike letters are this module's subject: ruff's warning about them is not.
# ruff: noqa: RUF001, RUF002, RUF003

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# OpenAI's moderation categories (its `omni-moderation` model's names).
CATEGORIES = (
    "harassment", "harassment/threatening", "hate", "hate/threatening", "illicit",
    "illicit/violent", "self-harm", "self-harm/intent", "self-harm/instructions", "sexual",
    "sexual/minors", "violence", "violence/graphic",
)  # fmt: skip

# The lists a workspace gets unless its configuration turns them off: short, and aimed
# at what an image service refuses whatever its audience. Operators add their own.
BUILTIN_TERMS: Mapping[str, tuple[str, ...]] = {
    "sexual": (
        "nude", "nudes", "naked", "nudity", "nsfw", "porn", "porno", "pornographic",
        "pornography", "hentai", "xxx", "topless", "genitals", "genitalia", "erotic",
        "erotica", "sex", "sexual intercourse", "orgasm",
    ),
    "sexual/minors": ("loli", "lolicon", "shota", "shotacon", "child porn", "jailbait"),
    "violence/graphic": (
        "gore", "gory", "decapitated", "decapitation", "dismembered", "dismemberment",
        "disembowelled", "disemboweled", "mutilated", "mutilation", "severed head",
    ),
    "self-harm": ("self harm", "selfharm", "kill myself", "slit my wrists"),
    "hate": ("swastika", "heil hitler", "white power", "kkk"),
}  # fmt: skip

# Innocent phrases that hold a built-in term (they never count while the built-in
# lists are on).
BUILTIN_ALLOW = (
    "naked eye", "naked mole rat", "naked mole rats", "nude color", "nude colour",
    "nude colors", "nude colours", "nude palette", "nude tones", "nude lipstick",
    "nude heels", "nude shoes",
)  # fmt: skip

# A prompt that pairs one of these with a sexual term is sexual/minors, not sexual.
MINOR_WORDS = frozenset(
    "child children kid kids minor minors underage teen teens teenager teenage preteen "
    "schoolgirl schoolboy toddler infant baby".split()
)

MAX_TERMS = 2000
MAX_TERM_WORDS = 6

# Look-alikes of Latin letters, lower case (NFKC and casefold come first).
_HOMOGLYPHS = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o",
        "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i",
        "ј": "j", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "һ": "h", "ӏ": "l", "ь": "b",
        # Greek
        "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o",
        "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ω": "w", "ς": "s", "σ": "o",
        # Latin look-alikes outside a–z
        "ı": "i", "ł": "l", "ø": "o", "đ": "d", "ħ": "h", "ß": "ss",
    }
)  # fmt: skip
# Digits and signs read as letters, inside a word that has letters too.
_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g",
     "@": "a", "$": "s", "!": "i", "|": "l", "+": "t", "€": "e"}
)  # fmt: skip
_LEET_L = str.maketrans({"1": "l", "!": "l"})  # "1" is an "l" as often as an "i"
_LEET_SIGNS = "@$!|+€"
_LEET_CHARS = frozenset("01345789" + _LEET_SIGNS)
# What separates words: anything but letters, digits and the leet signs (so ``p@rn``
# stays one word and ``n.u.d.e`` is four).
_SEPARATOR = re.compile(r"[^\w" + re.escape(_LEET_SIGNS) + r"]+|_+", re.UNICODE)


def _fold(text: str) -> str:
    """Case, width, accents, invisible characters and homoglyphs folded away."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    decomposed = unicodedata.normalize("NFD", folded)
    kept = "".join(ch for ch in decomposed if unicodedata.category(ch) not in {"Mn", "Me", "Cf"})
    return kept.translate(_HOMOGLYPHS)


def _tokens(text: str, leet: Mapping[int, str]) -> list[str]:
    tokens: list[str] = []
    for word in _SEPARATOR.split(_fold(text)):
        # A sign after a word is punctuation ("wow!"), not a letter.
        word = word.rstrip("!|+")
        if any(ch.isalpha() for ch in word) and any(ch in _LEET_CHARS for ch in word):
            word = word.translate(leet).translate(_LEET)
        word = "".join(ch for ch in word if ch.isalnum())
        if word:
            tokens.append(word)
    return _join_spelled(tokens)


def _join_spelled(tokens: list[str]) -> list[str]:
    """Runs of three or more one-letter words read as one spelled-out word
    (``n u d e``), marked with SPELLED: where such a word starts and ends is not
    known (``a n u d e`` is "a nude"), so a term anywhere inside it counts."""
    out: list[str] = []
    run: list[str] = []
    for token in [*tokens, ""]:
        if len(token) == 1 and token.isalpha():
            run.append(token)
            continue
        if len(run) >= 3:
            out.append(SPELLED + "".join(run))
        else:
            out.extend(run)
        run = []
        if token:
            out.append(token)
    return out


SPELLED = "\x00"


def words(text: str) -> list[list[str]]:
    """The views of ``text`` that are matched: its words with ``1`` read as ``i``,
    then with ``1`` read as ``l`` (the same list when the text has no ``1``)."""
    first = _tokens(text, {})
    second = _tokens(text, _LEET_L)
    return [first] if second == first else [first, second]


def term_words(term: str) -> tuple[str, ...]:
    """A configured term as the words it must match (folded like a prompt)."""
    return tuple(_tokens(term, {}))


@dataclass(frozen=True)
class Verdict:
    """A refusal: the category and the listed term that matched."""

    category: str
    term: str


@dataclass(frozen=True)
class Rules:
    """Compiled term lists: category -> terms, and phrases that never count."""

    terms: Mapping[str, tuple[tuple[str, ...], ...]] = field(default_factory=dict)
    allow: tuple[tuple[str, ...], ...] = ()
    # (category, term) by the term's first word, and by its plural: a prompt's words
    # are looked up one by one, whatever the number of terms.
    index: Mapping[str, tuple[tuple[str, tuple[str, ...]], ...]] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def build(
        cls,
        terms: Mapping[str, Iterable[str]],
        allow: Iterable[str] = (),
        *,
        builtin: bool = True,
    ) -> Rules:
        merged: dict[str, set[tuple[str, ...]]] = {}
        sources = [BUILTIN_TERMS, terms] if builtin else [terms]
        for source in sources:
            for category, listed in source.items():
                for term in listed:
                    found = term_words(term)
                    if found:
                        merged.setdefault(category, set()).add(found)
        allowed = [*BUILTIN_ALLOW, *allow] if builtin else list(allow)
        index: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        for category, compiled in merged.items():
            for words_of in sorted(compiled):
                index.setdefault(words_of[0], []).append((category, words_of))
        return cls(
            terms={c: tuple(sorted(t)) for c, t in merged.items()},
            allow=tuple(w for w in (term_words(a) for a in allowed) if w),
            index={word: tuple(entries) for word, entries in index.items()},
        )

    def starting_with(self, word: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """The terms whose first word is ``word`` (or ``word`` less a plural ending,
        for a one-word term)."""
        found = self.index.get(word, ())
        for stem in (word[:-1], word[:-2]) if word.endswith("s") else ():
            found += tuple(e for e in self.index.get(stem, ()) if len(e[1]) == 1)
        return found

    @property
    def empty(self) -> bool:
        return not self.terms


def screen(rules: Rules, text: str) -> Verdict | None:
    """The first refusal ``text`` earns under ``rules``, or None."""
    if rules.empty or not text:
        return None
    for view in words(text):
        kept = _without_allowed(view, rules.allow)
        verdict = _match(rules, kept)
        if verdict is not None:
            return verdict
    return None


def _without_allowed(view: list[str], allow: tuple[tuple[str, ...], ...]) -> list[str]:
    """The words with every allowed phrase cut out (a gap keeps the sides apart)."""
    out = list(view)
    for phrase in allow:
        n = len(phrase)
        for i in range(len(out) - n + 1):
            if tuple(out[i : i + n]) == phrase:
                out[i : i + n] = [""] * n
    return out


def _match(rules: Rules, view: list[str]) -> Verdict | None:
    found: list[Verdict] = []
    for i, word in enumerate(view):
        if word.startswith(SPELLED):
            found.extend(_inside(rules, word[1:]))
            continue
        for category, term in rules.starting_with(word):
            if _at(view, i, term):
                found.append(Verdict(category, " ".join(term)))
    if not found:
        return None
    worst = min(found, key=lambda v: _precedence(v.category))
    if worst.category == "sexual" and MINOR_WORDS & set(view):
        return Verdict("sexual/minors", worst.term)
    return worst


def _inside(rules: Rules, spelled: str) -> list[Verdict]:
    """The terms found anywhere in a spelled-out word (a few letters: a scan)."""
    return [
        Verdict(category, " ".join(term))
        for category, terms in rules.terms.items()
        for term in terms
        if "".join(term) in spelled
    ]


def _precedence(category: str) -> tuple[int, str]:
    # The gravest first, so a prompt that hits two lists is named for the worse.
    order = ("sexual/minors", "self-harm/instructions", "violence/graphic", "hate/threatening")
    return (order.index(category) if category in order else len(order), category)


def _at(view: list[str], i: int, term: tuple[str, ...]) -> bool:
    n = len(term)
    if i + n > len(view):
        return False
    window = view[i : i + n]
    return window[:-1] == list(term[:-1]) and _same_word(window[-1], term[-1])


def _same_word(word: str, term: str) -> bool:
    # A plural of the term counts as the term ("nudes", "swastikas").
    return word in (term, term + "s", term + "es")
