"""Pattern ``shell_company_ring``: registered businesses that move money between each other (cycles, fan-out, fan-in) in round amounts."""

from __future__ import annotations

import numpy as np

from features.synthetic import population as popmod
from features.synthetic.patterns.common import _days, _label, _member, _order_logins, _pick, set_onboarded
from features.synthetic.patterns.specs import CODE, SPEC, STAGE
from features.synthetic.population import day_floor
from features.synthetic.world import (
    BOTH,
    BUSINESS,
    CATEGORY,
    CURRENCY,
    INDIVIDUAL,
    INDUSTRY,
    PAYMENT,
    World,
    choice,
)
from features.units import US_PER_DAY, US_PER_HOUR

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
