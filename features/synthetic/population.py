"""Ordinary KYC profiles of marketplace customers: identity, contact, documents, business details, security."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import numpy as np
from anyascii import anyascii

from features.documents import with_check_digit
from features.synthetic.names import (
    BUSINESS_WORDS,
    CITIES,
    INDUSTRY_WORDS,
    LEGAL_SUFFIX,
    NATIVE_BUSINESS,
    NATIVE_INDUSTRY,
    NATIVE_WORDS,
    POOL_CODES,
    POOLS,
    STREET_FIRST_POOLS,
    STREETS,
    NamePool,
)
from features.synthetic.world import (
    BOTH,
    BUSINESS,
    BUYER,
    DOCUMENT,
    INDIVIDUAL,
    INDUSTRY,
    NULL,
    SELLER,
    Clock,
    Reference,
    choice,
)
from features.units import US_PER_DAY, US_PER_YEAR

NAT = np.iinfo(np.int64).min  # null timestamp
EARLIEST_EMAIL = 820_454_400_000_000  # 1996-01-01 UTC, microseconds

BUSINESS_SHARE = 0.15
DOCUMENT_ENTRY_ERRORS = 0.005  # share of genuine passport and id numbers with a wrong check digit
ROLE_MIX = {
    INDIVIDUAL: {BUYER: 0.90, SELLER: 0.03, BOTH: 0.07},
    BUSINESS: {BUYER: 0.30, SELLER: 0.45, BOTH: 0.25},
}
INDUSTRY_MIX = {
    "retail": 18,
    "wholesale": 14,
    "electronics": 12,
    "fashion": 10,
    "chemicals": 3,
    "pharmaceuticals": 2,
    "logistics": 6,
    "consulting": 6,
    "software": 6,
    "import_export": 10,
    "jewelry": 3,
    "automotive": 5,
    "food": 4,
    "holding": 1,
}
TLD = {
    "DE": ".de",
    "GB": ".co.uk",
    "FR": ".fr",
    "IT": ".it",
    "ES": ".es",
    "NL": ".nl",
    "PL": ".pl",
    "CN": ".cn",
    "HK": ".com.hk",
    "JP": ".co.jp",
    "KR": ".co.kr",
    "IN": ".in",
    "AU": ".com.au",
    "BR": ".com.br",
    "MX": ".com.mx",
    "TR": ".com.tr",
    "RU": ".ru",
    "AE": ".ae",
    "SG": ".com.sg",
    "CH": ".ch",
    "AT": ".at",
    "BE": ".be",
    "SE": ".se",
    "CA": ".ca",
    "UA": ".ua",
    "CY": ".com.cy",
}
HANDLES = "sunny,blue,lucky,happy,star,shadow,tiger,wolf,angel,dragon,ninja,moon,rocket,pixel,coffee,gamer,travel,music,ocean,silver".split(
    ","
)
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass
class Population:
    """Customer profiles as parallel arrays (index = customer number until ids are assigned).

    Integer-coded columns use ``NULL`` (-1) for null, timestamps (microseconds) use ``NAT``.
    """

    n: int
    ctype: np.ndarray
    role: np.ndarray
    res: np.ndarray
    nat: np.ndarray
    pool: np.ndarray
    gender: np.ndarray
    given: np.ndarray
    family: np.ndarray
    full_name: np.ndarray
    birth: np.ndarray
    email: np.ndarray
    email_seen: np.ndarray
    phone: np.ndarray
    address: np.ndarray
    doc_type: np.ndarray
    doc_number: np.ndarray
    doc_country: np.ndarray
    doc_expiry: np.ndarray
    brn: np.ndarray
    registered: np.ndarray
    industry: np.ndarray
    twofa: np.ndarray
    onboarded: np.ndarray
    last_review: np.ndarray
    declared: np.ndarray

    @property
    def buys(self) -> np.ndarray:
        return self.role != SELLER

    @property
    def sells(self) -> np.ndarray:
        return self.role != BUYER


def day_floor(t: np.ndarray) -> np.ndarray:
    """UTC midnight of each timestamp (nulls stay null)."""
    t = np.asarray(t, dtype=np.int64)
    return np.where(t == NAT, NAT, t - np.mod(t, US_PER_DAY))


# --- names ------------------------------------------------------------------------------------


def name_tokens(
    pool: NamePool,
    gender: int,
    given: int,
    family: int,
    *,
    native: bool,
    variant: int = 0,
    middle: int | None = None,
) -> tuple[str, str, str]:
    """Given name, middle name ("" when none) and family name of one person, in one script."""
    givens = pool.female if gender else pool.male
    g = givens[given % len(givens)]
    fam = pool.family[family % len(pool.family)]
    f = fam.female if gender else fam.male
    middles = pool.middle_female if gender else pool.middle_male
    m = middles[(middle or 0) % len(middles)] if middles else None
    if native:
        return g.native, m.native if m else "", f.native
    return (
        g.latin[variant % len(g.latin)],
        m.latin[variant % len(m.latin)] if m else "",
        f.latin[variant % len(f.latin)],
    )


def person_name(
    pool: NamePool,
    gender: int,
    given: int,
    family: int,
    *,
    native: bool,
    variant: int = 0,
    family_first: bool | None = None,
    middle: int | None = None,
    upper_family: bool = False,
) -> str:
    """Render one person's name from pool indices.

    Args:
        pool: naming tradition.
        gender: 0 male, 1 female (selects given names and gendered family names).
        given, family: indices into the pool's lists (taken modulo their length).
        native: native script (or the Latin spelling with diacritics for Latin pools) vs a Latin
            transliteration.
        variant: which Latin spelling (modulo the number of variants).
        family_first: order override; default is the pool's native order for native script and
            given-name-first for Latin.
        middle: index of a middle name (pools that have them).
        upper_family: write the family name in capitals (as on many lists and passports).
    """
    g, m, f = name_tokens(pool, gender, given, family, native=native, variant=variant, middle=middle)
    if upper_family:
        f = f.upper()
    sep = pool.native_sep if native else " "
    first = (pool.family_first if native else False) if family_first is None else family_first
    if first:
        return sep.join(p for p in (f, m, g) if p)
    return sep.join(p for p in (g, m, f) if p)


def latin_parts(pool: NamePool, gender: int, given: int, family: int) -> tuple[str, str]:
    """Usual Latin given and family name, ASCII-folded and lower-case (for e-mail local parts)."""
    givens = pool.female if gender else pool.male
    fam = pool.family[family % len(pool.family)]
    f = fam.female if gender else fam.male
    g = givens[given % len(givens)].latin[0]
    return _slug(g), _slug(f.latin[0])


def _slug(text: str) -> str:
    return _SLUG.sub("", anyascii(text).lower())


def email_local(rng: np.random.Generator, given: str, family: str, birth_year: int | None) -> str:
    """An e-mail local part derived from a person's name, in one of the common styles."""
    style = rng.integers(0, 8)
    yy = f"{birth_year % 100:02d}" if birth_year else str(rng.integers(1, 99))
    if style == 0:
        return f"{given}.{family}"
    if style == 1:
        return f"{given}{family}"
    if style == 2:
        return f"{given[:1]}{family}"
    if style == 3:
        return f"{family}.{given}"
    if style == 4:
        return f"{given}.{family}{yy}"
    if style == 5:
        return f"{given}{rng.integers(1, 999)}"
    if style == 6:
        return f"{given}_{family}"
    return f"{family}{given[:1]}{yy}"


