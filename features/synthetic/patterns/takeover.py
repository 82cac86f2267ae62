"""Pattern ``account_takeover``: an established buyer's account is taken over and used for a burst of orders."""

from __future__ import annotations

import numpy as np

from features.synthetic.behaviour import twofa_at
from features.synthetic.patterns.common import (
    HIGH_VALUE,
    _days,
    _label,
    _member,
    _order_logins,
    _pick,
    _sellers_for,
)
from features.synthetic.patterns.specs import CODE, SPEC, STAGE
from features.synthetic.world import CATEGORY, EVENT, PAYMENT, World, choice
from features.units import US_PER_DAY, US_PER_HOUR, US_PER_MINUTE

# Victims who notice a takeover and dispute the orders (loud bursts are hard to miss).
LOUD_REPORTED, QUIET_REPORTED, QUIET_SHARE = 0.95, 0.75, 0.35


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
