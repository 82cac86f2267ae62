"""Ordinary behaviour: each customer's habits, the weekly and seasonal rhythm, orders and account events."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from features.synthetic.world import (
    BUSINESS,
    CATEGORY,
    CURRENCY,
    EVENT,
    INDIVIDUAL,
    INDUSTRY,
    NULL,
    PAYMENT,
    World,
)
from features.units import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE

NEVER = np.iinfo(np.int64).max

# Individuals' median orders per day (lognormal, sigma 1); businesses buy more often.
ORDER_RATE_MEDIAN = {INDIVIDUAL: 0.15, BUSINESS: 0.45}
ORDER_RATE_SIGMA = 1.0
DORMANT_SHARE = 0.12
USUAL_SELLER_SHARE = 0.65  # orders placed with one of the buyer's usual sellers
UNKNOWN_DEVICE_SHARE = 0.015  # orders and events without device and IP (old app versions)

# What sellers list, by industry (businesses) or for private sellers; weights, not shares.
INDUSTRY_CATALOGUE: dict[str, dict[str, float]] = {
    "wholesale": {"general": 3, "home": 3, "industrial_supplies": 2, "toys": 1, "groceries": 1, "sports": 1},
    "electronics": {"electronics": 5, "phones": 3, "computers": 2, "software": 1},
    "fashion": {"fashion": 6, "jewelry": 1, "beauty": 2},
    "chemicals": {"lab_chemicals": 4, "precursor_chemicals": 2, "industrial_supplies": 3},
    "pharmaceuticals": {"lab_chemicals": 3, "beauty": 3, "precursor_chemicals": 1},
    "logistics": {"general": 3, "industrial_supplies": 2, "auto_parts": 1},
    "consulting": {"software": 3, "general": 2, "gift_cards": 1},
    "software": {"software": 5, "gift_cards": 2, "computers": 1},
    "import_export": {"general": 3, "electronics": 2, "home": 2, "industrial_supplies": 2, "fashion": 1},
    "jewelry": {"jewelry": 6, "fashion": 1},
    "automotive": {"auto_parts": 6, "industrial_supplies": 1},
    "food": {"groceries": 6, "home": 1},
    "holding": {"general": 2, "industrial_supplies": 1, "electronics": 1},
}
PRIVATE_CATALOGUE = {
    "fashion": 4,
    "books": 3,
    "toys": 2,
    "electronics": 2,
    "sports": 2,
    "home": 2,
    "general": 2,
    "phones": 1,
    "beauty": 1,
    "jewelry": 0.5,
}
B2B_INDUSTRIES = ("wholesale", "electronics", "logistics", "import_export", "automotive", "food", "software")
CHEMICAL_INDUSTRIES = ("chemicals", "pharmaceuticals")
PAYMENT_MIX = {
    "default": {
        "card": 0.55,
        "wallet": 0.18,
        "bnpl": 0.08,
        "bank_transfer": 0.07,
        "marketplace_balance": 0.12,
    },
    "europe": {
        "card": 0.50,
        "wallet": 0.15,
        "bnpl": 0.15,
        "bank_transfer": 0.10,
        "marketplace_balance": 0.10,
    },
    "east_asia": {
        "card": 0.35,
        "wallet": 0.45,
        "bnpl": 0.03,
        "bank_transfer": 0.07,
        "marketplace_balance": 0.10,
    },
    "southeast_asia": {
        "card": 0.30,
        "wallet": 0.45,
        "bnpl": 0.05,
        "bank_transfer": 0.10,
        "marketplace_balance": 0.10,
    },
    "business": {
        "card": 0.30,
        "wallet": 0.02,
        "bnpl": 0.03,
        "bank_transfer": 0.55,
        "marketplace_balance": 0.10,
    },
}
VPN_COUNTRIES = ("NL", "US", "DE", "SE", "CH", "GB", "SG")


@dataclass
class Habits:
    """What each customer usually does (arrays indexed by customer)."""

    rate: np.ndarray  # expected orders per (average) day as a buyer
    level: np.ndarray  # log-scale shift of the prices a buyer pays
    hour: np.ndarray  # preferred local hour of activity
    hour_sd: np.ndarray
    tz: np.ndarray  # UTC offset of residence, hours
    dev: np.ndarray  # (n, 3) usual devices
    n_dev: np.ndarray
    dev_new: np.ndarray  # device replacing slot 0 from dev_change_t on (legitimate upgrade)
    dev_change_t: np.ndarray
    ip: np.ndarray  # (n, 3) usual IPs
    n_ip: np.ndarray
    travel_ip: np.ndarray
    travel_start: np.ndarray
    travel_end: np.ndarray
    vpn: np.ndarray
    pay: np.ndarray
    cur: np.ndarray
    usual: np.ndarray  # (n, 6) usual sellers
    n_usual: np.ndarray
    sells_ordinarily: np.ndarray
    catalogue: np.ndarray  # (n, 2) main and second category of a seller
    price_level: np.ndarray
    popularity: np.ndarray
    precursor_ok: np.ndarray
    twofa_toggle_t: np.ndarray
    vpn_ips: np.ndarray


# --- rhythm -----------------------------------------------------------------------------------


def day_weights(start_us: int, days: int) -> np.ndarray:
    """Relative order volume of each day: weekly rhythm, winter high season and shopping events.

    Returns:
        ``days`` weights with mean 1.
    """
    first = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=start_us)
    weekly = np.array([1.05, 1.0, 1.0, 0.98, 0.95, 0.92, 1.10])  # Monday .. Sunday
    weights = np.empty(days)
    for d in range(days):
        date = (first + dt.timedelta(days=d)).date()
        doy = date.timetuple().tm_yday
        w = weekly[date.weekday()] * (1 + 0.12 * np.cos(2 * np.pi * (doy - 355) / 365.25))
        black_friday = _fourth_thursday_of_november(date.year) + dt.timedelta(days=1)
        if (date.month, date.day) == (11, 11):
            w *= 1.6  # Singles' Day
        elif date == black_friday:
            w *= 1.8
        elif date == black_friday + dt.timedelta(days=3):
            w *= 1.5  # Cyber Monday
        elif date.month == 12 and date.day <= 20:
            w *= 1.25
        elif date.month == 12 and 24 <= date.day <= 26:
            w *= 0.7
        elif (date.month, date.day) == (1, 1):
            w *= 0.8
        elif date.month == 7 and date.day in (8, 9):
            w *= 1.3  # mid-summer sales
        weights[d] = w
    return weights / weights.mean()


def _fourth_thursday_of_november(year: int) -> dt.date:
    first = dt.date(year, 11, 1)
    return first + dt.timedelta(days=(3 - first.weekday()) % 7 + 21)


def activity_times(
    world: World, who: np.ndarray, counts: np.ndarray, t_from: np.ndarray, t_to: np.ndarray | None = None
) -> np.ndarray:
    """Draw ``counts[k]`` activity times for customer ``who[k]`` in ``[t_from[k], t_to[k])``.

    Days follow the period's rhythm, hours the customer's local time-of-day habit; ``t_to``
    defaults to the end of the period.

    Returns:
        Times (microseconds), grouped by customer in the order of ``who``.
    """
    clock, rng, hab = world.clock, world.rng, world.habits
    weights = day_weights(clock.start, clock.days)
    cum = np.concatenate([[0.0], np.cumsum(weights)])
    owner = np.repeat(who, counts)
    floor = np.repeat(t_from, counts)
    ceiling = (
        np.full(len(owner), clock.end) if t_to is None else np.minimum(np.repeat(t_to, counts), clock.end)
    )
    first_day = np.clip((floor - clock.start) // US_PER_DAY, 0, clock.days - 1)
    last_day = np.clip((ceiling - 1 - clock.start) // US_PER_DAY, first_day, clock.days - 1)
    u = cum[first_day] + rng.random(len(owner)) * (cum[last_day + 1] - cum[first_day])
    day = np.clip(np.searchsorted(cum, u, side="right") - 1, 0, clock.days - 1)
    habitual = rng.random(len(owner)) < 0.75
    local = np.where(habitual, rng.normal(hab.hour[owner], hab.hour_sd[owner]), rng.random(len(owner)) * 24)
    utc_hour = np.mod(local - hab.tz[owner], 24)
    t = clock.start + day * US_PER_DAY + (utc_hour * US_PER_HOUR).astype(np.int64)
    # A customer onboarded today cannot act before onboarding; nor can anyone after the end.
    late = t < floor
    t[late] = floor[late] + (rng.random(int(late.sum())) * 3 * US_PER_HOUR).astype(np.int64) + US_PER_MINUTE
    early = t >= ceiling
    t[early] = ceiling[early] - 1 - rng.integers(0, US_PER_HOUR, int(early.sum()))
    return np.maximum(t, floor)


# --- habits -----------------------------------------------------------------------------------


def make_habits(world: World) -> Habits:
    """Give every customer habits: order rate, price level, hours, devices, IPs, usual sellers."""
    rng, ref, pop, clock = world.rng, world.ref, world.pop, world.clock
    n = pop.n
    business = pop.ctype == BUSINESS
    median = np.where(business, ORDER_RATE_MEDIAN[BUSINESS], ORDER_RATE_MEDIAN[INDIVIDUAL])
    rate = median * rng.lognormal(0.0, ORDER_RATE_SIGMA, n)
    rate *= np.where(rng.random(n) < DORMANT_SHARE, 0.03, 1.0)
    rate = np.where(pop.buys, np.minimum(rate, 12.0), 0.0)

    profile = rng.choice(4, size=n, p=[0.55, 0.20, 0.15, 0.10])
    hour = np.array([20.5, 12.5, 9.0, 23.5])[profile] + rng.normal(0, 0.7, n)
    hour = np.where(business, 11 + rng.normal(0, 1.0, n), hour)
    hour_sd = np.where(business, 2.5, 1.8) * rng.uniform(0.7, 1.3, n)

    n_dev = np.where(business, rng.integers(1, 5, n), rng.choice([1, 2, 3], size=n, p=[0.5, 0.35, 0.15]))
    n_dev = np.minimum(n_dev, 3)
    dev = world.devices.new(n * 3).reshape(n, 3)
    # Households: some individuals share a device with someone in the same country.
    _share_devices(rng, pop, dev, share=0.04)
    upgrade = rng.random(n) < 0.15
    dev_change_t = np.where(
        upgrade, clock.start + (rng.random(n) * (clock.end - clock.start)).astype(np.int64), NEVER
    )
    dev_change_t = np.maximum(dev_change_t, pop.onboarded + US_PER_DAY)
    dev_change_t = np.where(dev_change_t >= clock.end, NEVER, dev_change_t)
    dev_new = np.where(dev_change_t < NEVER, world.devices.new(n), NULL)

    n_ip = rng.choice([1, 2, 3], size=n, p=[0.45, 0.4, 0.15])
    ip = world.ips.new(rng, np.repeat(pop.res, 3)).reshape(n, 3)
    _carrier_nat(rng, world, ip, share=0.15)
    travels = rng.random(n) < 0.06
    travel_country = rng.choice(len(ref.iso2), size=n, p=ref.customer_weight)
    travel_country = np.where(travel_country == pop.res, (travel_country + 1) % len(ref.iso2), travel_country)
    travel_country = np.where(ref.customer_weight[travel_country] > 0, travel_country, ref.country("US"))
    travel_ip = np.where(travels, world.ips.new(rng, travel_country), NULL)
    travel_start = np.where(
        travels, clock.start + (rng.random(n) * (clock.end - clock.start)).astype(np.int64), NEVER
    )
    travel_end = np.where(travels, travel_start + rng.integers(3, 15, n) * US_PER_DAY, NEVER)
    vpn = rng.random(n) < 0.02
    vpn_ips = world.ips.new(rng, np.repeat(ref.countries(VPN_COUNTRIES), 5))

    pay = np.empty(n, dtype=np.int64)
    for key, mix in PAYMENT_MIX.items():
        if key == "business":
            mask = business
        elif key == "default":
            mask = ~business & ~np.isin(ref.region[pop.res], ["europe", "east_asia", "southeast_asia"])
        else:
            mask = ~business & (ref.region[pop.res] == key)
        pay[mask] = [PAYMENT[p] for p in _draw(rng, mix, int(mask.sum()))]
    local_currency = ref.currency[pop.res]
    cur = np.where(
        rng.random(n) < 0.88, local_currency, np.where(rng.random(n) < 0.75, CURRENCY["USD"], CURRENCY["EUR"])
    )

    industry_name = np.array([*INDUSTRY, ""], dtype=object)[pop.industry]
    catalogue = np.empty((n, 2), dtype=np.int64)
    retail_mix = {c: s for c, s in zip(CATEGORY, ref.cat_share, strict=True) if "chemicals" not in c}
    for key in [*INDUSTRY_CATALOGUE, "retail", "private"]:
        if key == "private":
            mask, mix = pop.ctype == INDIVIDUAL, PRIVATE_CATALOGUE
        else:
            mask, mix = industry_name == key, INDUSTRY_CATALOGUE.get(key, retail_mix)
        m = int(mask.sum())
        catalogue[mask, 0] = [CATEGORY[c] for c in _draw(rng, mix, m)]
        catalogue[mask, 1] = [CATEGORY[c] for c in _draw(rng, mix, m)]
    popularity = rng.lognormal(0, 1.3, n) * np.where(business, 3.0, 0.5)
    # Chemical suppliers are niche: consumers rarely land on them.
    popularity *= np.where(np.isin(industry_name, CHEMICAL_INDUSTRIES), 0.15, 1.0)
    price_level = rng.lognormal(0, 0.15, n)
    # Legitimate discount and refurbished-electronics sellers: low prices are not proof of theft.
    electronics = np.isin(
        catalogue[:, 0], [CATEGORY["electronics"], CATEGORY["phones"], CATEGORY["computers"]]
    )
    # New sellers undercut more often (clearance stock, building reviews).
    new_seller = pop.onboarded > clock.start - 180 * US_PER_DAY
    discount = electronics & (rng.random(n) < np.where(new_seller, 0.2, 0.08))
    price_level[discount] = rng.uniform(0.45, 0.8, int(discount.sum()))

    precursor_ok = np.isin(industry_name, CHEMICAL_INDUSTRIES)
    toggle = np.where(pop.twofa, rng.random(n) < 0.015, rng.random(n) < 0.05)
    twofa_toggle_t = np.where(
        toggle, clock.start + (rng.random(n) * (clock.end - clock.start)).astype(np.int64), NEVER
    )
    twofa_toggle_t = np.where(
        twofa_toggle_t < NEVER, np.maximum(twofa_toggle_t, pop.onboarded + US_PER_HOUR), NEVER
    )
    twofa_toggle_t = np.where(twofa_toggle_t < clock.end, twofa_toggle_t, NEVER)

    hab = Habits(
        rate=rate,
        level=rng.normal(0, 0.5, n) + np.where(business, 0.3, 0.0),
        hour=hour,
        hour_sd=hour_sd,
        tz=ref.utc_offset[pop.res],
        dev=dev,
        n_dev=n_dev,
        dev_new=dev_new,
        dev_change_t=dev_change_t,
        ip=ip,
        n_ip=n_ip,
        travel_ip=travel_ip,
        travel_start=travel_start,
        travel_end=travel_end,
        vpn=vpn,
        pay=pay,
        cur=cur,
        usual=np.zeros((n, 6), dtype=np.int64),
        n_usual=1 + rng.binomial(5, 0.4, n),
        sells_ordinarily=pop.sells.copy(),
        catalogue=catalogue,
        price_level=price_level,
        popularity=popularity,
        precursor_ok=precursor_ok,
        twofa_toggle_t=twofa_toggle_t,
        vpn_ips=vpn_ips,
    )
    return hab


def _draw(rng: np.random.Generator, mix: dict[str, float], size: int) -> np.ndarray:
    keys = np.array(list(mix), dtype=object)
    p = np.array(list(mix.values()), dtype=float)
    return keys[rng.choice(len(keys), size=size, p=p / p.sum())]


def _share_devices(rng: np.random.Generator, pop, dev: np.ndarray, share: float) -> None:
    individuals = np.flatnonzero(pop.ctype == INDIVIDUAL)
    sharers = individuals[rng.random(len(individuals)) < share]
    for country in np.unique(pop.res[sharers]):
        members = sharers[pop.res[sharers] == country]
        partners = np.flatnonzero((pop.res == country) & (pop.ctype == INDIVIDUAL))
        if len(partners) < 2:
            continue
        partner = rng.choice(partners, size=len(members))
        dev[members, 1] = dev[partner, 0]


def _carrier_nat(rng: np.random.Generator, world: World, ip: np.ndarray, share: float) -> None:
    """Mobile carriers put many subscribers behind one address (carrier-grade NAT)."""
    pop = world.pop
    use = rng.random(ip.shape) < share
    for country in np.unique(pop.res):
        rows = np.flatnonzero(pop.res == country)
        pool = world.ips.new(rng, np.full(max(3, len(rows) // 40), country))
        mask = use[rows]
        picked = rng.choice(pool, size=int(mask.sum()))
        sub = ip[rows]
        sub[mask] = picked
        ip[rows] = sub


def choose_usual_sellers(world: World) -> None:
    """Each buyer's small set of usual sellers: popular ones, often domestic, B2B for businesses."""
    rng, pop, hab = world.rng, world.pop, world.habits
    hab.sells_ordinarily &= ~world.scripted
    sellers = np.flatnonzero(hab.sells_ordinarily)
    weight = hab.popularity[sellers] / hab.popularity[sellers].sum()
    n = pop.n
    slots = hab.usual.shape[1]
    usual = sellers[rng.choice(len(sellers), size=(n, slots), p=weight)]

    domestic = rng.random((n, slots)) < 0.5
    for country in np.unique(pop.res):
        local = sellers[pop.res[sellers] == country]
        rows = np.flatnonzero(pop.res == country)
        if len(local) == 0 or len(rows) == 0:
            continue
        w = hab.popularity[local] / hab.popularity[local].sum()
        mask = domestic[rows]
        sub = usual[rows]
        sub[mask] = local[rng.choice(len(local), size=int(mask.sum()), p=w)]
        usual[rows] = sub
    industry_name = np.array([*INDUSTRY, ""], dtype=object)[pop.industry]
    b2b = sellers[(pop.ctype[sellers] == BUSINESS) & np.isin(industry_name[sellers], B2B_INDUSTRIES)]
    chem = sellers[np.isin(industry_name[sellers], CHEMICAL_INDUSTRIES)]
    for group, share, pool in ((pop.ctype == BUSINESS, 0.7, b2b), (hab.precursor_ok, 0.6, chem)):
        if len(pool) == 0:
            continue
        w = hab.popularity[pool] / hab.popularity[pool].sum()
        rows = np.flatnonzero(group)
        mask = rng.random((len(rows), slots)) < share
        sub = usual[rows]
        sub[mask] = pool[rng.choice(len(pool), size=int(mask.sum()), p=w)]
        usual[rows] = sub
    hab.usual = usual


