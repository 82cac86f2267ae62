"""Batch engine: hand-computed expectations per family, and a brute-force oracle on random data."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import features.batch as batch
from features.batch import compute_features, timestamps_us
from features.contracts import BAD_TRANSACTION_LABELS
from features.definitions import ENTITIES, Aggregation, FeatureSet, get_feature_set
from features.synthetic.fast_tables import synthetic_tables

FX = {"USD": 1.0, "EUR": 1.16, "GBP": 1.33, "JPY": 0.0066, "CNY": 0.14}
CATEGORIES = {
    "electronics": 150.0,
    "fashion": 35.0,
    "phones": 450.0,
    "precursor_chemicals": 120.0,
    "books": 15.0,
}
T0 = pd.Timestamp("2024-03-01", tz="UTC")
NAN = np.nan


def at(minutes: float = 0, hours: float = 0, days: float = 0, seconds: float = 0) -> pd.Timestamp:
    return T0 + pd.Timedelta(minutes=minutes, hours=hours, days=days, seconds=seconds)


def txns(rows: list[dict]) -> pd.DataFrame:
    base = {
        "currency": "USD",
        "goods_category": "books",
        "unit_price": 1.0,
        "quantity": 1,
        "payment_method": "card",
        "buyer_country": "US",
        "seller_country": "US",
        "device_id": None,
        "ip_address": None,
        "ip_country": None,
        "seller_id": "s1",
        "amount": 1.0,
    }
    frame = pd.DataFrame([{**base, "transaction_id": f"t{i}", **r} for i, r in enumerate(rows)])
    frame["occurred_at"] = frame["occurred_at"].astype("datetime64[us, UTC]")
    return frame


def fset(*aggs: Aggregation) -> FeatureSet:
    return FeatureSet("test", "0", "hand-made", (), tuple(aggs))


def run(frame: pd.DataFrame, *aggs: Aggregation, **tables) -> pd.DataFrame:
    return compute_features(
        {"transactions": frame, **tables}, fset(*aggs), fx_rates=FX, goods_categories=CATEGORIES
    )


def check(out: pd.DataFrame, name: str, expected: list[float]) -> None:
    np.testing.assert_allclose(
        out[name].to_numpy(), expected, rtol=1e-12, atol=0, equal_nan=True, err_msg=name
    )


# --- hand-computed families ----------------------------------------------------------------------

# buyer b1: 0m 10, 30m 20, 60m 30, 60m 40 (tie), 61m 50
VELOCITY = [
    {"occurred_at": at(0), "buyer_id": "b1", "amount": 10.0},
    {"occurred_at": at(30), "buyer_id": "b1", "amount": 20.0},
    {"occurred_at": at(60), "buyer_id": "b1", "amount": 30.0},
    {"occurred_at": at(60), "buyer_id": "b1", "amount": 40.0},
    {"occurred_at": at(61), "buyer_id": "b1", "amount": 50.0},
]


def test_counts_and_sums_with_ties_and_window_edges():
    out = run(
        txns(VELOCITY),
        Aggregation("buyer", "txn", "count", "1h"),
        Aggregation("buyer", "amount", "sum", "1h"),
        Aggregation("buyer", "txn", "count", "1h", closed="left"),
        Aggregation("buyer", "txn", "count", "24h"),
        Aggregation("buyer", "amount", "sum", "24h"),
        Aggregation("buyer", "amount", "mean", "24h"),
        Aggregation("buyer", "txn", "count", "all"),
    )
    # (t-1h, t): the event exactly 1h earlier and the same-timestamp tie are not seen
    check(out, "buyer_txn_count_1h", [0, 1, 1, 1, 3])
    check(out, "buyer_amount_sum_1h", [0, 10, 20, 20, 90])
    # [t-1h, t) includes the left edge
    check(out, "buyer_txn_count_1h_closed_left", [0, 1, 2, 2, 3])
    check(out, "buyer_txn_count_24h", [0, 1, 2, 2, 4])
    check(out, "buyer_amount_sum_24h", [0, 10, 30, 30, 100])
    check(out, "buyer_amount_mean_24h", [NAN, 10, 15, 15, 25])
    check(out, "buyer_txn_count_all", [0, 1, 2, 2, 4])


def test_ratio_max_min_std():
    out = run(
        txns(VELOCITY),
        Aggregation("buyer", "amount", "ratio", "30d"),
        Aggregation("buyer", "amount", "max", "30d"),
        Aggregation("buyer", "amount", "min", "all"),
        Aggregation("buyer", "amount", "std", "30d"),
    )
    check(out, "buyer_amount_ratio_30d", [NAN, 2, 2, 40 / 15, 2])
    check(out, "buyer_amount_max_30d", [NAN, 10, 20, 20, 40])
    check(out, "buyer_amount_min_all", [NAN, 10, 10, 10, 10])
    check(
        out,
        "buyer_amount_std_30d",
        [NAN, NAN, np.std([10, 20], ddof=1), np.std([10, 20], ddof=1), np.std([10, 20, 30, 40], ddof=1)],
    )


def test_std_of_a_constant_window_is_exactly_zero():
    rows = [{"occurred_at": at(i), "buyer_id": "b1", "amount": 0.1} for i in range(6)]
    rows.insert(0, {"occurred_at": at(-50), "buyer_id": "b1", "amount": 1e6})
    out = run(txns(rows), Aggregation("buyer", "amount", "std", "30m"))
    # rows: 1e6 at -50m (out of every later window), then 0.1 at 0, 1, ... 5 minutes
    std = out["buyer_amount_std_30m"].to_numpy()
    assert np.isnan(std[:3]).all() and (std[3:] == 0.0).all()


def test_nunique_with_ties_and_window_edges():
    seq = [(0, "b1"), (10, "b2"), (20, "b1"), (60, "b3"), (60, "b2"), (80, "b1"), (130, "b9")]
    frame = txns([{"occurred_at": at(m), "buyer_id": b, "seller_id": "s1"} for m, b in seq])
    out = run(
        frame,
        Aggregation("seller", "buyer", "nunique", "1h"),
        Aggregation("seller", "buyer", "nunique", "all"),
    )
    check(out, "seller_buyer_nunique_1h", [0, 1, 2, 2, 2, 2, 1])
    check(out, "seller_buyer_nunique_all", [0, 1, 2, 2, 2, 3, 3])


def test_include_current_like_the_handbook():
    frame = txns(
        [
            {"occurred_at": at(hours=h), "buyer_id": "b1", "amount": a}
            for h, a in ((0, 10), (12, 20), (36, 30))
        ]
    )
    out = run(
        frame,
        Aggregation("buyer", "txn", "count", "1d", include_current=True),
        Aggregation("buyer", "amount", "mean", "1d", include_current=True),
        Aggregation("buyer", "amount", "std", "1d", include_current=True),
    )
    # at 36h the window (12h, 36h) excludes the edge at 12h: only the current transaction
    check(out, "buyer_txn_count_1d_with_current", [1, 2, 1])
    check(out, "buyer_amount_mean_1d_with_current", [10, 15, 30])
    check(out, "buyer_amount_std_1d_with_current", [NAN, np.std([10, 20], ddof=1), NAN])


def _fraud_case() -> tuple[pd.DataFrame, pd.DataFrame]:
    frame = txns(
        [
            {"occurred_at": at(days=0), "buyer_id": "b1", "seller_id": "s2"},  # t0: bad, known day 8
            {"occurred_at": at(days=1), "buyer_id": "b2", "seller_id": "s2"},  # t1: bad, known day 10
            {"occurred_at": at(days=2), "buyer_id": "b3", "seller_id": "s2"},  # t2: bad, known day 12
            {"occurred_at": at(days=9), "buyer_id": "b4", "seller_id": "s2"},
            {"occurred_at": at(days=10), "buyer_id": "b5", "seller_id": "s2"},
            {"occurred_at": at(days=10, seconds=1), "buyer_id": "b6", "seller_id": "s2"},
        ]
    )
    labels = pd.DataFrame(
        {
            "label_id": ["l0", "l1", "l2", "l3"],
            "entity_type": ["transaction"] * 4,
            "entity_id": ["t0", "t1", "t2", "t3"],
            "label": ["fraud", "money_laundering", "restricted_goods", "legitimate"],
            "known_at": [at(days=8), at(days=10), at(days=12), at(days=9, seconds=1)],
        }
    )
    return frame, labels


def test_fraud_rate_uses_labels_known_strictly_before_t_with_delay():
    frame, labels = _fraud_case()
    out = run(
        frame,
        Aggregation("seller", "txn", "fraud_rate", "30d", delay="7d"),
        Aggregation("seller", "txn", "fraud_count", "30d", delay="7d"),
        Aggregation("seller", "txn", "count", "30d", delay="7d"),
        Aggregation("seller", "txn", "fraud_rate", "30d", delay="7d", closed="right"),
        Aggregation("seller", "txn", "count", "1d", delay="7d"),
        Aggregation("seller", "txn", "count", "1d", delay="7d", closed="right"),
        Aggregation("seller", "txn", "fraud_rate", "1d", delay="7d", fill=0.0),
        labels=labels,
    )
    # day 9: [t-37d, t-7d) = [-28d, 2d): t0, t1 (t2 at exactly 2d is out); only t0's label known
    # day 10: t0, t1, t2; t1's label is known at exactly day 10: not yet
    # day 10 + 1s: t1's label now known
    check(out, "seller_fraud_rate_30d_delay7d", [NAN, NAN, NAN, 1 / 2, 1 / 3, 2 / 3])
    check(out, "seller_fraud_count_30d_delay7d", [0, 0, 0, 1, 1, 2])
    check(out, "seller_txn_count_30d_delay7d", [0, 0, 0, 2, 3, 3])
    # (t-37d, t-7d] includes t2 at exactly 2d on day 9
    check(out, "seller_fraud_rate_30d_delay7d_closed_right", [NAN, NAN, NAN, 1 / 3, 1 / 3, 2 / 3])
    # day 9: [1d, 2d) = {t1}, (1d, 2d] = {t2}; day 10: [2d, 3d) = {t2}, (2d, 3d] = {}; day 10 + 1s: empty
    check(out, "seller_txn_count_1d_delay7d", [0, 0, 0, 1, 1, 0])
    check(out, "seller_txn_count_1d_delay7d_closed_right", [0, 0, 0, 1, 0, 0])
    check(out, "seller_fraud_rate_1d_delay7d", [0, 0, 0, 0, 0, 0])


def test_new_device_first_pair_order_and_links():
    frame = txns(
        [
            {"occurred_at": at(0), "buyer_id": "b1", "seller_id": "s1", "device_id": "d1"},
            {"occurred_at": at(10), "buyer_id": "b1", "seller_id": "s1", "device_id": "d2"},
            {"occurred_at": at(20), "buyer_id": "b1", "seller_id": "s2", "device_id": "d1"},
            {"occurred_at": at(30), "buyer_id": "b1", "seller_id": "s1", "device_id": None},
            {"occurred_at": at(30), "buyer_id": "b2", "seller_id": "s1", "device_id": "d1"},
        ]
    )
    out = run(
        frame,
        Aggregation("buyer_device", "txn", "count", "all"),
        Aggregation("pair", "txn", "count", "all"),
        Aggregation("device", "buyer", "nunique", "all"),
        Aggregation("buyer", "device", "nunique", "30d"),
    )
    check(out, "buyer_device_txn_count_all", [0, 0, 1, NAN, 0])  # 0 = new device for the buyer
    check(out, "pair_txn_count_all", [0, 1, 0, 2, 0])  # 0 = first order between them
    check(out, "device_buyer_nunique_all", [0, 0, 1, NAN, 1])
    check(out, "buyer_device_nunique_30d", [0, 1, 2, 2, 0])


def test_account_events_before_an_order():
    frame = txns([{"occurred_at": at(0), "buyer_id": "b1"}, {"occurred_at": at(hours=2), "buyer_id": "b1"}])
    events = pd.DataFrame(
        {
            "event_id": ["e1", "e2", "e3", "e4", "e5"],
            "customer_id": ["b1", "b1", "b1", "b1", "b2"],
            "occurred_at": [at(hours=-2), at(-30), at(-10), at(0), at(-5)],
            "event_type": ["password_reset", "password_reset", "login", "device_change", "password_reset"],
            "device_id": None,
            "ip_address": None,
            "ip_country": None,
        }
    )
    events["occurred_at"] = events["occurred_at"].astype("datetime64[us, UTC]")
    ae = dict(source="account_events")
    out = run(
        frame,
        Aggregation("buyer", "event", "count", "1h", event_type="password_reset", **ae),
        Aggregation("buyer", "event", "count", "24h", event_type="password_reset", **ae),
        Aggregation("buyer", "event", "count", "1h", event_type="device_change", **ae),
        Aggregation("buyer", "event", "count", "24h", event_type="device_change", **ae),
        Aggregation("buyer", "event", "count", "1h", **ae),
        Aggregation("buyer", "event", "since_last", "all", event_type="password_reset", **ae),
        account_events=events,
    )
    check(out, "buyer_password_reset_count_1h", [1, 0])
    check(out, "buyer_password_reset_count_24h", [2, 2])
    check(out, "buyer_device_change_count_1h", [0, 0])
    check(out, "buyer_device_change_count_24h", [0, 1])  # the one at exactly t is seen only later
    check(out, "buyer_event_count_1h", [2, 0])
    check(out, "buyer_password_reset_since_last_all", [0.5, 2.5])


def test_since_last_transaction_and_null_keys():
    frame = txns(
        [
            {"occurred_at": at(0), "buyer_id": "b1", "ip_address": "1.1.1.1"},
            {"occurred_at": at(90), "buyer_id": "b1", "ip_address": None},
            {"occurred_at": at(90), "buyer_id": "b1", "ip_address": "1.1.1.1"},
        ]
    )
    out = run(
        frame, Aggregation("buyer", "txn", "since_last", "all"), Aggregation("ip", "txn", "count", "1h")
    )
    check(out, "buyer_txn_since_last_all", [NAN, 1.5, 1.5])
    check(out, "ip_txn_count_1h", [0, NAN, 0])


def test_output_keeps_input_order_and_ignores_it():
    tables = synthetic_tables(300, seed=3)
    out = compute_features(tables, "fraud_v1", fx_rates=FX, goods_categories=CATEGORIES)
    assert out["transaction_id"].tolist() == tables["transactions"]["transaction_id"].tolist()
    assert list(out.columns) == ["transaction_id", *get_feature_set("fraud_v1").feature_names]
    assert (out.dtypes.iloc[1:] == np.float64).all()
    shuffled = {k: v.sample(frac=1.0, random_state=1) for k, v in tables.items()}
    out2 = compute_features(shuffled, "fraud_v1", fx_rates=FX, goods_categories=CATEGORIES)
    pd.testing.assert_frame_equal(
        out.set_index("transaction_id").sort_index(),
        out2.set_index("transaction_id").sort_index(),
        rtol=1e-12,
    )


def test_rank_fallback_when_keys_do_not_fit(monkeypatch):
    tables = synthetic_tables(300, seed=4)
    expected = compute_features(tables, "fraud_v1", fx_rates=FX, goods_categories=CATEGORIES)
    monkeypatch.setattr(batch, "_INT_LIMIT", 1000)
    got = compute_features(tables, "fraud_v1", fx_rates=FX, goods_categories=CATEGORIES)
    pd.testing.assert_frame_equal(expected, got, rtol=1e-12)


def test_input_errors():
    tables = synthetic_tables(50, seed=0)
    with pytest.raises(ValueError, match="account_events"):
        compute_features(tables["transactions"], "fraud_v1", fx_rates=FX, goods_categories=CATEGORIES)
    with pytest.raises(ValueError, match="share one"):
        compute_features(tables, "fdh_baseline")
    bad = tables["transactions"].copy()
    bad.loc[3, "currency"] = "XXX"
    with pytest.raises(ValueError, match="XXX"):
        compute_features(
            {**tables, "transactions": bad}, "fraud_v1", fx_rates=FX, goods_categories=CATEGORIES
        )


def test_empty_tables():
    tables = synthetic_tables(20, seed=0)
    empty = {k: v.iloc[:0] for k, v in tables.items()}
    out = compute_features(empty, "fraud_v1", fx_rates=FX, goods_categories=CATEGORIES)
    assert len(out) == 0 and list(out.columns)[0] == "transaction_id"
    out = compute_features(
        {**tables, "account_events": empty["account_events"], "labels": empty["labels"]},
        "fraud_v1",
        fx_rates=FX,
        goods_categories=CATEGORIES,
    )
    assert (out["buyer_password_reset_count_24h"] == 0).all()
    assert (out["seller_fraud_count_30d_delay7d"] == 0).all()


# --- brute-force oracle ----------------------------------------------------------------------------


def brute_force(tables: dict[str, pd.DataFrame], fs: FeatureSet) -> pd.DataFrame:
    """Every aggregation, row by row, straight from the definitions (slow; exact sums)."""
    txn = tables["transactions"].reset_index(drop=True)
    t = timestamps_us(txn["occurred_at"])
    usd = txn["amount"].to_numpy() * txn["currency"].map(FX).to_numpy()
    known: dict[str, int] = {}
    lb = tables["labels"]
    for _, r in lb[(lb.entity_type == "transaction") & lb.label.isin(BAD_TRANSACTION_LABELS)].iterrows():
        k = int(timestamps_us(pd.Series([r.known_at]))[0])
        known[r.entity_id] = min(known.get(r.entity_id, k), k)
    out = {}
    for agg in fs.aggregations:
        a, b = agg.offsets()
        if agg.source == "transactions":
            src, st = txn, t
        else:
            ae = tables["account_events"]
            src = (ae[ae.event_type == agg.event_type] if agg.event_type else ae).reset_index(drop=True)
            st = timestamps_us(src["occurred_at"])
        col = agg.column
        vals = usd if col == "amount_usd" else (src[col].to_numpy() if col else None)
        by_key: dict[tuple, list[int]] = {}
        for j, key in enumerate(zip(*[src[c] for c in ENTITIES[agg.entity][agg.source]], strict=True)):
            if not any(pd.isna(v) for v in key):
                by_key.setdefault(key, []).append(j)
        values = np.full(len(txn), np.nan)
        for i in range(len(txn)):
            key = tuple(txn[c][i] for c in ENTITIES[agg.entity]["transactions"])
            if any(pd.isna(v) for v in key):
                continue
            js = [j for j in by_key.get(key, []) if st[j] + a <= t[i] and (b is None or t[i] < st[j] + b)]
            xs = (
                [vals[j] for j in js] + ([vals[i]] if agg.include_current else []) if vals is not None else []
            )
            op = agg.op
            if op == "count":
                v = len(js) + agg.include_current
            elif op == "sum":
                v = math.fsum(xs)
            elif op == "mean":
                v = math.fsum(xs) / len(xs) if xs else NAN
            elif op in ("max", "min"):
                v = (max if op == "max" else min)(xs) if xs else NAN
            elif op == "std":
                v = float(np.std(xs, ddof=1)) if len(xs) >= 2 else NAN
            elif op == "ratio":
                v = vals[i] / (math.fsum(xs) / len(xs)) if xs else NAN
            elif op == "nunique":
                v = len({x for x in xs if not pd.isna(x)})
            elif op in ("fraud_count", "fraud_rate"):
                bad = sum(known.get(txn["transaction_id"][j], 2**62) < t[i] for j in js)
                v = bad if op == "fraud_count" else (bad / len(js) if js else NAN)
            else:
                v = (t[i] - max(st[j] for j in js)) / 3.6e9 if js else NAN
            values[i] = agg.fill if (agg.fill is not None and v != v) else v
        out[agg.name] = values
    return pd.DataFrame(out)


@pytest.mark.parametrize("name", ["fraud_v1", "fdh_v1", "fdh_baseline"])
def test_matches_brute_force_on_random_data(name):
    tables = synthetic_tables(260, seed=11, n_buyers=20, n_sellers=6, days=12)
    if name == "fdh_baseline":
        tables["transactions"] = tables["transactions"].assign(currency="EUR")
    got = compute_features(tables, name, fx_rates=FX, goods_categories=CATEGORIES)
    expected = brute_force(tables, get_feature_set(name))
    for col in expected.columns:
        g, e = got[col].to_numpy(), expected[col].to_numpy()
        if col.split("_")[-2:-1] in (["count"], ["nunique"]) or "_count_" in col:
            np.testing.assert_array_equal(g, e, err_msg=col)
        np.testing.assert_allclose(g, e, rtol=1e-9, atol=0, equal_nan=True, err_msg=col)
