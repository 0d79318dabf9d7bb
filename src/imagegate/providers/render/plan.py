"""Reading a prompt: which scene, which elements, which colours. Everything here is a
table lookup plus a stable hash, so the same words always make the same plan."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from imagegate.providers.render import palette as pal


def _table(spec: dict[str, str]) -> dict[str, frozenset[str]]:
    # Word lists as one string each: a tuple per word would be reformatted one per line.
    return {name: frozenset(words.split()) for name, words in spec.items()}


# Scene words. A theme brings a base palette (if named in _THEME_PALETTE) and elements.
THEMES = _table(
    {
        "sunset": "sunset dusk sunrise evening golden twilight autumn warm",
        "dawn": "dawn morning pastel dream dreamy spring soft",
        "night": "night midnight moon moonlight moonlit dark starry stars",
        "city": "city urban street skyline cyberpunk neon downtown building skyscraper tokyo "
        "metropolis pavement alley town",
        "water": "ocean sea beach wet rain lake river water coast harbor reflection puddle wave "
        "shore island rainy pond bay sail",
        "forest": "forest tree wood woods jungle pine woodland grove green",
        "snow": "snow winter ice frost frozen arctic glacier snowy icy",
        "desert": "desert sand dune sahara arid canyon cactus savanna",
        "fire": "fire flame lava volcano inferno burning ember blaze hell",
        "space": "space galaxy nebula cosmos cosmic planet universe astronaut",
        "mountain": "mountain peak alps hill valley cliff summit ridge",
        "mist": "fog mist misty foggy haze hazy cloudy overcast gloomy",
        "rain": "rain rainy storm stormy drizzle wet thunder",
        "mood": "cinematic moody dramatic epic noir film",
    }
)
_THEME_PALETTE = {
    "sunset": "sunset",
    "dawn": "dawn",
    "night": "night",
    "city": "neon",
    "forest": "forest",
    "snow": "snow",
    "desert": "desert",
    "fire": "fire",
    "space": "space",
    "mist": "mist",
}
# Themes that should dominate a blend: a snowy forest is white first and green second.
_WEIGHT = {"snow": 2.5, "fire": 2.0, "desert": 1.5, "space": 1.5}

PRODUCTS = _table(
    {
        "shoe": "shoe sneaker trainer boot footwear heel",
        "watch": "watch clock wristwatch timepiece chronograph",
        "bottle": "bottle perfume wine drink soda beer fragrance serum",
        "box": "product packshot box package phone gadget speaker device",
        "jar": "jar cup mug cream candle cosmetic can pot vase",
    }
)
SUBJECTS = _table(
    {
        "figure": "person man woman girl boy people traveler traveller wanderer knight warrior "
        "hiker figure silhouette explorer lady child",
        "tree": "oak willow baobab sakura cherry",
        "animal": "fox dog cat wolf deer horse animal puppy kitten bear lion tiger rabbit goat "
        "cow sheep elk stag unicorn",
        "boat": "boat ship sailboat yacht canoe sailing fishing",
        "lighthouse": "lighthouse beacon",
        "castle": "castle tower palace fortress kingdom citadel temple",
        "cabin": "cabin house cottage hut home village barn chalet",
    }
)
_COLOUR_SPEC = (
    "red db241f crimson bf0f33 orange ff801a amber ffb226 yellow ffe033 gold f2bf40 "
    "golden f2bf40 green 33b34d emerald 0d9966 teal 0d8c8c cyan 1ad9f2 turquoise 26ccbf "
    "blue 2659e6 navy 141f66 purple 8033bf violet 8c4de6 lavender b399e6 pink ff73b2 "
    "magenta e626bf white f2f2f2 black 0d0d0f brown 734726 silver bfc4cc grey 808085 gray 808085"
)
COLOURS: dict[str, pal.RGB] = {
    name: (int(hx[0:2], 16) / 255, int(hx[2:4], 16) / 255, int(hx[4:6], 16) / 255)
    for name, hx in zip(_COLOUR_SPEC.split()[::2], _COLOUR_SPEC.split()[1::2], strict=True)
}
# Words that switch one element off when they appear in the negative prompt.
ELEMENT_WORDS = _table(
    {
        "sun": "sun sunlight sunshine",
        "moon": "moon",
        "stars": "star stars",
        "clouds": "cloud clouds cloudy",
        "mountains": "mountain mountains peak rock",
        "water": "water ocean sea lake reflection river",
        "trees": "tree trees forest wood",
        "skyline": "city building buildings skyline skyscraper",
        "bokeh": "bokeh light lights blur",
        "rain": "rain",
        "snowfall": "snow snowfall",
        "fog": "fog mist haze",
        "subject": "person people figure human boat house castle animal",
        "grain": "grain noise noisy grainy",
        "vignette": "vignette",
    }
)

_WORD = re.compile(r"[a-z]+")


@dataclass(frozen=True)
class Plan:
    """What to draw, decided from the words alone; ``key`` seeds every random layer."""

    palette: pal.Palette
    themes: frozenset[str]
    elements: frozenset[str]
    subject: str | None
    product: str | None
    colour: pal.RGB | None  # the first colour word, used for products and accents
    style: str
    key: bytes

    def rng(self, layer: str) -> np.random.Generator:
        """An independent generator per layer: switching one layer off (say, clouds via
        the negative prompt) leaves the others' randomness, and so the layout, unchanged."""
        digest = hashlib.blake2b(self.key + layer.encode(), digest_size=16).digest()
        return np.random.default_rng(int.from_bytes(digest, "big"))

    def has(self, element: str) -> bool:
        return element in self.elements