def random_handle(rng: np.random.Generator) -> str:
    """An e-mail local part unrelated to any name (gaming handles, old nicknames)."""
    a, b = rng.choice(len(HANDLES), 2, replace=False)
    return f"{HANDLES[a]}{rng.choice(['', '.', '_'])}{HANDLES[b]}{rng.integers(1, 9999)}"


# --- documents --------------------------------------------------------------------------------

_DIGITS = np.array(list("0123456789"))
_DIGIT_TEXT = "0123456789"
_LETTERS = np.array(list("ABCDEFGHJKLMNPRSTUVWXYZ"))  # I, O, Q are avoided on most documents
_LETTER_TEXT = "".join(_LETTERS)
# Styles: a letter L or digit D followed by how many, e.g. "L2D7" = two letters then seven digits.
PASSPORT_STYLES = ("L1D8", "D9", "L2D7", "D2L2D5")
NATIONAL_ID_STYLES = ("L3D6", "D9", "L2D7", "L1D8")
DRIVING_LICENCE_STYLES = ("L1D7", "L2D6L2", "D12", "L5D7")
PASSPORT_STYLE = {
    "US": "D9",
    "GB": "D9",
    "DE": "L1D8",
    "FR": "D2L2D5",
    "CN": "L1D8",
    "IN": "L1D7",
    "RU": "D9",
    "JP": "L2D7",
}


