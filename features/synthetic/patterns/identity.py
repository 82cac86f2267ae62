"""Identity patterns: ``synthetic_identity`` (made-up people who build up and bust out), ``sanctioned_or_pep`` (listed people among the customers) and ``honest_typo`` (a mistyped document number, not fraud).

They share the document and renaming helpers that give a customer a new identity or document.
"""

from __future__ import annotations

import numpy as np

from features.documents import check_digit, has_valid_check_digit, likely_transposition_typo
from features.synthetic import population as popmod
from features.synthetic.names import POOL_CODES, POOLS
from features.synthetic.patterns.common import (
    HIGH_VALUE,
    _days,
    _label,
    _member,
    _order_logins,
    _pick,
    _sellers_for,
    set_onboarded,
)
from features.synthetic.patterns.specs import CODE, SPEC, STAGE, _count
from features.synthetic.population import NAT, day_floor
from features.synthetic.watchlist import (
    PEP,
    SANCTION,
    Watchlist,
    customer_variant,
    pick_entries,
    variant_kinds,
)
from features.synthetic.world import BUYER, CATEGORY, DOCUMENT, INDIVIDUAL, NULL, PAYMENT, World, choice
from features.units import US_PER_DAY, US_PER_HOUR, US_PER_YEAR

LOW_VALUE = {"books": 25, "beauty": 25, "groceries": 20, "general": 15, "fashion": 15}


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
