"""What each planted pattern is: its documented mechanism, rate and label (``SPECS``), and the stages of ground truth.

The data card renders these specs, and the pattern modules plant what they say: one place to read
what the generator promises. ``PatternSpec.expected_instances`` (via ``_count``) is how many
instances a rate gives.
"""

from __future__ import annotations

from dataclasses import dataclass


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


def _count(rate: float, population: int, minimum: int = 0, period_days: int | None = None) -> int:
    """How many instances to plant: ``rate * population``, per 120 days when ``period_days`` is given."""
    scale = period_days / PERIOD_DAYS if period_days is not None else 1.0
    return max(minimum, int(round(rate * population * scale))) if population else 0