# --- per-order and per-event attributes -------------------------------------------------------


def device_at(world: World, who: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The device a customer uses at time ``t``: mostly the first usual one, upgraded phones after the upgrade."""
    rng, hab = world.rng, world.habits
    u = rng.random(len(who))
    slot = np.minimum(np.where(u < 0.65, 0, np.where(u < 0.9, 1, 2)), hab.n_dev[who] - 1)
    dev = hab.dev[who, slot]
    upgraded = (slot == 0) & (t >= hab.dev_change_t[who])
    return np.where(upgraded, hab.dev_new[who], dev)


def ip_at(world: World, who: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The IP a customer uses at time ``t``: home IPs, a travel IP while travelling, VPN exits for some."""
    rng, hab = world.rng, world.habits
    u = rng.random(len(who))
    slot = np.minimum(np.where(u < 0.6, 0, np.where(u < 0.9, 1, 2)), hab.n_ip[who] - 1)
    ip = hab.ip[who, slot]
    travelling = (t >= hab.travel_start[who]) & (t < hab.travel_end[who])
    ip = np.where(travelling, hab.travel_ip[who], ip)
    on_vpn = hab.vpn[who] & (rng.random(len(who)) < 0.3)
    return np.where(on_vpn, rng.choice(hab.vpn_ips, size=len(who)), ip)


def unknown_mask(world: World, n: int) -> np.ndarray:
    return world.rng.random(n) < UNKNOWN_DEVICE_SHARE


def usd_price(world: World, cat: np.ndarray, seller: np.ndarray, buyer: np.ndarray) -> np.ndarray:
    """Unit price in USD: lognormal around the category's reference price, shifted by seller and buyer."""
    ref, hab = world.ref, world.habits
    z = world.rng.standard_normal(len(cat))
    return (
        ref.cat_price[cat]
        * np.exp(ref.cat_sigma[cat] * z + 0.25 * hab.level[buyer])
        * hab.price_level[seller]
    )


def fill_orders(
    world: World, buyers: np.ndarray, t: np.ndarray, seller: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Ordinary attributes of orders placed by ``buyers`` at times ``t``.

    Args:
        world: the run.
        buyers: buying customer of each order.
        t: order times (microseconds).
        seller: fixed sellers (otherwise usual or explored sellers, popularity-weighted).

    Returns:
        Columns for ``World.tx.add``: t, buyer, seller, cat, unit_usd, unit_local (NaN unless the
        price is a round local price), qty, cur, pay, ship, dev, ip.
    """
    rng, ref, pop, hab = world.rng, world.ref, world.pop, world.habits
    n = len(buyers)
    if seller is None:
        sellers = np.flatnonzero(hab.sells_ordinarily)
        weight = hab.popularity[sellers] / hab.popularity[sellers].sum()
        slot = (rng.random(n) * hab.n_usual[buyers]).astype(np.int64)
        explore = sellers[rng.choice(len(sellers), size=n, p=weight)]
        seller = np.where(rng.random(n) < USUAL_SELLER_SHARE, hab.usual[buyers, slot], explore)
        # A seller who joins later cannot have sold earlier; nobody buys from themselves.
        established = sellers[pop.onboarded[sellers] < world.clock.start]
        bad = (pop.onboarded[seller] >= t) | (seller == buyers)
        seller[bad] = rng.choice(established, size=int(bad.sum()))
        still = seller == buyers
        seller[still] = established[(np.searchsorted(established, seller[still]) + 1) % len(established)]
    cat = np.where(rng.random(n) < 0.7, hab.catalogue[seller, 0], hab.catalogue[seller, 1])
    # Only buyers with a business reason order precursors in ordinary trade; the rest is a pattern.
    precursor = (cat == CATEGORY["precursor_chemicals"]) & ~hab.precursor_ok[buyers]
    cat = np.where(precursor, CATEGORY["lab_chemicals"], cat)
    unit_usd = usd_price(world, cat, seller, buyers)
    business = pop.ctype[buyers] == BUSINESS
    cheap = ref.cat_price[cat] < 25
    qty_person = 1 + rng.poisson(np.where(cheap, 0.8, 0.2))
    qty_business = np.clip(np.round(rng.lognormal(np.log(6), 1.1, n)), 1, 2000).astype(np.int64)
    qty = np.where(business, qty_business, qty_person)
    cur = np.where(rng.random(n) < 0.95, hab.cur[buyers], CURRENCY["USD"])
    # Businesses often order round quantities at negotiated whole-number prices.
    round_order = business & (rng.random(n) < 0.12)
    qty = np.where(round_order, rng.choice([10, 20, 50, 100, 200, 500], size=n), qty)
    unit_local = np.where(
        round_order, np.maximum(np.round(unit_usd / world.ref.usd_per_unit[cur]), 1.0), np.nan
    )
    region_mix = rng.choice(len(PAYMENT), size=n, p=np.array(list(PAYMENT_MIX["default"].values())))
    pay = np.where(rng.random(n) < 0.7, hab.pay[buyers], region_mix)
    gift = rng.random(n) < 0.03
    ship = np.where(gift, rng.choice(len(ref.iso2), size=n, p=ref.customer_weight), pop.res[buyers])
    unknown = unknown_mask(world, n)
    return {
        "t": t,
        "buyer": buyers,
        "seller": seller,
        "cat": cat,
        "unit_usd": np.where(round_order, unit_local * world.ref.usd_per_unit[cur], unit_usd),
        "unit_local": unit_local,
        "qty": qty,
        "cur": cur,
        "pay": pay,
        "ship": ship,
        "dev": np.where(unknown, NULL, device_at(world, buyers, t)),
        "ip": np.where(unknown, NULL, ip_at(world, buyers, t)),
    }


def add_logins(
    world: World, who: np.ndarray, t: np.ndarray, dev: np.ndarray, ip: np.ndarray, failed_share: float = 0.04
) -> None:
    """Log in ``who`` at ``t`` (a few preceded by a failed attempt from the same device)."""
    rng = world.rng
    world.events.add(t=t, customer=who, type=EVENT["login"], dev=dev, ip=ip)
    failed = rng.random(len(who)) < failed_share
    back = rng.integers(30_000_000, 5 * US_PER_MINUTE, int(failed.sum()))
    world.events.add(
        t=t[failed] - back, customer=who[failed], type=EVENT["login_failed"], dev=dev[failed], ip=ip[failed]
    )


# --- ordinary activity ------------------------------------------------------------------------


def ordinary_activity(world: World) -> None:
    """Ordinary orders and account events for every customer not scripted by a pattern."""
    rng, pop, hab, clock = world.rng, world.pop, world.habits, world.clock
    active_from = np.maximum(pop.onboarded, clock.start)
    weights = day_weights(clock.start, clock.days)
    cum = np.concatenate([[0.0], np.cumsum(weights)])
    first_day = np.clip((active_from - clock.start) // US_PER_DAY, 0, clock.days - 1)
    exposure = cum[-1] - cum[first_day]  # expected-volume days left after onboarding

    buyers = np.flatnonzero((hab.rate > 0) & ~world.scripted)
    counts = rng.poisson(hab.rate[buyers] * exposure[buyers])
    t = activity_times(world, buyers, counts, active_from[buyers])
    who = np.repeat(buyers, counts)
    orders = fill_orders(world, who, t)
    world.tx.add(**orders)
    _sprees(world, buyers, active_from)
    _welcome_purchases(world, buyers)

    # A login shortly before most orders; the app keeps others logged in.
    with_login = rng.random(len(who)) < 0.55
    back = rng.integers(US_PER_MINUTE, 20 * US_PER_MINUTE, int(with_login.sum()))
    login_t = np.maximum(t[with_login] - back, pop.onboarded[who[with_login]])
    add_logins(world, who[with_login], login_t, orders["dev"][with_login], orders["ip"][with_login])

    # Browsing and seller-dashboard logins without an order.
    everyone = np.flatnonzero(~world.scripted)
    browse_rate = 0.6 * hab.rate[everyone] + np.where(hab.sells_ordinarily[everyone], 0.4, 0.0)
    counts = rng.poisson(browse_rate * exposure[everyone])
    t = activity_times(world, everyone, counts, active_from[everyone])
    who = np.repeat(everyone, counts)
    unknown = unknown_mask(world, len(who))
    add_logins(
        world,
        who,
        t,
        np.where(unknown, NULL, device_at(world, who, t)),
        np.where(unknown, NULL, ip_at(world, who, t)),
    )
    _account_changes(world, everyone)


def _sprees(world: World, buyers: np.ndarray, active_from: np.ndarray) -> None:
    """Genuine shopping sprees: a few buyers order several pricey gadgets within hours (gifts, sales)."""
    rng, clock = world.rng, world.clock
    spree = buyers[rng.random(len(buyers)) < 0.015]
    if len(spree) == 0:
        return
    day = activity_times(world, spree, np.ones(len(spree), dtype=np.int64), active_from[spree])
    counts = rng.integers(3, 9, len(spree))
    who = np.repeat(spree, counts)
    t = np.minimum(np.repeat(day, counts) + rng.integers(0, 6 * US_PER_HOUR, len(who)), clock.end - 1)
    orders = fill_orders(world, who, t)
    goods = np.array([CATEGORY[c] for c in ("electronics", "phones", "gift_cards", "computers", "jewelry")])
    orders["cat"] = goods[rng.choice(len(goods), size=len(who), p=[0.35, 0.25, 0.2, 0.1, 0.1])]
    orders["unit_usd"] = usd_price(world, orders["cat"], orders["seller"], who)
    orders["unit_local"] = np.full(len(who), np.nan)
    orders["qty"] = np.where(orders["cat"] == CATEGORY["gift_cards"], rng.integers(1, 5, len(who)), 1)
    world.tx.add(**orders)


def _welcome_purchases(world: World, buyers: np.ndarray) -> None:
    """Many genuine customers join to buy one specific, often pricey, item within days."""
    rng, pop, clock = world.rng, world.pop, world.clock
    new = buyers[(pop.onboarded[buyers] >= clock.start) & (rng.random(len(buyers)) < 0.3)]
    t = np.minimum(
        pop.onboarded[new] + (rng.random(len(new)) * 3 * US_PER_DAY).astype(np.int64), clock.end - 1
    )
    orders = fill_orders(world, new, t)
    goods = np.array([CATEGORY[c] for c in ("phones", "electronics", "computers", "gift_cards")])
    orders["cat"] = goods[rng.choice(len(goods), size=len(new), p=[0.35, 0.35, 0.2, 0.1])]
    orders["unit_usd"] = usd_price(world, orders["cat"], orders["seller"], new)
    orders["unit_local"] = np.full(len(new), np.nan)
    orders["qty"] = np.ones(len(new), dtype=np.int64)
    world.tx.add(**orders)


def _account_changes(world: World, who: np.ndarray) -> None:
    """Legitimate security events: device upgrades, password resets, 2FA toggles, profile edits."""
    rng, pop, hab, clock = world.rng, world.pop, world.habits, world.clock

    def at_random(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c = who[mask]
        lo = np.maximum(pop.onboarded[c], clock.start)
        return c, lo + (rng.random(len(c)) * (clock.end - lo)).astype(np.int64)

    upgraded = who[hab.dev_change_t[who] < NEVER]
    t = hab.dev_change_t[upgraded]
    ip = ip_at(world, upgraded, t)
    world.events.add(t=t, customer=upgraded, type=EVENT["device_change"], dev=hab.dev_new[upgraded], ip=ip)
    add_logins(world, upgraded, t + US_PER_MINUTE, hab.dev_new[upgraded], ip, failed_share=0.0)

    c, t = at_random(rng.random(len(who)) < 0.04)
    dev, ip = device_at(world, c, t), ip_at(world, c, t)
    world.events.add(t=t, customer=c, type=EVENT["password_reset"], dev=dev, ip=ip)
    add_logins(
        world, c, t + rng.integers(US_PER_MINUTE, 10 * US_PER_MINUTE, len(c)), dev, ip, failed_share=0.0
    )

    toggled = who[hab.twofa_toggle_t[who] < NEVER]
    t = hab.twofa_toggle_t[toggled]
    kind = np.where(pop.twofa[toggled], EVENT["twofa_disabled"], EVENT["twofa_enabled"])
    world.events.add(
        t=t, customer=toggled, type=kind, dev=device_at(world, toggled, t), ip=ip_at(world, toggled, t)
    )

    for event, share in (("email_change", 0.01), ("phone_change", 0.007), ("address_change", 0.012)):
        c, t = at_random(rng.random(len(who)) < share)
        world.events.add(
            t=t, customer=c, type=EVENT[event], dev=device_at(world, c, t), ip=ip_at(world, c, t)
        )


def twofa_at(world: World, who: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Whether 2FA is on for ``who`` at ``t`` (onboarding state, flipped by an ordinary toggle)."""
    hab, pop = world.habits, world.pop
    return pop.twofa[who] ^ (hab.twofa_toggle_t[who] <= t)