def document_body(rng: np.random.Generator, style: str) -> str:
    """A random document number body in a style like ``L2D7`` (two letters then seven digits)."""
    out = []
    for kind, count in _style_parts(style):
        alphabet = _LETTER_TEXT if kind == "L" else _DIGIT_TEXT
        out.extend(alphabet[k] for k in rng.integers(0, len(alphabet), count))
    return "".join(out)


@functools.cache
def _style_parts(style: str) -> tuple[tuple[str, int], ...]:
    return tuple((kind, int(count)) for kind, count in re.findall(r"([LD])(\d+)", style))


def document_number(rng: np.random.Generator, doc_type: str, iso2: str, country_index: int) -> str:
    """A document number: passports and national ids end in a valid ICAO 9303 check digit."""
    if doc_type == "passport":
        style = PASSPORT_STYLE.get(iso2, PASSPORT_STYLES[country_index % len(PASSPORT_STYLES)])
        return with_check_digit(document_body(rng, style))
    if doc_type == "national_id":
        return with_check_digit(
            document_body(rng, NATIONAL_ID_STYLES[country_index % len(NATIONAL_ID_STYLES)])
        )
    # Driving licences follow national formats without an ICAO check digit.
    return document_body(rng, DRIVING_LICENCE_STYLES[country_index % len(DRIVING_LICENCE_STYLES)])


def registration_number(rng: np.random.Generator, iso2: str) -> str:
    """A company registration number in a rough national style."""
    digits = "".join(rng.choice(_DIGITS, 10))
    if iso2 == "GB":
        return "0" + digits[:7]
    if iso2 in ("DE", "AT"):
        return f"HRB {int(digits[:6])}"
    if iso2 == "CN":
        return "91" + digits[:6] + "".join(rng.choice(np.concatenate([_DIGITS, _LETTERS]), 10))
    if iso2 == "FR":
        return digits[:9]
    if iso2 == "US":
        return f"{digits[:2]}-{digits[2:9]}"
    return f"{iso2}{digits[:8]}"


# --- population -------------------------------------------------------------------------------


