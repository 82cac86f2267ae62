"""Fast, contract-shaped synthetic tables without the marketplace model: many rows in seconds, for
tests and benchmarks.

``synthetic_tables`` makes small ``transactions``, ``account_events`` and ``labels`` full of edge
cases (same-timestamp ties, events exactly one window apart, null devices, several currencies,
labels known late) for the engines' parity and leakage tests; ``synthetic_transactions`` makes
millions of skewed transactions for the feature benchmarks (``features.bench.engine``). Apart from
``features.synthetic.generate``, which models customers, behaviour and planted fraud patterns for
training and the demo, because these need neither and must be fast.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_START = pd.Timestamp("2025-01-01", tz="UTC")
_CURRENCIES = ("USD", "EUR", "GBP", "JPY", "CNY")
_COUNTRIES = ("US", "DE", "GB", "CN", "FR", "BR", "IN", "NG")
_EVENT_TYPES = ("login", "password_reset", "device_change", "twofa_disabled", "twofa_enabled", "email_change")


def _ids(prefix: str, codes: np.ndarray) -> pd.Series:
    return prefix + pd.Series(codes, dtype="int64").astype("str")


def synthetic_transactions(
    n: int, seed: int = 0, days: int | None = None, *, usd_only: bool = False
) -> pd.DataFrame:
    """Contract-shaped synthetic transactions, generated with numpy (5M rows in a few seconds).

    Buyers (n/5 of them) and sellers (n/250) get log-normal activity weights (sigma 1.3 and 1.8),
    so most buyers place a handful of orders while the busiest sellers take tens of thousands.
    Timestamps are whole seconds (ties happen), uniform over ``days`` (default: n/55,000, at
    least 30).

    Args:
        n: number of transactions.
        seed: random seed.
        days: length of the period.
        usd_only: every amount in USD (the benchmark); otherwise a few currencies.

    Returns:
        The ``transactions`` contract columns, sorted by ``occurred_at``.
    """
    rng = np.random.default_rng(seed)
    days = days or max(30, n // 55_000)
    n_buyers, n_sellers = max(n // 5, 10), max(n // 250, 3)
    wb = rng.lognormal(0.0, 1.3, n_buyers)
    ws = rng.lognormal(0.0, 1.8, n_sellers)
    buyer = rng.choice(n_buyers, n, p=wb / wb.sum())
    seller = rng.choice(n_sellers, n, p=ws / ws.sum())
    secs = np.sort(rng.integers(0, days * 86_400, n))
    occurred = _START + pd.to_timedelta(secs, unit="s")
    amount = np.round(rng.lognormal(3.5, 1.2, n), 2) + 0.01
    currency = (
        np.full(n, "USD", dtype=object)
        if usd_only
        else rng.choice(_CURRENCIES, n, p=[0.5, 0.2, 0.1, 0.1, 0.1])
    )
    # A buyer mostly uses one device, IP and country; sometimes another.
    device = np.where(rng.random(n) < 0.85, buyer, rng.integers(0, n_buyers, n))
    country_of = rng.integers(0, len(_COUNTRIES), n_buyers)
    buyer_country = np.asarray(_COUNTRIES, dtype=object)[country_of[buyer]]
    ip_country = np.where(rng.random(n) < 0.9, buyer_country, rng.choice(_COUNTRIES, n))
    return pd.DataFrame(
        {
            "transaction_id": _ids("t", np.arange(n)),
            "occurred_at": occurred.astype("datetime64[us, UTC]"),
            "buyer_id": _ids("b", buyer),
            "seller_id": _ids("s", seller),
            "amount": amount,
            "currency": pd.Series(currency, dtype="str"),
            "goods_category": pd.Series(
                rng.choice(["electronics", "fashion", "phones", "books"], n), dtype="str"
            ),
            "unit_price": amount,
            "quantity": np.ones(n, dtype=np.int64),
            "payment_method": pd.Series(rng.choice(["card", "wallet"], n), dtype="str"),
            "buyer_country": pd.Series(buyer_country, dtype="str"),
            "seller_country": pd.Series(rng.choice(_COUNTRIES, n), dtype="str"),
            "device_id": _ids("d", device).where(rng.random(n) > 0.05),
            "ip_address": _ids("ip", device % max(n_buyers // 2, 1)).where(rng.random(n) > 0.05),
            "ip_country": pd.Series(ip_country, dtype="str").where(rng.random(n) > 0.03),
        }
    )


def synthetic_tables(
    n_transactions: int,
    seed: int = 0,
    *,
    n_buyers: int | None = None,
    n_sellers: int | None = None,
    days: int = 20,
) -> dict[str, pd.DataFrame]:
    """Small synthetic ``transactions``, ``account_events`` and ``labels`` for tests.

    Timestamps fall on a 15-minute grid (plus an occasional extra second), so there are many
    same-timestamp ties and events exactly one window apart; several currencies; null devices,
    IPs and countries; about 15% of transactions get a bad label known 0-20 days later, some
    a second one.
    """
    rng = np.random.default_rng(seed)
    n = n_transactions
    nb = n_buyers or max(n // 10, 5)
    ns = n_sellers or max(n // 40, 3)
    slots = days * 96
    secs = rng.integers(0, slots, n) * 900 + np.where(rng.random(n) < 0.1, 1, 0)
    occurred = (_START + pd.to_timedelta(secs, unit="s")).astype("datetime64[us, UTC]")
    buyer = rng.integers(0, nb, n)
    amount = np.round(rng.lognormal(3.0, 1.0, n), 2) + 0.01
    # Repeated amounts make constant windows (std 0) likely.
    amount = np.where(rng.random(n) < 0.2, 25.0, amount)
    txn = pd.DataFrame(
        {
            "transaction_id": [f"t{i}" for i in range(n)],
            "occurred_at": occurred,
            "buyer_id": [f"b{i}" for i in buyer],
            "seller_id": [f"s{i}" for i in rng.integers(0, ns, n)],
            "amount": amount,
            "currency": rng.choice(_CURRENCIES, n),
            "goods_category": rng.choice(["electronics", "fashion", "phones", "precursor_chemicals"], n),
            "unit_price": amount,
            "quantity": np.ones(n, dtype=np.int64),
            "payment_method": rng.choice(["card", "wallet"], n),
            "buyer_country": pd.Series(rng.choice(_COUNTRIES[:4], n)).where(rng.random(n) > 0.1),
            "seller_country": rng.choice(_COUNTRIES[:4], n),
            "device_id": pd.Series([f"d{i % (nb // 2 + 1)}" for i in buyer + rng.integers(0, 3, n)]).where(
                rng.random(n) > 0.1
            ),
            "ip_address": pd.Series([f"ip{i}" for i in rng.integers(0, max(nb // 3, 2), n)]).where(
                rng.random(n) > 0.1
            ),
            "ip_country": pd.Series(rng.choice(_COUNTRIES[:5], n)).where(rng.random(n) > 0.1),
        }
    )
    m = n // 2
    ae = pd.DataFrame(
        {
            "event_id": [f"e{i}" for i in range(m)],
            "customer_id": [f"b{i}" for i in rng.integers(0, nb, m)],
            "occurred_at": (_START + pd.to_timedelta(rng.integers(0, slots, m) * 900, unit="s")).astype(
                "datetime64[us, UTC]"
            ),
            "event_type": rng.choice(_EVENT_TYPES, m),
            "device_id": pd.Series([f"d{i}" for i in rng.integers(0, nb, m)]).where(rng.random(m) > 0.3),
            "ip_address": None,
            "ip_country": pd.Series(rng.choice(_COUNTRIES[:5], m)).where(rng.random(m) > 0.3),
        }
    )
    bad = np.flatnonzero(rng.random(n) < 0.15)
    again = bad[rng.random(len(bad)) < 0.2]
    ids = np.concatenate([bad, again])
    delay = pd.to_timedelta(rng.integers(0, 20 * 96, len(ids)) * 900, unit="s")
    labels = pd.DataFrame(
        {
            "label_id": [f"l{i}" for i in range(len(ids))],
            "entity_type": "transaction",
            "entity_id": txn["transaction_id"].to_numpy()[ids],
            "label": rng.choice(["fraud", "money_laundering", "legitimate"], len(ids), p=[0.6, 0.2, 0.2]),
            "known_at": (txn["occurred_at"].iloc[ids].reset_index(drop=True) + delay).astype(
                "datetime64[us, UTC]"
            ),
            "source": "chargeback",
        }
    )
    return {"transactions": txn, "account_events": ae, "labels": labels}


__all__ = ["synthetic_tables", "synthetic_transactions"]
