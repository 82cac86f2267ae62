"""Planted patterns: each pattern's documented mechanism, rate and label, and the code that plants it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.documents import check_digit, has_valid_check_digit, likely_transposition_typo
from features.synthetic import population as popmod
from features.synthetic.behaviour import (
    US_PER_MINUTE,
    activity_times,
    add_logins,
    fill_orders,
    twofa_at,
    usd_price,
)
from features.synthetic.names import POOL_CODES, POOLS
from features.synthetic.population import NAT, US_PER_YEAR, day_floor
from features.synthetic.watchlist import (
    PEP,
    SANCTION,
    Watchlist,
    customer_variant,
    pick_entries,
    variant_kinds,
)
from features.synthetic.world import (
    BOTH,
    BUSINESS,
    BUYER,
    CATEGORY,
    CURRENCY,
    DOCUMENT,
    EVENT,
    INDIVIDUAL,
    INDUSTRY,
    LABEL,
    NULL,
    PAYMENT,
    SELLER,
    SOURCE,
    US_PER_DAY,
    US_PER_HOUR,
    World,
    choice,
)


@dataclass(frozen=True)
class PatternSpec:
    """What a planted pattern is, how often it is planted and how (and when) it gets labelled.

    Attributes:
        name: pattern name (``patterns.pattern``).
        mechanism: how it works, for people (rendered into datacard.md).
        rate: share of ``rate_of`` that is planted (rings: rings per customer); per 120 days
            of the period when ``per_period``.
        rate_of: the population ``rate`` refers to.
        label: what gets labelled and with which label and source.
        labelled_share: documented share of instances that get labelled.
        delay_days: (min, max) days from the event to ``known_at``; ``delay_from`` says which event.
        delay_from: the event the delay counts from.
        per_period: whether the rate is per 120 days (events in time) rather than a share.
        minimum: instances planted even when the rate rounds to fewer (tiny datasets).
    """

    name: str
    mechanism: str
    rate: float
    rate_of: str
    label: str
    labelled_share: float
    delay_days: tuple[float, float]
    delay_from: str
    per_period: bool = False
    minimum: int = 0

    def expected_instances(self, eligible: int, days: int) -> int:
        """Instances planted among ``eligible`` candidates in a period of ``days``."""
        return _count(self.rate, eligible, self.minimum, days if self.per_period else None)


SPECS: tuple[PatternSpec, ...] = (
    PatternSpec(
        "account_takeover",
        "An established buyer's account is taken over (2FA-less accounts three times as often): failed "
        "logins, a password reset (75%), login from a new device, mostly from another country, often 2FA "
        "switched off and the shipping address changed, then a burst of 3-20 high-value orders (phones, "
        "electronics, gift cards, computers) within hours. 35% are 'quiet': 2-5 moderate orders over days "
        "from an IP in the victim's country, 40% of them from the victim's own device id (hijacked "
        "session), rarely a reset, 2FA kept. Genuine buyers also reset passwords, change devices, "
        "travel and go on gadget sprees.",
        0.03,
        "buyers onboarded at least 60 days before the period, per 120 days",
        "burst orders: fraud (chargeback 85%, customer_report 15%; 95% of a reported burst); victim not labelled",
        0.88,
        (14.0, 56.0),
        "each order",
        per_period=True,
    ),
    PatternSpec(
        "stolen_goods_seller",
        "A seller account (60% opened days to months before, 40% an aged dormant account) offers phones, "
        "electronics and computers at 30-60% of the reference price (35% subtler, 55-85%; a quarter of "
        "listings at 80-100% to look ordinary) for 2-8 weeks and sells to ordinary buyers, who are "
        "innocent. Genuine discount and refurbished-electronics sellers (8% of electronics sellers, 20% "
        "of new ones) price at 45-80%.",
        0.015,
        "sellers, per 120 days",
        "all the seller's orders: fraud (investigation) once the seller is caught; seller not labelled",
        0.85,
        (20.0, 90.0),
        "the seller's last sale",
        per_period=True,
        minimum=1,
    ),
    PatternSpec(
        "shell_company_ring",
        "3-7 young business customers (import/export, holding, consulting, wholesale, logistics) in "
        "offshore and trade hubs, sharing addresses, phones or devices, pass round-ish amounts around "
        "a cycle every 2-6 days (circular flow), the hub fans payments out to the others, and 0-6 money "
        "mules (ordinary individuals) fan money in to the hub.",
        1 / 1500,
        "customers (one ring per 1,500 customers per 120 days, at least one)",
        "ring orders: money_laundering (investigation); core companies: customer money_laundering",
        0.7,
        (30.0, 120.0),
        "the ring's last order (core companies' labels up to 5 days later)",
        per_period=True,
        minimum=1,
    ),
    PatternSpec(
        "restricted_goods",
        "Buyers with no business reason (individuals, or businesses outside chemicals and "
        "pharmaceuticals) order precursor chemicals, 1-3 times, from chemical sellers. Chemical and "
        "pharmaceutical businesses buy the same category legitimately.",
        0.004,
        "buyers without a business reason for precursors, per 120 days",
        "the precursor orders: restricted_goods (manual_review 60%, investigation 40%)",
        0.8,
        (3.0, 30.0),
        "each order",
        per_period=True,
        minimum=1,
    ),
    PatternSpec(
        "synthetic_identity",
        "A made-up person on a new account: e-mail unrelated to the name (70%; the careful 30% make one "
        "from the made-up name), e-mail first seen 0-3 days before onboarding (60%; else an aged address), "
        "a passport or national id whose check digit is wrong and not a simple transposition (55% of "
        "them); a third share devices, phones or addresses in small clusters. Builds 3-10 small orders "
        "over 3-9 weeks, then busts out: 5-20 high-value orders within days, or (35%) 3-8 over 1-3 weeks.",
        0.008,
        "customers (new identities), per 120 days",
        "bust-out orders: fraud (chargeback or investigation); customer: synthetic_identity (investigation)",
        0.9,
        (30.0, 90.0),
        "each bust-out order (customer label: 30-120 days after the last one)",
        per_period=True,
        minimum=1,
    ),
    PatternSpec(
        "sanctioned_or_pep",
        "Customers who are the listed person of a watchlist entry, under a name variant: 35% exact, 25% "
        "another transliteration or the native script, 15% family name first, 25% one or two typos; "
        "birth date equal 80% of the time, nationality equal 85%. Half of the sanctioned ones are listed "
        "during the period, after onboarding; a confirmed sanctions hit freezes the account (no later activity).",
        0.0015 + 0.005,
        "individuals (0.15% sanctioned, 0.5% PEP; at least one of each)",
        "customer: sanctioned or pep (screening, or investigation months later for missed variants)",
        0.88,
        (0.0, 150.0),
        "onboarding or listing, whichever is later",
        minimum=2,
    ),
    PatternSpec(
        "outgrown_kyc",
        "Buyers (mostly businesses) last reviewed 1-4 years ago whose purchases grow over a 2-6 week "
        "ramp: orders become 4-10 times bigger and 1.5-2.5 times as many, far beyond the monthly volume "
        "they declared. The orders are ordinary, not fraud.",
        0.01,
        "customers (picked among buyers onboarded 18+ months before the period)",
        "customer: kyc_refresh_required (manual_review or investigation); transactions not labelled",
        0.85,
        (14.0, 60.0),
        "the order that first takes their 30-day volume over twice the declared monthly volume",
    ),
    PatternSpec(
        "honest_typo",
        "A genuine customer whose passport or national id number has two adjacent characters swapped "
        "at data entry (the check digit fails, a transposition repairs it); old e-mail matching the "
        "name, ordinary behaviour.",
        0.015,
        "customers with a passport or national id",
        "customer: legitimate (manual_review) for 30%; never fraud",
        0.3,
        (1.0, 10.0),
        "onboarding",
        minimum=1,
    ),
    PatternSpec(
        "watchlist_lookalike",
        "Innocent customers whose name equals or resembles a watchlist entry's (common names), with "
        "their own birth date and nationality: the screening false positives.",
        0.005,
        "individuals",
        "customer: legitimate (manual_review) for 40% (screening hit cleared)",
        0.4,
        (1.0, 10.0),
        "onboarding or listing, whichever is later",
    ),
    PatternSpec(
        "friendly_fraud",
        "Label noise: a genuine order later charged back as fraud by its own buyer (item 'not received').",
        0.0015,
        "ordinary orders",
        "the order: fraud (chargeback 70%, customer_report 30%)",
        1.0,
        (20.0, 60.0),
        "the order",
    ),
)
SPEC: dict[str, PatternSpec] = {s.name: s for s in SPECS}
PATTERNS: tuple[str, ...] = tuple(SPEC)
CODE: dict[str, int] = {name: i for i, name in enumerate(PATTERNS)}

# Rates of events in time (takeovers, thefts, rings, ...) are per this many days of the period.
PERIOD_DAYS = 120

# Stage of a pattern a transaction or customer belongs to (ground truth, for the data card).
STAGES = (
    "takeover_burst",
    "stolen_sale",
    "ring_cycle",
    "ring_fan_out",
    "ring_fan_in",
    "precursor_order",
    "build_up",
    "bust_out",
    "growth",
    "friendly_chargeback",
    "victim",
    "seller",
    "ring_company",
    "mule",
    "buyer",
    "identity",
    "sanctioned",
    "pep",
    "customer",
)
STAGE = {name: i for i, name in enumerate(STAGES)}
# Stages whose transactions are meant to be bad, and the label they carry when caught.
BAD_STAGES = {
    "takeover_burst": "fraud",
    "stolen_sale": "fraud",
    "ring_cycle": "money_laundering",
    "ring_fan_out": "money_laundering",
    "ring_fan_in": "money_laundering",
    "precursor_order": "restricted_goods",
    "bust_out": "fraud",
}

# Victims who notice a takeover and dispute the orders (loud bursts are hard to miss).
LOUD_REPORTED, QUIET_REPORTED, QUIET_SHARE = 0.95, 0.75, 0.35
HIGH_VALUE = {"phones": 30, "electronics": 30, "gift_cards": 20, "computers": 15, "jewelry": 5}
QUIET_TAKEOVER = {"gift_cards": 30, "electronics": 30, "fashion": 20, "beauty": 10, "home": 10}
ATTACKER_COUNTRIES = {
    "NG": 12,
    "RU": 10,
    "UA": 8,
    "VN": 8,
    "ID": 8,
    "BR": 8,
    "RO": 6,
    "PK": 6,
    "CN": 6,
    "US": 6,
    "IN": 6,
    "TR": 4,
    "MA": 3,
    "GH": 3,
}
RING_HUBS = ("AE", "HK", "CY", "GB", "TR", "LV", "SG", "GE", "KZ", "US", "VG", "PA", "MT", "EE", "AM")
RING_INDUSTRIES = {"import_export": 35, "holding": 20, "consulting": 20, "wholesale": 15, "logistics": 10}
RING_GOODS = {
    "industrial_supplies": 30,
    "electronics": 20,
    "general": 20,
    "software": 15,
    "jewelry": 10,
    "gift_cards": 5,
}
ROUND_USD = np.array([1000, 2000, 2500, 3000, 5000, 7500, 9000, 9500, 10000, 15000], dtype=float)
LOW_VALUE = {"books": 25, "beauty": 25, "groceries": 20, "general": 15, "fashion": 15}
OUTGROWN_FACTOR = 2.0  # 30-day volume over declared monthly volume that triggers a review
BRACKETS = np.array(
    [
        100,
        250,
        500,
        1_000,
        2_500,
        5_000,
        10_000,
        25_000,
        50_000,
        100_000,
        250_000,
        500_000,
        1e6,
        2.5e6,
        5e6,
        1e7,
    ]
)


# --- helpers ----------------------------------------------------------------------------------


def _count(rate: float, population: int, minimum: int = 0, period_days: int | None = None) -> int:
    """How many instances to plant: ``rate * population``, per 120 days when ``period_days`` is given."""
    scale = period_days / PERIOD_DAYS if period_days is not None else 1.0
    return max(minimum, int(round(rate * population * scale))) if population else 0


def _pick(world: World, candidates: np.ndarray, count: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Pick ``count`` customers among ``candidates`` not yet in a pattern, and mark them taken."""
    free = candidates[~world.taken[candidates]]
    count = min(count, len(free))
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    p = (
        None
        if weights is None
        else weights[~world.taken[candidates]] / weights[~world.taken[candidates]].sum()
    )
    picked = np.sort(world.rng.choice(free, size=count, replace=False, p=p))
    world.taken[picked] = True
    return picked


