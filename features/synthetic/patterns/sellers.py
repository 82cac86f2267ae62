"""Bad-seller patterns: ``stolen_goods_seller`` (a seller fencing stolen goods) and ``restricted_goods`` (precursor chemicals sold to buyers who should not get them)."""

from __future__ import annotations

import numpy as np

from features.synthetic.behaviour import activity_times, add_logins, fill_orders, usd_price
from features.synthetic.patterns.common import _days, _label, _member, _order_logins, _pick, set_onboarded
from features.synthetic.patterns.specs import CODE, SPEC, STAGE
from features.synthetic.world import BUSINESS, CATEGORY, INDUSTRY, NULL, SELLER, World, choice
from features.units import US_PER_DAY, US_PER_HOUR


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
