"""Pattern ``outgrown_kyc`` and the declared volumes it is measured against (``declare_volumes``): activity far beyond the KYC declaration."""

from __future__ import annotations

import numpy as np

from features.synthetic.behaviour import fill_orders
from features.synthetic.patterns.common import _days, _label, _member, _order_logins, _pick
from features.synthetic.patterns.specs import CODE, SPEC, STAGE
from features.synthetic.world import BUSINESS, NULL, World
from features.units import US_PER_DAY, US_PER_HOUR, US_PER_YEAR

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