def _member(world: World, pattern: str, who: np.ndarray, instance: np.ndarray | int, stage: str) -> None:
    world.members.add(customer=np.asarray(who), pattern=CODE[pattern], instance=instance, stage=STAGE[stage])


def _label(
    world: World,
    entity: str,
    refs: np.ndarray,
    label: str,
    known_at: np.ndarray,
    source: np.ndarray | str,
    pattern: str,
    instance: np.ndarray | int,
) -> None:
    refs = np.asarray(refs)
    if len(refs) == 0:
        return
    source = (
        np.array([SOURCE[s] for s in np.atleast_1d(source)])
        if not isinstance(source, str)
        else SOURCE[source]
    )
    world.labels.add(
        entity=0 if entity == "transaction" else 1,
        ref=refs,
        label=LABEL[label],
        known_at=np.asarray(known_at, dtype=np.int64),
        source=source,
        pattern=CODE[pattern],
        instance=instance,
    )


def _days(rng: np.random.Generator, low: float, high: float, size: int | None = None) -> np.ndarray | int:
    """Uniform durations in [low, high) days, in microseconds (an int when ``size`` is None)."""
    if size is None:
        return int(rng.uniform(low, high) * US_PER_DAY)
    return (rng.uniform(low, high, size) * US_PER_DAY).astype(np.int64)


def _category_sellers(world: World) -> dict[int, np.ndarray]:
    """Ordinary sellers listing each category (for fraudsters shopping by category), cached per run."""
    if world.category_sellers is not None:
        return world.category_sellers
    hab = world.habits
    sellers = np.flatnonzero(hab.sells_ordinarily)
    out = {}
    for cat in range(len(CATEGORY)):
        listed = sellers[(hab.catalogue[sellers, 0] == cat) | (hab.catalogue[sellers, 1] == cat)]
        out[cat] = listed if len(listed) else sellers
    world.category_sellers = out
    return out


def _sellers_for(world: World, cats: np.ndarray, t: np.ndarray) -> np.ndarray:
    """A popularity-weighted seller listing each order's category, onboarded before the order."""
    rng, hab, pop = world.rng, world.habits, world.pop
    pools = _category_sellers(world)
    out = np.empty(len(cats), dtype=np.int64)
    for cat in np.unique(cats):
        rows = np.flatnonzero(cats == cat)
        pool = pools[int(cat)]
        w = hab.popularity[pool]
        out[rows] = pool[rng.choice(len(pool), size=len(rows), p=w / w.sum())]
        # A seller who joined after the order could not have sold it: take an older one.
        late = rows[pop.onboarded[out[rows]] >= t[rows]]
        older = pool[pop.onboarded[pool] < world.clock.start]
        if len(late) and len(older):
            out[late] = older[rng.integers(0, len(older), len(late))]
    return out


