"""Reading a prompt: which scene, which elements, which colours. Everything here is a
table lookup plus a stable hash, so the same words always make the same plan."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

from imagegate.render import palette as pal


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
    seed: int = 0
    prompt_key: bytes = b""  # like ``key`` but without the seed
    said: frozenset[str] = frozenset()  # the prompt's words, less the negative prompt's
    avoid: tuple[pal.RGB, ...] = ()  # colours the negative prompt names

    def rng(self, layer: str) -> np.random.Generator:
        """An independent generator per layer: switching one layer off (say, clouds via
        the negative prompt) leaves the others' randomness, and so the layout, unchanged."""
        digest = hashlib.blake2b(self.key + layer.encode(), digest_size=16).digest()
        return np.random.default_rng(int.from_bytes(digest, "big"))

    def spread(self, name: str) -> float:
        """A value in [0, 1) for one seeded choice, see :func:`seed_spread`."""
        return seed_spread(self.prompt_key, name, self.seed)

    def has(self, element: str) -> bool:
        return element in self.elements


def words(text: str | None) -> set[str]:
    """Lower-case words of ``text``, each also without a plural 's'."""
    found = set(_WORD.findall((text or "").lower()))
    return found | {w[:-1] for w in found if len(w) > 3 and w.endswith("s")}


def stable_hash(*parts: str) -> bytes:
    return hashlib.blake2b("\x00".join(parts).encode(), digest_size=16).digest()


_GOLDEN = 2654435769  # 2**32 / golden ratio


def seed_spread(prompt_key: bytes, name: str, seed: int) -> float:
    """A value in [0, 1) that moves by the golden ratio from one seed to the next.

    A job's variations use consecutive seeds; drawn independently, two of them can land
    on nearly the same colour or horizon by chance. Stepped by the golden ratio, any two
    of four consecutive seeds are at least a seventh of the range apart (and neighbours
    over a third), while the start (from the prompt and ``name``) keeps prompts apart.
    """
    start = int.from_bytes(hashlib.blake2b(prompt_key + name.encode(), digest_size=4).digest())
    return ((start + seed * _GOLDEN) % 2**32) / 2**32


def make_plan(prompt: str, negative: str | None, style: str, seed: int) -> Plan:
    said, unsaid = words(prompt), words(negative)
    # Normalising before hashing keeps 'A cat.' and 'a cat' the same picture.
    normalised = " ".join(sorted(_WORD.findall(prompt.lower())))
    key = stable_hash(normalised, str(seed))
    prompt_key = stable_hash(normalised)
    themes = frozenset(t for t, kw in THEMES.items() if said & kw and not unsaid & kw)
    product = _first(PRODUCTS, said - unsaid)
    subject = _first(SUBJECTS, said - unsaid)
    colour_words = [w for w in _WORD.findall(prompt.lower()) if w in COLOURS and w not in unsaid]
    colour = COLOURS[colour_words[0]] if colour_words else None
    prompt_hash = stable_hash(*sorted(said))
    avoid = tuple(COLOURS[w] for w in sorted(unsaid & COLOURS.keys()))
    extra = (seed, prompt_key, frozenset(said - unsaid), avoid)
    plan = Plan(pal.BASE["day"], themes, frozenset(), subject, product, colour, style, key, *extra)
    palette = _palette(themes, colour_words, unsaid, prompt_hash, plan)
    plan = Plan(palette, themes, frozenset(), subject, product, colour, style, key, *extra)
    elements = choose_elements(plan) - _negated(unsaid)
    return Plan(palette, themes, elements, subject, product, colour, style, key, *extra)


def _first(table: dict[str, frozenset[str]], said: set[str]) -> str | None:
    return next((name for name, kw in table.items() if said & kw), None)


def _negated(unsaid: set[str]) -> frozenset[str]:
    return frozenset(e for e, kw in ELEMENT_WORDS.items() if unsaid & kw)


def _palette(
    themes: frozenset[str],
    colour_words: list[str],
    unsaid: set[str],
    prompt_hash: bytes,
    plan: Plan,
) -> pal.Palette:
    names = [_THEME_PALETTE[t] for t in sorted(themes) if t in _THEME_PALETTE]
    if not names:
        names = [pal.FALLBACKS[prompt_hash[0] % len(pal.FALLBACKS)]]
    palette = pal.blend([pal.BASE[n] for n in names], [_WEIGHT.get(n, 1.0) for n in names])
    # Every prompt moves the hue a little, themed or not, so no two prompts look alike.
    reach = 0.035 if len(themes) else 0.09
    turn = (prompt_hash[1] / 255.0 - 0.5) * 2 * reach
    palette = palette.map(lambda c: pal.shift_hue(c, turn))
    palette = _vary(palette, max(names, key=lambda n: _WEIGHT.get(n, 1.0)), plan)
    for i, word in enumerate(dict.fromkeys(colour_words)):
        strength = 0.35 if i == 0 else 0.15
        colour = COLOURS[word]
        palette = palette.map(lambda c, col=colour, s=strength: pal.tint(c, col, s))  # type: ignore[misc]
        palette = palette.map(lambda _c, col=colour: col, only=("accent",))  # type: ignore[misc]
    for word in unsaid & COLOURS.keys():
        palette = palette.map(lambda c, col=COLOURS[word]: pal.suppress(c, col))  # type: ignore[misc]
    return palette


# Palettes a scene's own may lean toward, seed by seed: a dusk that is more violet in
# one variation and more amber in the next, never a different time of day.
_NEIGHBOURS = {
    "day": ("dawn", "mist", "sunset", "forest"),
    "sunset": ("dawn", "fire", "night", "day"),
    "dawn": ("sunset", "day", "mist"),
    "night": ("space", "neon", "mist", "dawn"),
    "neon": ("night", "space", "fire", "sunset"),
    "forest": ("day", "mist", "dawn", "sunset"),
    "snow": ("mist", "dawn", "night", "day"),
    "desert": ("sunset", "day", "fire", "dawn"),
    "fire": ("sunset", "night", "space"),
    "space": ("night", "neon", "dawn", "fire"),
    "mist": ("day", "dawn", "night", "forest"),
}


def _vary(palette: pal.Palette, main: str, plan: Plan) -> pal.Palette:
    """The seed's take on the prompt's palette: a lean toward a related palette, a small
    hue turn, and the accent and light moved further. Applied before colour words, so
    'a red ...' still wins over it."""
    rng = plan.rng("palette")
    r = rng.uniform(0.0, 1.0, 4)
    options = _NEIGHBOURS[main]
    lean = pal.BASE[options[int(plan.spread("lean") * len(options))]]
    palette = pal.blend([palette, lean], [1.0, 0.2 + 0.3 * float(r[0])])
    turn = (plan.spread("hue") - 0.5) * 0.12
    palette = palette.map(lambda c: pal.shift_hue(c, turn))
    accent = (float(r[1]) - 0.5) * 0.24
    palette = palette.map(lambda c: pal.shift_hue(c, accent), only=("accent", "water"))
    white = (1.0, 0.86, 0.7) if r[2] < 0.5 else (0.82, 0.9, 1.0)
    palette = palette.map(lambda c: pal.mix(c, white, 0.1 + 0.2 * float(r[3])), only=("light",))
    # A brighter or a deeper sky: the hour moves a little either way.
    exposure = 0.72 + 0.56 * plan.spread("exposure")
    return palette.map(
        lambda c: pal.clamp((c[0] * exposure, c[1] * exposure, c[2] * exposure)),
        only=("sky_top", "sky_mid"),
    )


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
