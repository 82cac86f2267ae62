"""What follows the patterns: friendly-fraud chargebacks, account freezes and every transaction's USD value."""

from __future__ import annotations

import numpy as np

from features.synthetic.patterns.common import _days, _label
from features.synthetic.patterns.specs import SPEC, _count
from features.synthetic.world import NULL, World


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