def set_onboarded(world: World, i: int, t: int) -> None:
    """Move customer ``i``'s onboarding to ``t`` and keep every date of the profile consistent."""
    rng, pop = world.rng, world.pop
    pop.onboarded[i] = t
    pop.last_review[i] = t
    if pop.birth[i] != NAT and pop.birth[i] > t - 18 * US_PER_YEAR:
        pop.birth[i] = int(day_floor(np.array([t - int(rng.uniform(19, 50) * US_PER_YEAR)]))[0])
    if pop.registered[i] != NAT:
        pop.registered[i] = min(pop.registered[i], int(day_floor(np.array([t - US_PER_DAY * 30]))[0]))
    pop.email_seen[i] = min(pop.email_seen[i], t)
    if pop.doc_expiry[i] != NAT and pop.doc_expiry[i] < t + 90 * US_PER_DAY:
        pop.doc_expiry[i] = int(day_floor(np.array([t + int(rng.uniform(1, 9) * US_PER_YEAR)]))[0])


def invalid_document_number(rng: np.random.Generator, number: str) -> str:
    """Replace the check digit by a wrong one that no adjacent transposition would repair."""
    body = number[:-1]
    digits = [k for k, char in enumerate(body) if char.isdigit()]
    for _ in range(50):
        right = int(check_digit(body))
        for wrong in rng.permutation(10):
            candidate = body + str(wrong)
            if wrong != right and not likely_transposition_typo(candidate):
                return candidate
        # Every wrong digit is one swap away from valid (rare): redraw a digit of the body.
        k = digits[int(rng.integers(0, len(digits)))]
        body = body[:k] + str(rng.integers(0, 10)) + body[k + 1 :]
    raise RuntimeError(f"could not invalidate {number!r}")


def transposed_document_number(rng: np.random.Generator, number: str) -> str | None:
    """Swap two adjacent different characters so that the check digit fails (an honest typo)."""
    for k in rng.permutation(len(number) - 1):
        if number[k] == number[k + 1]:
            continue
        typo = number[:k] + number[k + 1] + number[k] + number[k + 2 :]
        if not has_valid_check_digit(typo) and likely_transposition_typo(typo):
            return typo
    return None