def make_population(rng: np.random.Generator, ref: Reference, clock: Clock, n: int) -> Population:
    """Draw ``n`` ordinary customer profiles.

    Roughly 15% businesses; individuals mostly buy, businesses mostly sell; residence follows the
    reference ``marketplace_weight`` (``seller_weight`` for business sellers); 18% of customers are
    onboarded during the generated period, the rest over the eight years before it.
    """
    ctype = np.where(rng.random(n) < BUSINESS_SHARE, BUSINESS, INDIVIDUAL)
    role = np.empty(n, dtype=np.int64)
    for kind, mix in ROLE_MIX.items():
        mask = ctype == kind
        role[mask] = choice(rng, mix, int(mask.sum()))
    n_countries = len(ref.iso2)
    res = rng.choice(n_countries, size=n, p=ref.customer_weight)
    business_seller = (ctype == BUSINESS) & (role != BUYER)
    res[business_seller] = rng.choice(n_countries, size=int(business_seller.sum()), p=ref.seller_weight)
    nat = np.where(rng.random(n) < 0.92, res, rng.choice(n_countries, size=n, p=ref.customer_weight))
    nat = np.where(ctype == INDIVIDUAL, nat, NULL)
    pool = np.where(ctype == INDIVIDUAL, ref.pool[np.maximum(nat, 0)], ref.pool[res])
    gender = rng.integers(0, 2, n)

    # Onboarding: 18% during the period, the rest spread over eight years with more recent ones
    # more common (the platform grew).
    during = rng.random(n) < 0.18
    age = np.minimum(rng.exponential(700, n), 8 * 365) + rng.random(n)
    onboarded = np.where(
        during,
        clock.start + (rng.random(n) * (clock.end - clock.start - US_PER_DAY)).astype(np.int64),
        clock.start - (age * US_PER_DAY).astype(np.int64),
    )
    age_at_onboarding = 18 + np.minimum(rng.gamma(2.2, 9.0, n), 62)
    birth = day_floor(
        onboarded - (age_at_onboarding * US_PER_YEAR).astype(np.int64) - rng.integers(0, 365, n) * US_PER_DAY
    )
    birth = np.where(ctype == INDIVIDUAL, birth, NAT)

    industry = np.full(n, NULL, dtype=np.int64)
    is_business = ctype == BUSINESS
    industry[is_business] = [INDUSTRY[i] for i in choice(rng, INDUSTRY_MIX, int(is_business.sum()))]
    registered = np.where(
        is_business,
        day_floor(
            onboarded - (np.maximum(rng.lognormal(np.log(5), 0.9, n), 0.1) * US_PER_YEAR).astype(np.int64)
        ),
        NAT,
    )
    twofa = rng.random(n) < np.where(is_business, 0.65, 0.35) + np.where(role != BUYER, 0.15, 0.0)

    reviewed_again = (onboarded < clock.start - US_PER_YEAR) & (
        rng.random(n) < np.where(is_business, 0.7, 0.45)
    )
    last_review = np.where(
        reviewed_again,
        onboarded + (rng.random(n) * (clock.start - onboarded)).astype(np.int64),
        onboarded,
    )

    pop = Population(
        n=n,
        ctype=ctype,
        role=role,
        res=res,
        nat=nat,
        pool=pool,
        gender=gender,
        given=rng.integers(0, 1 << 20, n),
        family=rng.integers(0, 1 << 20, n),
        full_name=np.empty(n, dtype=object),
        birth=birth,
        email=np.empty(n, dtype=object),
        email_seen=np.full(n, NAT, dtype=np.int64),
        phone=np.empty(n, dtype=object),
        address=np.empty(n, dtype=object),
        doc_type=np.full(n, NULL, dtype=np.int64),
        doc_number=np.full(n, None, dtype=object),
        doc_country=np.full(n, NULL, dtype=np.int64),
        doc_expiry=np.full(n, NAT, dtype=np.int64),
        brn=np.full(n, None, dtype=object),
        registered=registered,
        industry=industry,
        twofa=twofa,
        onboarded=onboarded,
        last_review=last_review,
        declared=np.full(n, np.nan),
    )
    for i in range(n):
        if ctype[i] == INDIVIDUAL:
            fill_person(rng, ref, pop, i)
        else:
            fill_business(rng, ref, pop, i)
        pop.phone[i] = phone_number(rng, ref, int(res[i]))
        pop.address[i] = postal_address(rng, ref, int(res[i]))
    make_emails_unique(pop)
    return pop


