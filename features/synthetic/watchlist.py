"""Sanctions and PEP list entries, and the name variants (transliteration, order, typos) screening must see through."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from anyascii import anyascii

from features.synthetic.names import BUSINESS_WORDS, INDUSTRY_WORDS, LEGAL_SUFFIX, POOL_CODES, POOLS, NamePool
from features.synthetic.population import NAT, day_floor, name_tokens, person_name
from features.synthetic.world import NULL, Clock, Reference, choice
from features.units import US_PER_DAY, US_PER_YEAR

SANCTION, PEP = 0, 1
# Where sanctioned persons and entities come from (weights; the rest of the world gets 10).
SANCTION_COUNTRIES = {
    "RU": 25,
    "IR": 12,
    "SY": 8,
    "KP": 6,
    "BY": 6,
    "VE": 5,
    "MM": 4,
    "CN": 5,
    "IQ": 4,
    "LB": 4,
    "YE": 3,
    "AF": 3,
    "AE": 3,
    "CU": 2,
    "TR": 2,
    "SD": 2,
    "LY": 2,
    "NI": 1,
}
VARIANTS = ("exact", "transliteration", "swapped_order", "typo")


@dataclass
class Watchlist:
    """List entries as parallel arrays; ``person`` entries keep their name's pool indices."""

    list_type: np.ndarray
    person: np.ndarray
    pool: np.ndarray
    gender: np.ndarray
    given: np.ndarray
    family: np.ndarray
    full_name: np.ndarray
    aliases: np.ndarray
    birth: np.ndarray
    country: np.ndarray
    listed_at: np.ndarray
    used: np.ndarray  # entry already matched to a planted customer


def make_watchlist(rng: np.random.Generator, ref: Reference, clock: Clock, size: int) -> Watchlist:
    """Draw ``size`` list entries: 35% sanctions (15% of them entities), 65% PEPs.

    Names are published in Latin script in several formats ("Given Family", "FAMILY, Given");
    aliases hold the native script and other transliterations.
    """
    list_type = np.where(rng.random(size) < 0.35, SANCTION, PEP)
    person = ~((list_type == SANCTION) & (rng.random(size) < 0.15))
    sanction_w = np.full(len(ref.iso2), 10.0 / len(ref.iso2))
    for iso, w in SANCTION_COUNTRIES.items():
        sanction_w[ref.country(iso)] += w
    sanction_w /= sanction_w.sum()
    country = np.where(
        list_type == SANCTION,
        rng.choice(len(ref.iso2), size=size, p=sanction_w),
        rng.choice(len(ref.iso2), size=size, p=ref.customer_weight),
    )
    gender = (rng.random(size) < np.where(list_type == SANCTION, 0.2, 0.35)).astype(np.int64)
    age = rng.uniform(30, 80, size)
    birth = np.where(
        person & (rng.random(size) < 0.85),
        day_floor(clock.start - (age * US_PER_YEAR).astype(np.int64)),
        NAT,
    )
    years_ago = np.where(list_type == SANCTION, rng.exponential(3.0, size), rng.uniform(0, 10, size))
    listed_at = (
        clock.start
        - (np.minimum(years_ago, 14) * US_PER_YEAR).astype(np.int64)
        - rng.integers(1, 365, size) * US_PER_DAY
    )
    wl = Watchlist(
        list_type=list_type,
        person=person,
        pool=ref.pool[country],
        gender=gender,
        given=rng.integers(0, 1 << 20, size),
        family=rng.integers(0, 1 << 20, size),
        full_name=np.empty(size, dtype=object),
        aliases=np.empty(size, dtype=object),
        birth=birth,
        country=country,
        listed_at=listed_at,
        used=np.zeros(size, dtype=bool),
    )
    for i in range(size):
        if person[i]:
            wl.full_name[i], wl.aliases[i] = _person_entry(rng, wl, i)
        else:
            wl.full_name[i], wl.aliases[i] = _entity_entry(rng, ref, int(country[i]))
    wl.country = np.where(rng.random(size) < 0.92, country, NULL)
    return wl


def _pool(wl: Watchlist, i: int) -> NamePool:
    return POOLS[POOL_CODES[wl.pool[i]]]