def words(text: str | None) -> set[str]:
    """Lower-case words of ``text``, each also without a plural 's'."""
    found = set(_WORD.findall((text or "").lower()))
    return found | {w[:-1] for w in found if len(w) > 3 and w.endswith("s")}


def stable_hash(*parts: str) -> bytes:
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=16).digest()


def make_plan(prompt: str, negative: str | None, style: str, seed: int) -> Plan:
    said, unsaid = words(prompt), words(negative)
    # Normalising before hashing keeps 'A cat.' and 'a cat' the same picture.
    key = stable_hash(" ".join(sorted(_WORD.findall(prompt.lower()))), str(seed))
    themes = frozenset(t for t, kw in THEMES.items() if said & kw and not unsaid & kw)
    product = _first(PRODUCTS, said - unsaid)
    subject = _first(SUBJECTS, said - unsaid)
    colour_words = [w for w in _WORD.findall(prompt.lower()) if w in COLOURS and w not in unsaid]
    colour = COLOURS[colour_words[0]] if colour_words else None
    prompt_hash = stable_hash(*sorted(said))
    palette = _palette(themes, colour_words, unsaid, prompt_hash)
    plan = Plan(palette, themes, frozenset(), subject, product, colour, style, key)
    elements = choose_elements(plan) - _negated(unsaid)
    return Plan(palette, themes, elements, subject, product, colour, style, key)


def _first(table: dict[str, frozenset[str]], said: set[str]) -> str | None:
    return next((name for name, kw in table.items() if said & kw), None)


def _negated(unsaid: set[str]) -> frozenset[str]:
    return frozenset(e for e, kw in ELEMENT_WORDS.items() if unsaid & kw)


def _palette(
    themes: frozenset[str], colour_words: list[str], unsaid: set[str], prompt_hash: bytes
) -> pal.Palette:
    names = [_THEME_PALETTE[t] for t in sorted(themes) if t in _THEME_PALETTE]
    if not names:
        names = [pal.FALLBACKS[prompt_hash[0] % len(pal.FALLBACKS)]]
    palette = pal.blend([pal.BASE[n] for n in names], [_WEIGHT.get(n, 1.0) for n in names])
    # Every prompt moves the hue a little, themed or not, so no two prompts look alike.
    spread = 0.035 if len(themes) else 0.09
    turn = (prompt_hash[1] / 255.0 - 0.5) * 2 * spread
    palette = palette.map(lambda c: pal.shift_hue(c, turn))
    for i, word in enumerate(dict.fromkeys(colour_words)):
        strength = 0.35 if i == 0 else 0.15
        colour = COLOURS[word]
        palette = palette.map(lambda c, col=colour, s=strength: pal.tint(c, col, s))  # type: ignore[misc]
        palette = palette.map(lambda _c, col=colour: col, only=("accent",))  # type: ignore[misc]
    for word in unsaid & COLOURS.keys():
        palette = palette.map(lambda c, col=COLOURS[word]: pal.suppress(c, col))  # type: ignore[misc]
    return palette


def choose_elements(plan: Plan) -> frozenset[str]:
    """The elements a scene gets: the themes' own, plus seed-dependent extras so two
    seeds of one prompt compose differently."""
    rng, t = plan.rng("elements"), plan.themes
    chance = rng.uniform(0.0, 1.0, 8)
    out = {"grain", "vignette", "clouds"}
    night = bool(t & {"night", "city", "space"}) and "sunset" not in t
    out.add("moon" if night else "sun")
    if night:
        out.add("stars")
    if t & {"mountain", "snow"} or (chance[0] < 0.75 and not t & {"desert", "city"}):
        out.add("mountains")
    if "water" in t or (chance[1] < 0.35 and not t & {"desert", "fire", "space"}):
        out.add("water")
    if "forest" in t or (chance[2] < 0.4 and not t & {"desert", "snow", "city", "space", "fire"}):
        out.add("trees")
    out |= {"skyline", "bokeh"} if "city" in t else set()
    out |= {"dunes"} if "desert" in t else {"hills"}
    out |= {"rain"} if "rain" in t else set()
    out |= {"snowfall"} if "snow" in t and chance[3] < 0.7 else set()
    out |= {"fog"} if "mist" in t or chance[4] < 0.2 else set()
    out |= {"fire"} if "fire" in t else set()
    out |= {"nebula"} if "space" in t else set()
    if plan.subject or chance[5] < 0.45:
        out.add("subject")
    if plan.style == "minimal":
        out -= {"clouds", "trees", "bokeh", "stars", "fog", "grain", "rain", "snowfall", "skyline"}
    if plan.style == "neon":  # glowing outlines of cloud noise read as scribbles
        out -= {"clouds", "fog"}
    if plan.style in ("fantasy", "neon") or (chance[6] < 0.25 and "bokeh" not in out):
        out.add("bokeh")
    if plan.style in ("studio", "minimal"):  # clean sets: nothing floating in front
        out -= {"bokeh", "rain", "snowfall"}
    if "rain" in out:  # no stars through rain clouds
        out.discard("stars")
    return frozenset(out)
