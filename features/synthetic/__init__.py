"""Synthetic marketplace generator: customers, orders, account events, watchlist and late, noisy labels with planted patterns.

Real KYC data cannot be published, so this package makes a marketplace to develop, demo and
test with. Everything is drawn from one ``numpy.random.Generator`` seeded by ``seed`` (no wall
clock, no string hashing, no set order), so the same arguments give the same tables and
byte-identical files.

Sizes (seed 7, measured on the project's 2-core machine while it was shared with other jobs):
``--customers 5000 --days 120`` (the CLI default) gives about 135,000 transactions, generated in
1-1.5 s; ``--customers 38500 --days 120`` about 990,000 transactions in about 10 s (12 s for the
whole command with parquet files, 1.3 GB peak memory). Volume grows linearly in both arguments.

The ``patterns`` table is generator-only ground truth (which pattern produced which transaction
or customer, and whether it got labelled): never use it as a feature.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
from tqdm import tqdm

from features.synthetic.behaviour import choose_usual_sellers, make_habits, ordinary_activity
from features.synthetic.datacard import GENERATOR_VERSION, datacard, write_dataset
from features.synthetic.patterns import (
    SPECS,
    AccountTakeover,
    HonestTypo,
    OutgrownKyc,
    RestrictedGoods,
    SanctionedOrPep,
    ShellCompanyRing,
    StolenGoodsSeller,
    SyntheticIdentity,
    apply_freezes,
    declare_volumes,
    friendly_fraud,
    transaction_usd,
)
from features.synthetic.population import make_population
from features.synthetic.tables import assemble
from features.synthetic.watchlist import make_watchlist
from features.synthetic.world import Clock, Devices, IPs, World, load_world_reference

__all__ = ["GENERATOR_VERSION", "SPECS", "datacard", "generate", "write_dataset"]

MIN_CUSTOMERS = 100
MIN_DAYS = 7


def generate(
    n_customers: int, days: int, seed: int, start: str = "2026-01-01", progress: bool = False
) -> dict[str, pd.DataFrame]:
    """Generate a synthetic marketplace.

    Args:
        n_customers: number of customers (at least 100).
        days: length of the activity period in days (at least 7).
        seed: random seed; the same arguments give identical tables.
        start: first day of activity (UTC date, ``YYYY-MM-DD``).
        progress: show a progress bar on stderr.

    Returns:
        ``customers``, ``transactions``, ``account_events``, ``watchlist`` and ``labels``, each
        exactly as in ``features.contracts`` (column order, dtypes: ``str``, ``bool``, ``int64``,
        ``float64``, ``datetime64[us, UTC]``), plus ``patterns``, the ground truth: columns
        ``entity_type``, ``entity_id``, ``pattern``, ``instance``, ``stage``, ``labelled`` (bool)
        and ``label``. The generator's arguments are in ``tables["patterns"].attrs["generator"]``.

    Raises:
        ValueError: when an argument is out of range or a reference file lacks a contract value.
    """
    if int(n_customers) < MIN_CUSTOMERS:
        raise ValueError(f"n_customers must be at least {MIN_CUSTOMERS}, got {n_customers}")
    if int(days) < MIN_DAYS:
        raise ValueError(f"days must be at least {MIN_DAYS}, got {days}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    clock = Clock.parse(start, int(days))
    rng = np.random.default_rng(int(seed))
    ref = load_world_reference()
    steps = tqdm(total=8, desc="kycrisk generate", unit="step", file=sys.stderr, disable=not progress)

    def step(what: str) -> None:
        steps.set_postfix_str(what)
        steps.update(1)

    try:
        pop = make_population(rng, ref, clock, int(n_customers))
        world = World(rng=rng, ref=ref, clock=clock, pop=pop, devices=Devices(), ips=IPs(rng, ref))
        watchlist = make_watchlist(rng, ref, clock, max(500, int(n_customers) // 2))
        step("population")
        outgrown = OutgrownKyc()
        # Order matters: scripted actors first, then profile edits, then victims among the rest.
        patterns = [
            StolenGoodsSeller(),
            ShellCompanyRing(),
            SyntheticIdentity(),
            SanctionedOrPep(watchlist),
            HonestTypo(),
            outgrown,
            RestrictedGoods(),
            AccountTakeover(),
        ]
        for pattern in patterns:
            pattern.profile(world)
        step("pattern profiles")
        world.habits = make_habits(world)
        choose_usual_sellers(world)
        step("habits")
        ordinary_activity(world)
        step("ordinary activity")
        for pattern in patterns:
            pattern.activity(world)
        step("planted patterns")
        apply_freezes(world)
        tx = world.tx.concat()
        usd = transaction_usd(world, tx)
        declare_volumes(world, usd, tx, must_declare=np.isin(np.arange(pop.n), outgrown.customers))
        outgrown.label(world, usd, tx)
        ordinary_orders = friendly_fraud(world, usd, tx)
        step("declarations and label noise")
        # How many candidates each pattern drew from: the data card turns counts into rates.
        eligible = {p.name: int(p.eligible) for p in patterns}
        eligible["watchlist_lookalike"] = eligible["sanctioned_or_pep"]
        eligible["friendly_fraud"] = ordinary_orders
        tables = assemble(world, watchlist)
        step("tables")
        tables["patterns"].attrs["generator"] = {
            "version": GENERATOR_VERSION,
            "arguments": {
                "n_customers": int(n_customers),
                "days": int(days),
                "seed": int(seed),
                "start": str(start),
            },
            "period_start": pd.Timestamp(clock.start, unit="us", tz="UTC").isoformat(),
            "period_end": pd.Timestamp(clock.end, unit="us", tz="UTC").isoformat(),
            "eligible": eligible,
        }
        step("done")
    finally:
        steps.close()
    return tables