def _person_entry(rng: np.random.Generator, wl: Watchlist, i: int) -> tuple[str, str]:
    pool = _pool(wl, i)
    args = (pool, int(wl.gender[i]), int(wl.given[i]), int(wl.family[i]))
    style = rng.choice(3, p=[0.5, 0.3, 0.2])
    plain = person_name(*args, native=False)
    if style == 0:
        name = plain
    elif style == 1:
        given, middle, family = name_tokens(*args, native=False)
        name = f"{family.upper()}, {' '.join(p for p in (given, middle) if p)}"
    else:
        name = person_name(*args, native=False, family_first=True, upper_family=True)
    aliases: list[str] = []
    if not pool.latin_script and rng.random() < 0.7:
        aliases.append(person_name(*args, native=True))
    variant = person_name(*args, native=False, variant=1)
    if variant != plain and rng.random() < 0.7:
        aliases.append(variant)
    if not pool.latin_script and rng.random() < 0.3:
        aliases.append(anyascii(person_name(*args, native=True)))
    if rng.random() < 0.3:
        aliases.append(person_name(*args, native=False, family_first=not pool.family_first))
    unique = [a for k, a in enumerate(aliases) if a and a != name and a not in aliases[:k]]
    return name, "|".join(unique)


def _entity_entry(rng: np.random.Generator, ref: Reference, country: int) -> tuple[str, str]:
    industry = ("import_export", "holding", "logistics", "chemicals", "electronics")[rng.integers(0, 5)]
    word = BUSINESS_WORDS[rng.integers(0, len(BUSINESS_WORDS))]
    noun = INDUSTRY_WORDS[industry][rng.integers(0, len(INDUSTRY_WORDS[industry]))]
    suffixes = LEGAL_SUFFIX.get(ref.iso2[country], ("Ltd", "LLC"))
    name = f"{word} {noun} {suffixes[rng.integers(0, len(suffixes))]}".upper()
    aliases = f"{word} {noun}" if rng.random() < 0.5 else ""
    return name, aliases


def typo(rng: np.random.Generator, text: str, edits: int) -> str:
    """Apply ``edits`` random single-letter edits (substitute, delete, insert, swap) to a name."""
    letters = "aeiounrstlmdhk"
    chars = list(text)
    for _ in range(edits):
        positions = [k for k, c in enumerate(chars) if c.isalpha()]
        if len(positions) < 4:
            break
        k = positions[rng.integers(1, len(positions))]  # keep the initial: typists rarely miss it
        kind = rng.integers(0, 4)
        if kind == 0:
            chars[k] = letters[rng.integers(0, len(letters))]
        elif kind == 1:
            del chars[k]
        elif kind == 2:
            chars.insert(k, chars[k].lower())
        elif k + 1 < len(chars) and chars[k + 1].isalpha():
            chars[k], chars[k + 1] = chars[k + 1], chars[k]
        else:
            chars[k] = letters[rng.integers(0, len(letters))]
    return "".join(chars)


def customer_variant(rng: np.random.Generator, wl: Watchlist, i: int, kind: str) -> str:
    """A customer's document name for the listed person ``i``, in one of ``VARIANTS``.

    ``exact`` is the same name in the usual order; ``transliteration`` another Latin spelling or
    the native script; ``swapped_order`` family name first; ``typo`` one or two letter edits.
    """
    pool = _pool(wl, i)
    args = (pool, int(wl.gender[i]), int(wl.given[i]), int(wl.family[i]))
    plain = person_name(*args, native=False)
    if kind == "exact":
        return plain
    if kind == "transliteration":
        options = [person_name(*args, native=False, variant=1), person_name(*args, native=False, variant=2)]
        if not pool.latin_script:
            options += [person_name(*args, native=True), anyascii(person_name(*args, native=True))]
        else:
            options += [anyascii(person_name(*args, native=True))]
        options = [o for o in options if o != plain] or [plain.upper()]
        return options[rng.integers(0, len(options))]
    if kind == "swapped_order":
        return person_name(*args, native=False, family_first=True)
    if kind == "typo":
        return typo(rng, plain, int(rng.integers(1, 3)))
    raise ValueError(f"unknown variant {kind!r}")


def pick_entries(
    rng: np.random.Generator, wl: Watchlist, list_type: int, count: int, persons_only: bool = True
) -> np.ndarray:
    """Pick ``count`` unused entries of ``list_type`` (marking them used)."""
    eligible = np.flatnonzero((wl.list_type == list_type) & ~wl.used & (wl.person | (not persons_only)))
    picked = rng.choice(eligible, size=min(count, len(eligible)), replace=False)
    wl.used[picked] = True
    return np.sort(picked)


def variant_kinds(rng: np.random.Generator, size: int) -> np.ndarray:
    """How planted customers' names differ from the entry: 35/25/15/25% over ``VARIANTS``."""
    return choice(rng, dict(zip(VARIANTS, (0.35, 0.25, 0.15, 0.25), strict=True)), size)