def fill_person(rng: np.random.Generator, ref: Reference, pop: Population, i: int) -> None:
    """Name, e-mail, e-mail age and identity document of individual ``i`` (from its pool and dates)."""
    pool = POOLS[POOL_CODES[pop.pool[i]]]
    gender, given, family = int(pop.gender[i]), int(pop.given[i]), int(pop.family[i])
    if pool.latin_script:
        native = rng.random() < 0.9  # the rest typed without diacritics
    else:
        native = rng.random() < pool.native_share
    name = person_name(
        pool,
        gender,
        given,
        family,
        native=native,
        family_first=None if native else bool(pool.family_first and rng.random() < 0.5),
        middle=int(rng.integers(0, 8)),
    )
    pop.full_name[i] = name if (native or not pool.latin_script) else anyascii(name)
    g, f = latin_parts(pool, gender, given, family)
    birth_year = 1970 + int(pop.birth[i] // (365.25 * US_PER_DAY))
    # 6% of genuine customers use an address unrelated to their name (old nicknames).
    local = random_handle(rng) if rng.random() < 0.06 else email_local(rng, g, f, birth_year)
    pop.email[i] = (
        f"{local}@{free_domain(rng, ref, int(pop.res[i])) if rng.random() < 0.85 else isp_domain(rng, ref, int(pop.res[i]))}"
    )
    pop.email_seen[i] = email_first_seen(rng, int(pop.onboarded[i]))

    # Light KYC: some buyers never uploaded a document; sellers always did.
    iso = ref.iso2[pop.nat[i]]
    if pop.role[i] == BUYER and rng.random() < 0.08:
        return
    if ref.region[pop.nat[i]] == "north_america" or iso in ("GB", "AU", "NZ", "IE"):
        mix = {"passport": 0.5, "driving_licence": 0.45, "national_id": 0.05}
    else:
        mix = {"passport": 0.42, "national_id": 0.48, "driving_licence": 0.10}
    doc = str(choice(rng, mix, 1)[0])
    # Documents are issued by the nationality's state, driving licences by the residence's.
    country = int(pop.res[i]) if doc == "driving_licence" else int(pop.nat[i])
    if doc != "driving_licence" and rng.random() < 0.03:
        country = int(pop.res[i])
    pop.doc_type[i] = DOCUMENT[doc]
    pop.doc_country[i] = country
    pop.doc_number[i] = document_number(rng, doc, ref.iso2[country], country)
    if doc != "driving_licence" and rng.random() < DOCUMENT_ENTRY_ERRORS:
        # OCR and data-entry errors: a genuine customer's check digit can be wrong too.
        pop.doc_number[i] = pop.doc_number[i][:-1] + str(
            (int(pop.doc_number[i][-1]) + rng.integers(1, 10)) % 10
        )
    issued = int(pop.onboarded[i]) - int(rng.random() * 9.5 * US_PER_YEAR)
    validity = 15 if doc == "driving_licence" else 10
    pop.doc_expiry[i] = int(day_floor(np.array([issued + validity * US_PER_YEAR]))[0])


def fill_business(rng: np.random.Generator, ref: Reference, pop: Population, i: int) -> None:
    """Legal name, e-mail, registration number and document of business ``i`` (from country and industry)."""
    iso = ref.iso2[pop.res[i]]
    industry = list(INDUSTRY)[pop.industry[i]]
    word = BUSINESS_WORDS[rng.integers(0, len(BUSINESS_WORDS))]
    noun = INDUSTRY_WORDS[industry][rng.integers(0, len(INDUSTRY_WORDS[industry]))]
    suffixes = LEGAL_SUFFIX.get(iso, ("Ltd",))
    name = f"{word} {noun} {suffixes[rng.integers(0, len(suffixes))]}"
    if iso in NATIVE_BUSINESS and rng.random() < 0.4:
        cities, template = NATIVE_BUSINESS[iso]
        words = NATIVE_WORDS[iso]
        name = template.format(
            city=cities[rng.integers(0, len(cities))],
            word=words[rng.integers(0, len(words))],
            industry=NATIVE_INDUSTRY[iso].get(industry, NATIVE_INDUSTRY[iso]["_"]),
        )
    pop.full_name[i] = name
    pop.email[i] = business_email(rng, ref, int(pop.res[i]), word, noun)
    pop.email_seen[i] = email_first_seen(rng, int(pop.onboarded[i]))
    pop.brn[i] = registration_number(rng, iso)
    pop.doc_type[i] = DOCUMENT["business_registration"]
    pop.doc_number[i] = pop.brn[i]
    pop.doc_country[i] = pop.res[i]


def business_email(rng: np.random.Generator, ref: Reference, res: int, word: str, noun: str) -> str:
    """Most businesses write from their own domain; a quarter use free mail."""
    local = ("info", "sales", "contact", "office", "admin", "accounts", "orders")[rng.integers(0, 7)]
    if rng.random() < 0.25:
        return f"{_slug(word)}.{_slug(noun)}{rng.integers(1, 99)}@{free_domain(rng, ref, res)}"
    return f"{local}@{_slug(word)}{_slug(noun)}{TLD.get(ref.iso2[res], '.com')}"


def free_domain(rng: np.random.Generator, ref: Reference, res: int) -> str:
    local = ref.free_domains_local.get(ref.iso2[res], ())
    if local and rng.random() < 0.5:
        return local[rng.integers(0, len(local))]
    top = ref.free_domains_global
    # gmail, yahoo, outlook, hotmail (listed first) dominate; the long tail is rarer.
    cum = _free_domain_cdf(len(top))
    return top[min(int(np.searchsorted(cum, rng.random(), side="right")), len(top) - 1)]


@functools.cache
def _free_domain_cdf(n: int) -> np.ndarray:
    weights = np.where(np.arange(n) < 4, 6.0, 1.0)
    return np.cumsum(weights) / weights.sum()


def isp_domain(rng: np.random.Generator, ref: Reference, res: int) -> str:
    word = BUSINESS_WORDS[rng.integers(0, len(BUSINESS_WORDS))]
    return (
        f"{_slug(word)}{('net', 'mail', 'tel', 'online')[rng.integers(0, 4)]}{TLD.get(ref.iso2[res], '.com')}"
    )


def email_first_seen(rng: np.random.Generator, onboarded: int, new_share: float = 0.15) -> int:
    """When data providers first saw the address: usually years before onboarding, sometimes new."""
    if rng.random() < new_share:
        # Many who open a fresh address do it for the sign-up itself: days, not months.
        return onboarded - int(min(rng.exponential(10.0), 90.0) * US_PER_DAY)
    # Web mail is a 1990s invention: no address is older than 1996.
    return max(onboarded - int(rng.lognormal(np.log(4), 0.8) * US_PER_YEAR), EARLIEST_EMAIL)


def phone_number(rng: np.random.Generator, ref: Reference, res: int) -> str:
    """E.164: ``+``, the residence's calling code, a national number (at most 15 digits in all)."""
    code = ref.calling_code[res]
    length = 10 if len(code) == 1 else 12 - len(code)
    return f"+{code}{rng.integers(10 ** (length - 1), 10**length)}"


def postal_address(rng: np.random.Generator, ref: Reference, res: int) -> str:
    """Street, number and city in the residence country's style (cities of the big markets)."""
    iso = ref.iso2[res]
    code = POOL_CODES[ref.pool[res]]
    streets = STREETS.get(code, STREETS["en"])
    street = streets[rng.integers(0, len(streets))]
    cities = CITIES.get(iso, (ref.name[res],))
    city = cities[rng.integers(0, len(cities))]
    number = int(rng.integers(1, 400))
    line = f"{street} {number}" if code in STREET_FIRST_POOLS else f"{number} {street}"
    if rng.random() < 0.3:
        line += f", apt {rng.integers(1, 120)}"
    return f"{line}, {city}"


def make_emails_unique(pop: Population) -> None:
    """Strangers do not share an address: a repeated address gets a number, as providers require."""
    seen: dict[str, int] = {}
    for i in range(pop.n):
        email = pop.email[i]
        if email is None:
            continue
        count = seen.get(email, 0)
        seen[email] = count + 1
        if count:
            local, _, domain = email.partition("@")
            pop.email[i] = f"{local}{count + 1}@{domain}"
            seen[pop.email[i]] = 1
