"""Helpers the pattern modules share: picking candidates, recording ground truth and labels, sellers per category.

Package-internal: each pattern module plants one family of fraud or KYC risk with these, so that
ground truth (``world.truth``) and labels are recorded the same way for all of them.
"""

from __future__ import annotations

import numpy as np

from features.synthetic.behaviour import add_logins
from features.synthetic.patterns.specs import CODE, STAGE
from features.synthetic.population import NAT, day_floor
from features.synthetic.world import CATEGORY, LABEL, SOURCE, World
from features.units import US_PER_DAY, US_PER_MINUTE, US_PER_YEAR

HIGH_VALUE = {"phones": 30, "electronics": 30, "gift_cards": 20, "computers": 15, "jewelry": 5}


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


def _order_logins(
    world: World, who: np.ndarray, t: np.ndarray, dev: np.ndarray, ip: np.ndarray, share: float
) -> None:
    rng = world.rng
    mask = rng.random(len(who)) < share
    back = rng.integers(US_PER_MINUTE, 15 * US_PER_MINUTE, int(mask.sum()))
    add_logins(world, who[mask], t[mask] - back, dev[mask], ip[mask], failed_share=0.0)