def _rename(world: World, i: int, pool: int, gender: int, given: int, family: int, full_name: str) -> None:
    """Give customer ``i`` another name and an e-mail address derived from it."""
    rng, pop, ref = world.rng, world.pop, world.ref
    pop.pool[i], pop.gender[i], pop.given[i], pop.family[i] = pool, gender, given, family
    pop.full_name[i] = full_name
    g, f = popmod.latin_parts(POOLS[POOL_CODES[pool]], gender, given, family)
    birth_year = 1970 + int(pop.birth[i] // (365.25 * US_PER_DAY)) if pop.birth[i] != NAT else None
    local = popmod.email_local(rng, g, f, birth_year)
    pop.email[i] = f"{local}{rng.integers(1, 99)}@{popmod.free_domain(rng, ref, int(pop.res[i]))}"


def _new_document(world: World, i: int, doc: str, country: int) -> None:
    pop, ref = world.pop, world.ref
    pop.doc_type[i] = DOCUMENT[doc]
    pop.doc_country[i] = country
    pop.doc_number[i] = popmod.document_number(world.rng, doc, ref.iso2[country], country)
    issued = int(pop.onboarded[i]) - int(world.rng.random() * 5 * US_PER_YEAR)
    pop.doc_expiry[i] = int(day_floor(np.array([issued + 10 * US_PER_YEAR]))[0])


def _order_logins(
    world: World, who: np.ndarray, t: np.ndarray, dev: np.ndarray, ip: np.ndarray, share: float
) -> None:
    rng = world.rng
    mask = rng.random(len(who)) < share
    back = rng.integers(US_PER_MINUTE, 15 * US_PER_MINUTE, int(mask.sum()))
    add_logins(world, who[mask], t[mask] - back, dev[mask], ip[mask], failed_share=0.0)


# --- patterns ---------------------------------------------------------------------------------


class AccountTakeover:
    """Pattern ``account_takeover`` (see ``SPEC``)."""

    name = "account_takeover"

    def profile(self, world: World) -> None:
        pop, clock, rng = world.pop, world.clock, world.rng
        eligible = np.flatnonzero(pop.buys & (pop.onboarded < clock.start - 60 * US_PER_DAY))
        self.eligible = len(eligible)
        # Accounts without 2FA are three times as likely to be taken over.
        weights = np.where(pop.twofa[eligible], 1.0, 3.0)
        self.victims = _pick(
            world, eligible, SPEC[self.name].expected_instances(len(eligible), clock.days), weights
        )
        k = len(self.victims)
        span = max(clock.end - clock.start - 4 * US_PER_DAY, US_PER_DAY)
        self.t0 = clock.start + 2 * US_PER_DAY + (rng.random(k) * span).astype(np.int64)
        self.quiet = rng.random(k) < QUIET_SHARE

    def activity(self, world: World) -> None:
        rng, ref, pop, hab = world.rng, world.ref, world.pop, world.habits
        for k, (victim, t0, quiet) in enumerate(zip(self.victims, self.t0, self.quiet, strict=True)):
            _member(world, self.name, [victim], k, "victim")
            home = int(pop.res[victim])
            foreign = rng.random() < (0.15 if quiet else 0.8)
            country = int(ref.country(str(choice(rng, ATTACKER_COUNTRIES, 1)[0]))) if foreign else home
            if country == home and foreign:
                country = int(ref.country("NG")) if home != ref.country("NG") else int(ref.country("RU"))
            # Session hijacking and fingerprint spoofing reuse the victim's own device id.
            dev = int(hab.dev[victim, 0]) if (quiet and rng.random() < 0.4) else int(world.devices.new(1)[0])
            ip = int(world.ips.new(rng, np.array([country]))[0])
            one = np.array([victim])

            def event(kind: str, t: int, _one=one, _dev=dev, _ip=ip) -> None:
                world.events.add(t=np.array([t]), customer=_one, type=EVENT[kind], dev=_dev, ip=_ip)

            for _ in range(rng.poisson(0.5 if quiet else 2.0)):
                event("login_failed", t0 - int(rng.integers(2, 60)) * US_PER_MINUTE)
            if rng.random() < (0.25 if quiet else 0.75):
                event("password_reset", t0)
            event("login", t0 + 2 * US_PER_MINUTE)
            if dev != hab.dev[victim, 0] and rng.random() < (0.25 if quiet else 0.6):
                event("device_change", t0 + 3 * US_PER_MINUTE)
            if twofa_at(world, one, np.array([t0]))[0] and rng.random() < (0.1 if quiet else 0.7):
                event("twofa_disabled", t0 + 5 * US_PER_MINUTE)
            if not quiet and rng.random() < 0.3:
                event("email_change", t0 + 6 * US_PER_MINUTE)
            moved = rng.random() < (0.2 if quiet else 0.5)
            if moved:
                event("address_change", t0 + 7 * US_PER_MINUTE)

            n = int(rng.integers(2, 6)) if quiet else int(min(20, 2 + rng.geometric(0.17)))
            window = (rng.uniform(1, 168) if quiet else rng.uniform(1, 36)) * US_PER_HOUR
            t = np.sort(t0 + 8 * US_PER_MINUTE + (rng.random(n) * window).astype(np.int64))
            t = np.minimum(t, world.clock.end - 1)
            cats = np.array([CATEGORY[c] for c in choice(rng, QUIET_TAKEOVER if quiet else HIGH_VALUE, n)])
            seller = _sellers_for(world, cats, t)
            buyer = np.full(n, victim)
            premium = 0.0 if quiet else 0.4
            unit = ref.cat_price[cats] * np.exp(premium + 0.4 * rng.standard_normal(n))
            gift = cats == CATEGORY["gift_cards"]
            qty = np.where(gift & ~quiet, rng.integers(1, 11, n), np.where(quiet, 1, rng.integers(1, 3, n)))
            pay = np.where(
                rng.random(n) < 0.7,
                PAYMENT["card"],
                np.where(rng.random(n) < 0.5, PAYMENT["wallet"], PAYMENT["marketplace_balance"]),
            )
            ship = np.full(n, country if (moved and foreign and rng.random() < 0.6) else home)
            uid = world.tx.add(
                t=t,
                buyer=buyer,
                seller=seller,
                cat=cats,
                unit_usd=unit,
                qty=qty,
                cur=hab.cur[victim],
                pay=pay,
                ship=ship,
                dev=dev,
                ip=ip,
                pattern=CODE[self.name],
                instance=k,
                stage=STAGE["takeover_burst"],
            )
            _order_logins(world, buyer, t, np.full(n, dev), np.full(n, ip), 0.5)
            if rng.random() < (QUIET_REPORTED if quiet else LOUD_REPORTED):
                keep = rng.random(n) < 0.95
                source = np.where(rng.random(n) < 0.85, "chargeback", "customer_report")[keep]
                _label(
                    world,
                    "transaction",
                    uid[keep],
                    "fraud",
                    t[keep] + _days(rng, 14, 56, n)[keep],
                    source,
                    self.name,
                    k,
                )


class StolenGoodsSeller:
    """Pattern ``stolen_goods_seller`` (see ``SPEC``)."""

    name = "stolen_goods_seller"

    def profile(self, world: World) -> None:
        rng, pop, clock = world.rng, world.pop, world.clock
        sellers = np.flatnonzero(pop.sells)
        self.eligible = len(sellers)
        self.sellers = _pick(world, sellers, SPEC[self.name].expected_instances(len(sellers), clock.days))
        k = len(self.sellers)
        span = max(clock.end - clock.start - 10 * US_PER_DAY, US_PER_DAY)
        self.start = clock.start + (rng.random(k) * span).astype(np.int64)
        self.end = np.minimum(self.start + _days(rng, 14, 56, k), clock.end)
        self.discount = np.where(rng.random(k) < 0.35, rng.uniform(0.55, 0.85, k), rng.uniform(0.3, 0.6, k))
        for i, start in zip(self.sellers, self.start, strict=True):
            world.scripted[i] = True
            pop.role[i] = SELLER
            if pop.ctype[i] == BUSINESS:
                pop.industry[i] = INDUSTRY[
                    str(choice(rng, {"electronics": 7, "retail": 2, "wholesale": 1}, 1)[0])
                ]
            # Most are fresh accounts; some are dormant or bought accounts with age.
            age = _days(rng, 3, 120) if rng.random() < 0.6 else _days(rng, 180, 1100)
            set_onboarded(world, int(i), int(start - age))
            if rng.random() < 0.5:
                pop.email_seen[i] = pop.onboarded[i] - _days(rng, 0, 30)

    def activity(self, world: World) -> None:
        rng, ref, pop, hab = world.rng, world.ref, world.pop, world.habits
        buyers = np.flatnonzero((hab.rate > 0) & ~world.scripted)
        weight = hab.rate[buyers] / hab.rate[buyers].sum()
        goods = {"phones": 40, "electronics": 35, "computers": 20, "gift_cards": 5}
        for k, (seller, start, end, discount) in enumerate(
            zip(self.sellers, self.start, self.end, self.discount, strict=True)
        ):
            _member(world, self.name, [seller], k, "seller")
            days = max((end - start) / US_PER_DAY, 1.0)
            n = max(3, rng.poisson(rng.uniform(0.8, 2.2) * days))
            who = buyers[rng.choice(len(buyers), size=n, p=weight)]
            t = np.sort(start + (rng.random(n) * (end - start)).astype(np.int64))
            t = np.maximum(t, pop.onboarded[who] + US_PER_HOUR)
            orders = fill_orders(world, who, t, seller=np.full(n, seller))
            cats = np.array([CATEGORY[c] for c in choice(rng, goods, n)])
            orders["cat"] = cats
            # A quarter of the listings are priced normally, to look like an ordinary shop.
            price = np.where(rng.random(n) < 0.25, rng.uniform(0.8, 1.0, n), discount)
            orders["unit_usd"] = ref.cat_price[cats] * np.exp(0.25 * rng.standard_normal(n)) * price
            orders["qty"] = np.where(rng.random(n) < 0.85, 1, rng.integers(2, 4, n))
            uid = world.tx.add(**orders, pattern=CODE[self.name], instance=k, stage=STAGE["stolen_sale"])
            _order_logins(world, who, orders["t"], orders["dev"], orders["ip"], 0.55)
            # The seller manages listings from one device, sometimes abroad.
            logins = np.sort(start + (rng.random(int(days)) * (end - start)).astype(np.int64))
            own = np.full(len(logins), seller)
            add_logins(
                world,
                own,
                logins,
                np.full(len(logins), hab.dev[seller, 0]),
                np.full(len(logins), hab.ip[seller, 0]),
            )
            if rng.random() < SPEC[self.name].labelled_share:
                known = int(orders["t"].max()) + _days(rng, 20, 90)
                _label(world, "transaction", uid, "fraud", np.full(n, known), "investigation", self.name, k)


class ShellCompanyRing:
    """Pattern ``shell_company_ring`` (see ``SPEC``)."""

    name = "shell_company_ring"

    def profile(self, world: World) -> None:
        rng, pop, ref, clock = world.rng, world.pop, world.ref, world.clock
        n_rings = SPEC[self.name].expected_instances(pop.n, clock.days)
        self.eligible = pop.n
        businesses = np.flatnonzero(pop.ctype == BUSINESS)
        individuals = np.flatnonzero((pop.ctype == INDIVIDUAL) & pop.buys & (pop.onboarded < clock.start))
        span = max(clock.end - clock.start - 20 * US_PER_DAY, US_PER_DAY)
        self.rings: list[dict] = []
        for _ in range(n_rings):
            core = _pick(world, businesses, int(rng.integers(3, 8)))
            if len(core) < 2:
                break
            start = clock.start + int(rng.random() * span)
            end = min(start + int(_days(rng, 25, 80)), clock.end)
            mules = _pick(world, individuals, int(rng.integers(0, 7)))
            hubs = ref.countries(RING_HUBS)
            hub_res = hubs[rng.integers(0, len(hubs))]
            address = popmod.postal_address(rng, ref, int(hub_res))
            phone = popmod.phone_number(rng, ref, int(hub_res))
            share_address, share_phone = rng.random() < 0.6, rng.random() < 0.25
            sharing = int(rng.integers(2, len(core) + 1))  # members at one address
            for j, i in enumerate(core):
                world.scripted[i] = True
                pop.role[i] = BOTH
                pop.industry[i] = INDUSTRY[str(choice(rng, RING_INDUSTRIES, 1)[0])]
                # Companies sharing an address are registered in the same hub.
                pop.res[i] = hub_res if (share_address and j < sharing) else hubs[rng.integers(0, len(hubs))]
                pop.pool[i] = ref.pool[pop.res[i]]
                popmod.fill_business(rng, ref, pop, int(i))
                set_onboarded(world, int(i), int(start - _days(rng, 10, 1000)))
                pop.registered[i] = int(day_floor(np.array([pop.onboarded[i] - _days(rng, 60, 730)]))[0])
                if not (share_address and j < sharing):
                    pop.address[i] = popmod.postal_address(rng, ref, int(pop.res[i]))
                else:
                    pop.address[i] = address
                pop.phone[i] = (
                    phone
                    if (share_phone and pop.res[i] == hub_res)
                    else popmod.phone_number(rng, ref, int(pop.res[i]))
                )
                if rng.random() < 0.5:
                    pop.email[i] = (
                        f"{pop.email[i].split('@')[0].replace('.', '')}{rng.integers(1, 999)}@{popmod.free_domain(rng, ref, int(pop.res[i]))}"
                    )
                    pop.email_seen[i] = pop.onboarded[i] - _days(rng, 0, 200)
            self.rings.append({"core": core, "mules": mules, "start": start, "end": end})

    def activity(self, world: World) -> None:
        rng, ref, pop, hab = world.rng, world.ref, world.pop, world.habits
        for k, ring in enumerate(self.rings):
            core, mules, start, end = ring["core"], ring["mules"], ring["start"], ring["end"]
            _member(world, self.name, core, k, "ring_company")
            _member(world, self.name, mules, k, "mule")
            shared = world.devices.new(int(rng.integers(1, 3))) if rng.random() < 0.7 else None
            operator = int(pop.res[core[0]]) if rng.random() < 0.5 else None
            op_ips = world.ips.new(rng, np.full(2, operator)) if operator is not None else None

            rows: dict[str, list] = {key: [] for key in ("t", "buyer", "seller", "local", "stage")}

            def pay(t: int, buyer: int, seller: int, usd: float, stage: str, _rows=rows) -> None:
                _rows["t"].append(t)
                _rows["buyer"].append(buyer)
                _rows["seller"].append(seller)
                _rows["local"].append(usd)
                _rows["stage"].append(STAGE[stage])

            t = start
            while t < end:
                value = ROUND_USD[rng.integers(0, len(ROUND_USD))]
                order = rng.permutation(core)
                hop_t = t
                for h in range(len(order)):
                    hop_t += int(_days(rng, 0.25, 1.5))
                    pay(
                        hop_t,
                        int(order[h]),
                        int(order[(h + 1) % len(order)]),
                        value * (1 - 0.02) ** h,
                        "ring_cycle",
                    )
                t += int(_days(rng, 2, 6))
            for _ in range(int(rng.integers(1, 3))):
                t = start + int(rng.random() * (end - start))
                part = ROUND_USD[rng.integers(0, len(ROUND_USD))] / (len(core) - 1)
                for other in core[1:]:
                    pay(
                        t + int(rng.integers(0, 6 * US_PER_HOUR)),
                        int(core[0]),
                        int(other),
                        part,
                        "ring_fan_out",
                    )
            for mule in mules:
                for _ in range(int(rng.integers(2, 7))):
                    usd = float(rng.choice([200, 300, 500, 1000, 1500, 2000]))
                    pay(
                        start + int(rng.random() * (end - start)), int(mule), int(core[0]), usd, "ring_fan_in"
                    )

            t = np.minimum(np.array(rows["t"], dtype=np.int64), world.clock.end - 1)
            buyer = np.array(rows["buyer"], dtype=np.int64)
            seller = np.array(rows["seller"], dtype=np.int64)
            n = len(t)
            cur = np.where(rng.random(n) < 0.5, CURRENCY["USD"], hab.cur[buyer])
            local, qty = _round_amounts(rng, np.array(rows["local"]) / ref.usd_per_unit[cur], cur)
            is_core = np.isin(buyer, core)
            dev = np.where(
                is_core,
                shared[rng.integers(0, len(shared), n)] if shared is not None else hab.dev[buyer, 0],
                hab.dev[buyer, 0],
            )
            ip = np.where(
                is_core,
                op_ips[rng.integers(0, 2, n)] if op_ips is not None else hab.ip[buyer, 0],
                hab.ip[buyer, 0],
            )
            cats = np.array([CATEGORY[c] for c in choice(rng, RING_GOODS, n)])
            pay_method = np.where(
                rng.random(n) < 0.7,
                PAYMENT["bank_transfer"],
                np.where(rng.random(n) < 0.67, PAYMENT["marketplace_balance"], PAYMENT["card"]),
            )
            uid = world.tx.add(
                t=t,
                buyer=buyer,
                seller=seller,
                cat=cats,
                unit_usd=local * ref.usd_per_unit[cur],
                unit_local=local,
                qty=qty,
                cur=cur,
                pay=pay_method,
                ship=pop.res[buyer],
                dev=dev,
                ip=ip,
                pattern=CODE[self.name],
                instance=k,
                stage=np.array(rows["stage"]),
            )
            _order_logins(world, buyer, t, dev, ip, 0.7)
            if rng.random() < SPEC[self.name].labelled_share:
                known = int(t.max()) + int(_days(rng, 30, 120))
                _label(
                    world,
                    "transaction",
                    uid,
                    "money_laundering",
                    np.full(n, known),
                    "investigation",
                    self.name,
                    k,
                )
                _label(
                    world,
                    "customer",
                    core,
                    "money_laundering",
                    known + _days(rng, 0, 5, len(core)),
                    "investigation",
                    self.name,
                    k,
                )


def _round_amounts(
    rng: np.random.Generator, amount: np.ndarray, cur: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Round amounts to two significant digits and split them into a round unit price and quantity."""
    magnitude = 10.0 ** (np.floor(np.log10(np.maximum(amount, 1))) - 1)
    total = np.maximum(np.round(amount / magnitude) * magnitude, 10)
    qty = rng.choice([1, 10, 20, 50, 100], size=len(total))
    ok = np.isclose(np.round(total / qty, 2) * qty, total) & (total / qty >= 1)
    qty = np.where(ok, qty, 1)
    return np.round(total / qty, 2), qty


class RestrictedGoods:
    """Pattern ``restricted_goods`` (see ``SPEC``)."""

    name = "restricted_goods"

    def profile(self, world: World) -> None:
        pop, rng = world.pop, world.rng
        # Make sure some ordinary chemical sellers exist to buy precursors from.
        industry = pop.industry
        chem = np.flatnonzero(
            (pop.ctype == BUSINESS) & pop.sells & np.isin(industry, [INDUSTRY["chemicals"]])
        )
        if len(chem) < 2:
            candidates = np.flatnonzero((pop.ctype == BUSINESS) & pop.sells & ~world.taken)
            for i in rng.choice(candidates, size=min(2, len(candidates)), replace=False):
                pop.industry[i] = INDUSTRY["chemicals"]
        reason = world.ref.precursor_reason[np.maximum(industry, 0)] & (industry != NULL)
        eligible = np.flatnonzero(pop.buys & ~reason)
        self.eligible = len(eligible)
        self.buyers = _pick(
            world, eligible, SPEC[self.name].expected_instances(len(eligible), world.clock.days)
        )

    def activity(self, world: World) -> None:
        rng, pop, hab, clock = world.rng, world.pop, world.habits, world.clock
        chem = np.flatnonzero(
            hab.sells_ordinarily
            & (
                (hab.catalogue[:, 0] == CATEGORY["precursor_chemicals"])
                | (hab.catalogue[:, 1] == CATEGORY["precursor_chemicals"])
            )
        )
        if len(chem) == 0:
            chem = np.flatnonzero(hab.sells_ordinarily & (pop.industry == INDUSTRY["chemicals"]))
        if len(chem) and (pop.onboarded[chem] < clock.start).any():
            chem = chem[pop.onboarded[chem] < clock.start]
        counts = rng.integers(1, 4, len(self.buyers))
        t = activity_times(world, self.buyers, counts, np.maximum(pop.onboarded[self.buyers], clock.start))
        who = np.repeat(self.buyers, counts)
        instance = np.repeat(np.arange(len(self.buyers)), counts)
        n = len(who)
        orders = fill_orders(world, who, t, seller=chem[rng.integers(0, len(chem), n)])
        orders["cat"] = np.full(n, CATEGORY["precursor_chemicals"])
        orders["unit_usd"] = usd_price(world, orders["cat"], orders["seller"], who)
        orders["qty"] = np.where(pop.ctype[who] == BUSINESS, rng.integers(5, 51, n), rng.integers(1, 6, n))
        uid = world.tx.add(
            **orders, pattern=CODE[self.name], instance=instance, stage=STAGE["precursor_order"]
        )
        _member(world, self.name, self.buyers, np.arange(len(self.buyers)), "buyer")
        _order_logins(world, who, t, orders["dev"], orders["ip"], 0.55)
        keep = rng.random(n) < SPEC[self.name].labelled_share
        source = np.where(rng.random(n) < 0.6, "manual_review", "investigation")[keep]
        _label(
            world,
            "transaction",
            uid[keep],
            "restricted_goods",
            t[keep] + _days(rng, 3, 30, n)[keep],
            source,
            self.name,
            instance[keep],
        )


class SyntheticIdentity:
    """Pattern ``synthetic_identity`` (see ``SPEC``)."""

    name = "synthetic_identity"

    def profile(self, world: World) -> None:
        rng, pop, ref, clock = world.rng, world.pop, world.ref, world.clock
        individuals = np.flatnonzero(pop.ctype == INDIVIDUAL)
        self.eligible = pop.n
        self.ids = _pick(world, individuals, SPEC[self.name].expected_instances(pop.n, clock.days))
        lo = clock.start - 45 * US_PER_DAY
        hi = max(clock.end - 30 * US_PER_DAY, lo + US_PER_DAY)
        self.cluster = np.full(len(self.ids), -1)
        k = 0
        while k < len(self.ids):
            size = int(rng.integers(2, 5)) if rng.random() < 0.35 else 1
            self.cluster[k : k + size] = k
            k += size
        for j, i in enumerate(self.ids):
            world.scripted[i] = True
            pop.role[i] = BUYER
            pop.res[i] = pop.nat[i]
            pop.phone[i] = popmod.phone_number(rng, ref, int(pop.res[i]))
            pop.address[i] = popmod.postal_address(rng, ref, int(pop.res[i]))
            set_onboarded(world, int(i), int(lo + rng.random() * (hi - lo)))
            pop.birth[i] = int(
                day_floor(np.array([pop.onboarded[i] - int(rng.uniform(20, 45) * US_PER_YEAR)]))[0]
            )
            pool = POOLS[POOL_CODES[pop.pool[i]]]
            # The e-mail belongs to nobody with this name: another name or a random handle; a
            # careful fraudster makes one from the made-up name.
            crafted = rng.random() < 0.3
            if crafted:
                g, f = popmod.latin_parts(pool, int(pop.gender[i]), int(pop.given[i]), int(pop.family[i]))
                local = popmod.email_local(rng, g, f, None)
            elif rng.random() < 0.6:
                g, f = popmod.latin_parts(
                    pool,
                    int(rng.integers(0, 2)),
                    int(rng.integers(0, 1 << 20)),
                    int(rng.integers(0, 1 << 20)),
                )
                local = popmod.email_local(rng, g, f, None)
            else:
                local = popmod.random_handle(rng)
            pop.email[i] = f"{local}@{popmod.free_domain(rng, ref, int(pop.res[i]))}"
            new = rng.random() < 0.6
            pop.email_seen[i] = pop.onboarded[i] - (_days(rng, 0, 3) if new else _days(rng, 30, 700))
            pop.twofa[i] = rng.random() < 0.25
            doc = "driving_licence" if rng.random() < 0.1 else str(rng.choice(["passport", "national_id"]))
            _new_document(world, int(i), doc, int(pop.nat[i]))
            if doc != "driving_licence" and rng.random() < 0.55:
                pop.doc_number[i] = invalid_document_number(rng, pop.doc_number[i])
            lead = self.ids[self.cluster == self.cluster[j]][0]
            if lead != i:
                if rng.random() < 0.5:
                    pop.phone[i] = pop.phone[lead]
                if rng.random() < 0.5:
                    pop.address[i] = pop.address[lead]

    def activity(self, world: World) -> None:
        rng, ref, pop, hab, clock = world.rng, world.ref, world.pop, world.habits, world.clock
        shared = {}
        for j, i in enumerate(self.ids):
            _member(world, self.name, [i], j, "identity")
            lead = int(self.cluster[j])
            dev = shared.setdefault(lead, int(hab.dev[i, 0])) if rng.random() < 0.7 else int(hab.dev[i, 0])
            onb = int(pop.onboarded[i])
            build = int(_days(rng, 20, 60))
            n_hist = int(rng.integers(3, 11))
            t_hist = np.sort(onb + US_PER_DAY + (rng.random(n_hist) * build).astype(np.int64))
            t_hist = t_hist[(t_hist >= clock.start) & (t_hist < clock.end)]
            bust = onb + US_PER_DAY + build + int(_days(rng, 0, 5))
            slow = rng.random() < 0.35  # a slow bust-out hides among ordinary orders
            n_bust = int(rng.integers(3, 9)) if slow else int(rng.integers(5, 21))
            t_bust = np.sort(
                bust
                + (rng.random(n_bust) * (_days(rng, 7, 21) if slow else _days(rng, 1, 4))).astype(np.int64)
            )
            t_bust = t_bust[(t_bust >= clock.start) & (t_bust < clock.end)]
            proxy = rng.random() < 0.25
            ip = int(world.ips.new(rng, np.array([ref.country("NL") if proxy else int(pop.res[i])]))[0])
            for stage, t, goods in (("build_up", t_hist, LOW_VALUE), ("bust_out", t_bust, HIGH_VALUE)):
                n = len(t)
                if n == 0:
                    continue
                cats = np.array([CATEGORY[c] for c in choice(rng, goods, n)])
                seller = _sellers_for(world, cats, t)
                if stage == "bust_out":
                    unit = ref.cat_price[cats] * np.exp(rng.normal(0.0 if slow else 0.3, 0.4, n))
                    qty = np.where(
                        cats == CATEGORY["gift_cards"], rng.integers(1, 6, n), rng.integers(1, 3, n)
                    )
                    pay = np.array(
                        [PAYMENT[p] for p in choice(rng, {"bnpl": 0.5, "card": 0.4, "wallet": 0.1}, n)]
                    )
                else:
                    unit = ref.cat_price[cats] * np.exp(rng.normal(-0.2, 0.5, n))
                    qty = np.ones(n, dtype=np.int64)
                    pay = np.full(n, hab.pay[i])
                buyer = np.full(n, i)
                uid = world.tx.add(
                    t=t,
                    buyer=buyer,
                    seller=seller,
                    cat=cats,
                    unit_usd=unit,
                    qty=qty,
                    cur=hab.cur[i],
                    pay=pay,
                    ship=pop.res[i],
                    dev=dev,
                    ip=ip,
                    pattern=CODE[self.name],
                    instance=j,
                    stage=STAGE[stage],
                )
                _order_logins(world, buyer, t, np.full(n, dev), np.full(n, ip), 0.7)
                if stage == "bust_out" and self.detected(rng):
                    keep = rng.random(n) < 0.95
                    source = np.where(pay == PAYMENT["card"], "chargeback", "investigation")[keep]
                    _label(
                        world,
                        "transaction",
                        uid[keep],
                        "fraud",
                        t[keep] + _days(rng, 30, 90, n)[keep],
                        source,
                        self.name,
                        j,
                    )
                    _label(
                        world,
                        "customer",
                        [i],
                        "synthetic_identity",
                        [int(t.max()) + int(_days(rng, 30, 120))],
                        "investigation",
                        self.name,
                        j,
                    )

    def detected(self, rng: np.random.Generator) -> bool:
        return bool(rng.random() < SPEC[self.name].labelled_share)


class SanctionedOrPep:
    """Pattern ``sanctioned_or_pep`` (see ``SPEC``), and its false positives ``watchlist_lookalike``."""

    name = "sanctioned_or_pep"

    def __init__(self, watchlist: Watchlist) -> None:
        self.wl = watchlist

    def profile(self, world: World) -> None:
        rng, pop, clock = world.rng, world.pop, world.clock
        individuals = np.flatnonzero(pop.ctype == INDIVIDUAL)
        self.eligible = len(individuals)
        wl = self.wl
        self.planted: list[tuple[int, int, str, str]] = []  # customer, entry, list, variant
        for list_type, rate, label in ((SANCTION, 0.0015, "sanctioned"), (PEP, 0.005, "pep")):
            entries = pick_entries(rng, wl, list_type, _count(rate, len(individuals), minimum=1))
            customers = _pick(world, individuals, len(entries))
            kinds = variant_kinds(rng, len(customers))
            for c, e, kind in zip(customers, entries, kinds, strict=True):
                self._become(world, int(c), int(e), str(kind), same_person=True)
                if list_type == SANCTION and rng.random() < 0.5:
                    # Listed during the period, after this customer joined.
                    lo = max(int(pop.onboarded[c]), clock.start) + US_PER_DAY
                    wl.listed_at[e] = lo + int(rng.random() * max(clock.end - lo - US_PER_DAY, US_PER_HOUR))
                self.planted.append((int(c), int(e), label, str(kind)))
        lookalike_entries = pick_entries(
            rng, wl, PEP, _count(SPEC["watchlist_lookalike"].rate / 2, len(individuals))
        )
        lookalike_entries = np.concatenate(
            [
                lookalike_entries,
                pick_entries(
                    rng, wl, SANCTION, _count(SPEC["watchlist_lookalike"].rate / 2, len(individuals))
                ),
            ]
        )
        self.lookalikes = []
        customers = _pick(world, individuals, len(lookalike_entries))
        for c, e in zip(customers, lookalike_entries, strict=True):
            kind = "exact" if rng.random() < 0.5 else str(variant_kinds(rng, 1)[0])
            self._become(world, int(c), int(e), kind, same_person=False)
            self.lookalikes.append((int(c), int(e)))

    def _become(self, world: World, c: int, e: int, kind: str, same_person: bool) -> None:
        rng, pop, ref, wl = world.rng, world.pop, world.ref, self.wl
        name = customer_variant(rng, wl, e, kind)
        if same_person:
            birth = wl.birth[e]
            if birth != NAT and rng.random() >= 0.8:
                # The year off by one, or a day-month mix-up: what data entry does to dates.
                delta = int(rng.choice([-365, 365, 40, -40])) * US_PER_DAY
                birth = int(day_floor(np.array([birth + delta]))[0])
            # (Every listed person is an adult: a birth date after that is the customer's own.)
            if birth != NAT and birth < pop.onboarded[c] - 18 * US_PER_YEAR:
                pop.birth[c] = birth
            country = wl.country[e] if wl.country[e] != NULL else pop.nat[c]
            if rng.random() < 0.85:
                pop.nat[c] = country
                if rng.random() < 0.6 and ref.customer_weight[country] > 0 and pop.res[c] != country:
                    pop.res[c] = country
                    pop.phone[c] = popmod.phone_number(rng, ref, int(country))
                    pop.address[c] = popmod.postal_address(rng, ref, int(country))
            if pop.doc_type[c] in (DOCUMENT["passport"], DOCUMENT["national_id"]):
                _new_document(
                    world,
                    c,
                    "passport" if pop.doc_type[c] == DOCUMENT["passport"] else "national_id",
                    int(pop.nat[c]),
                )
        _rename(world, c, int(wl.pool[e]), int(wl.gender[e]), int(wl.given[e]), int(wl.family[e]), name)

    def activity(self, world: World) -> None:
        rng, pop = world.rng, world.pop
        wl = self.wl
        for k, (c, e, label, kind) in enumerate(self.planted):
            _member(world, self.name, [c], k, "sanctioned" if label == "sanctioned" else "pep")
            seen = max(int(pop.onboarded[c]), int(wl.listed_at[e]))
            screening = {"exact": 0.9, "transliteration": 0.8, "swapped_order": 0.75, "typo": 0.6}[kind]
            u = rng.random()
            known = None
            if u < screening:
                known, source = seen + int(_days(rng, 0, 2)), "screening"
            elif u < screening + 0.1:
                known, source = seen + int(_days(rng, 30, 150)), "investigation"
            if known is not None:
                _label(world, "customer", [c], label, [known], source, self.name, k)
                if label == "sanctioned":
                    # A confirmed sanctions hit freezes the account: no activity after it.
                    world.frozen_at[c] = min(world.frozen_at[c], known)
        for k, (c, e) in enumerate(self.lookalikes):
            _member(world, "watchlist_lookalike", [c], k, "customer")
            if rng.random() < SPEC["watchlist_lookalike"].labelled_share:
                seen = max(int(pop.onboarded[c]), int(wl.listed_at[e]))
                _label(
                    world,
                    "customer",
                    [c],
                    "legitimate",
                    [seen + int(_days(rng, 1, 10))],
                    "manual_review",
                    "watchlist_lookalike",
                    k,
                )


class HonestTypo:
    """Pattern ``honest_typo`` (see ``SPEC``)."""

    name = "honest_typo"

    def profile(self, world: World) -> None:
        rng, pop, ref = world.rng, world.pop, world.ref
        checkable = np.isin(pop.doc_type, [DOCUMENT["passport"], DOCUMENT["national_id"]])
        eligible = np.flatnonzero(checkable)
        self.eligible = len(eligible)
        self.customers = []
        for c in _pick(world, eligible, SPEC[self.name].expected_instances(len(eligible), world.clock.days)):
            typo = transposed_document_number(rng, pop.doc_number[c])
            if typo is None:
                continue
            pop.doc_number[c] = typo
            # Otherwise a model citizen: an old address made from the name.
            g, f = popmod.latin_parts(
                POOLS[POOL_CODES[pop.pool[c]]], int(pop.gender[c]), int(pop.given[c]), int(pop.family[c])
            )
            birth_year = 1970 + int(pop.birth[c] // (365.25 * US_PER_DAY))
            pop.email[c] = (
                f"{popmod.email_local(rng, g, f, birth_year)}{rng.integers(1, 9)}@{popmod.free_domain(rng, ref, int(pop.res[c]))}"
            )
            pop.email_seen[c] = pop.onboarded[c] - int(rng.uniform(1.5, 12) * US_PER_YEAR)
            self.customers.append(int(c))

    def activity(self, world: World) -> None:
        rng, pop = world.rng, world.pop
        for k, c in enumerate(self.customers):
            _member(world, self.name, [c], k, "customer")
            if rng.random() < SPEC[self.name].labelled_share:
                _label(
                    world,
                    "customer",
                    [c],
                    "legitimate",
                    [int(pop.onboarded[c]) + int(_days(rng, 1, 10))],
                    "manual_review",
                    self.name,
                    k,
                )


class OutgrownKyc:
    """Pattern ``outgrown_kyc`` (see ``SPEC``)."""

    name = "outgrown_kyc"

    def profile(self, world: World) -> None:
        rng, pop, clock = world.rng, world.pop, world.clock
        self.eligible = pop.n
        old = np.flatnonzero(pop.buys & (pop.onboarded < clock.start - int(1.5 * US_PER_YEAR)))
        # Mostly growing businesses buying stock; some individuals turned traders.
        weights = np.where(pop.ctype[old] == BUSINESS, 6.0, 1.0)
        self.customers = _pick(world, old, SPEC[self.name].expected_instances(pop.n, clock.days), weights)
        for c in self.customers:
            back = int(rng.uniform(1, 4) * US_PER_YEAR)
            pop.last_review[c] = max(int(pop.onboarded[c]), clock.start - back)
        k = len(self.customers)
        # Orders grow 4-10 times bigger along the ramp, and 1.5-2.5 times as many.
        self.bigger_orders = rng.uniform(4.0, 10.0, k)
        self.more_orders = rng.uniform(1.5, 2.5, k)
        self.ramp_start = clock.start + (rng.uniform(-0.1, 0.4, k) * (clock.end - clock.start)).astype(
            np.int64
        )
        self.ramp_days = rng.uniform(15, 45, k)

    def _growth(self, k: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Factor by which instance ``k``'s orders have grown at time ``t`` (1 before the ramp)."""
        ramp = np.clip((t - self.ramp_start[k]) / (self.ramp_days[k] * US_PER_DAY), 0, 1)
        return 1 + ramp * (self.bigger_orders[k] - 1)

    def activity(self, world: World) -> None:
        rng, pop, hab, clock = world.rng, world.pop, world.habits, world.clock
        instance = np.full(pop.n, NULL)
        instance[self.customers] = np.arange(len(self.customers))
        for k, c in enumerate(self.customers):
            _member(world, self.name, [c], k, "customer")

        # Their ordinary purchases get bigger along the ramp (more units, pricier items).
        tx = world.tx.concat()
        k_row = instance[tx["buyer"]]
        rows = np.flatnonzero((k_row != NULL) & (tx["pattern"] == NULL))
        factor = self._growth(k_row[rows], tx["t"][rows])
        rows, factor = rows[factor > 1], factor[factor > 1]
        qty = tx["qty"][rows]
        bigger_qty = np.maximum(1, np.round(qty * np.sqrt(factor))).astype(np.int64)
        price = factor * qty / bigger_qty  # the value grows by exactly ``factor``
        tx["qty"][rows] = bigger_qty
        tx["unit_usd"][rows] *= price
        tx["unit_local"][rows] *= price  # NaN (not a round local price) stays NaN
        tx["pattern"][rows] = CODE[self.name]
        tx["instance"][rows] = k_row[rows]
        tx["stage"][rows] = STAGE["growth"]
        world.tx.replace(tx)

        # And more of them.
        grid = clock.start + np.arange(clock.days * 24) * US_PER_HOUR
        for k, c in enumerate(self.customers):
            ramp = np.clip((grid - self.ramp_start[k]) / (self.ramp_days[k] * US_PER_DAY), 0, 1)
            # Baseline orders per day, bounded: the pattern is about growth, not about size.
            per_day = float(np.clip(hab.rate[c], 0.1, 0.5))
            n = rng.poisson(per_day * (self.more_orders[k] - 1) * ramp.sum() / 24)
            if n == 0:
                continue
            cdf = np.cumsum(ramp) / ramp.sum()
            t = grid[np.searchsorted(cdf, rng.random(n))] + rng.integers(0, US_PER_HOUR, n)
            t = np.sort(np.minimum(np.maximum(t, pop.onboarded[c] + US_PER_HOUR), clock.end - 1))
            orders = fill_orders(world, np.full(n, c), t)
            factor = self._growth(np.full(n, k), t)
            bigger_qty = np.maximum(1, np.round(orders["qty"] * np.sqrt(factor))).astype(np.int64)
            price = factor * orders["qty"] / bigger_qty
            orders["qty"] = bigger_qty
            orders["unit_usd"] = orders["unit_usd"] * price
            orders["unit_local"] = orders["unit_local"] * price
            world.tx.add(**orders, pattern=CODE[self.name], instance=k, stage=STAGE["growth"])
            _order_logins(world, orders["buyer"], t, orders["dev"], orders["ip"], 0.55)

    def label(self, world: World, usd: np.ndarray, tx: dict[str, np.ndarray]) -> None:
        """Label customers once their 30-day volume exceeds twice the declared monthly volume."""
        rng, pop = world.rng, world.pop
        window = 30 * US_PER_DAY
        involved = np.isin(tx["buyer"], self.customers) | np.isin(tx["seller"], self.customers)
        rows = np.flatnonzero(involved)
        for k, c in enumerate(self.customers):
            mine = rows[(tx["buyer"][rows] == c) | (tx["seller"][rows] == c)]
            t = tx["t"][mine]
            order = np.argsort(t, kind="stable")
            t, v = t[order], usd[mine][order]
            cum = np.concatenate([[0.0], np.cumsum(v)])
            rolling = cum[1:] - cum[np.searchsorted(t, t - window, side="right")]
            over = np.flatnonzero(rolling > OUTGROWN_FACTOR * pop.declared[c])
            if len(over) == 0 or rng.random() >= SPEC[self.name].labelled_share:
                continue
            source = "manual_review" if rng.random() < 0.7 else "investigation"
            _label(
                world,
                "customer",
                [c],
                "kyc_refresh_required",
                [int(t[over[0]]) + int(_days(rng, 14, 60))],
                source,
                self.name,
                k,
            )


def declare_volumes(
    world: World, usd: np.ndarray, tx: dict[str, np.ndarray], must_declare: np.ndarray
) -> None:
    """Declared monthly volume (USD) at the last review: an upper bracket of the ordinary activity.

    Only ordinary orders count (planted growth is what the declaration did not foresee). Many
    individual buyers are never asked; businesses, sellers and ``must_declare`` always are.
    """
    rng, pop, clock = world.rng, world.pop, world.clock
    ordinary = tx["pattern"] == NULL
    volume = np.bincount(tx["buyer"][ordinary], weights=usd[ordinary], minlength=pop.n)
    volume += np.bincount(tx["seller"][ordinary], weights=usd[ordinary], minlength=pop.n)
    active_months = np.maximum((clock.end - np.maximum(pop.onboarded, clock.start)) / (30 * US_PER_DAY), 0.5)
    monthly = volume / active_months
    monthly = np.where(monthly > 0, monthly, rng.lognormal(np.log(300), 1.0, pop.n))
    wish = monthly * rng.lognormal(0.3, 0.5, pop.n)
    declared = BRACKETS[np.minimum(np.searchsorted(BRACKETS, wish), len(BRACKETS) - 1)]
    asked = (pop.ctype == BUSINESS) | pop.sells | (rng.random(pop.n) < 0.65) | must_declare
    pop.declared = np.where(asked, declared, np.nan)


def friendly_fraud(world: World, usd: np.ndarray, tx: dict[str, np.ndarray]) -> int:
    """Label noise: a few genuine orders charged back as fraud by their own buyers.

    Returns:
        The number of ordinary orders (the population the rate refers to).
    """
    rng = world.rng
    ordinary = np.flatnonzero((tx["pattern"] == NULL) & (usd > 15))
    n = _count(SPEC["friendly_fraud"].rate, int((tx["pattern"] == NULL).sum()))
    picked = np.sort(rng.choice(ordinary, size=min(n, len(ordinary)), replace=False))
    source = np.where(rng.random(len(picked)) < 0.7, "chargeback", "customer_report")
    known = tx["t"][picked] + _days(rng, 20, 60, len(picked))
    _label(
        world,
        "transaction",
        tx["uid"][picked],
        "fraud",
        known,
        source,
        "friendly_fraud",
        np.arange(len(picked)),
    )
    return int((tx["pattern"] == NULL).sum())


def apply_freezes(world: World) -> None:
    """Drop orders placed after an account was frozen, with any label planted on them."""
    tx = world.tx.concat()
    frozen = world.frozen_at
    after = (tx["t"] >= frozen[tx["buyer"]]) | (tx["t"] >= frozen[tx["seller"]])
    if not after.any():
        return
    world.tx.keep(~after)
    labels = world.labels.concat()
    gone = (labels["entity"] == 0) & np.isin(labels["ref"], tx["uid"][after])
    world.labels.keep(~gone)


def transaction_usd(world: World, tx: dict[str, np.ndarray]) -> np.ndarray:
    """Order amount in USD before currency rounding (unit price in USD times quantity)."""
    return tx["unit_usd"] * tx["qty"]
