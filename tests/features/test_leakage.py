"""No leakage: whatever happens at or after time t (transactions, account events, labels becoming
known) changes no feature of a transaction before t, in either engine.

The shared history includes transactions at exactly t, which the futures tie with: a row at t
must not see events at t either, nor labels that become known at t.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.batch import compute_features
from features.contracts import LABELS
from features.definitions import get_feature_set
from features.online import OnlineFeatureStore, event_log

FX = {"USD": 1.0, "EUR": 1.16}
CATEGORIES = {"books": 15.0, "phones": 450.0}
T0 = pd.Timestamp("2024-03-01", tz="UTC")
SLOT = pd.Timedelta(minutes=30)  # coarse slots: many ties and exact window edges
SETS = ("fraud_v1", "fdh_baseline", "fdh_v1")


def _txn(draw, i: int, slot: int) -> dict:
    return {
        "transaction_id": f"t{i}",
        "occurred_at": T0 + slot * SLOT,
        "buyer_id": draw(st.sampled_from(["b0", "b1", "b2"])),
        "seller_id": draw(st.sampled_from(["s0", "s1"])),
        "amount": draw(st.sampled_from([1.0, 25.0, 25.0, 99.99, 1234.5])),
        "currency": draw(st.sampled_from(["USD", "EUR"])),
        "goods_category": draw(st.sampled_from(["books", "phones"])),
        "unit_price": 10.0,
        "quantity": 1,
        "payment_method": "card",
        "buyer_country": draw(st.sampled_from(["US", "DE", None])),
        "seller_country": "US",
        "device_id": draw(st.sampled_from(["d0", "d1", None])),
        "ip_address": draw(st.sampled_from(["ip0", None])),
        "ip_country": draw(st.sampled_from(["US", "DE", None])),
    }


def _event(draw, i: int, slot: int) -> dict:
    return {
        "event_id": f"e{i}",
        "customer_id": draw(st.sampled_from(["b0", "b1", "b2"])),
        "occurred_at": T0 + slot * SLOT,
        "event_type": draw(st.sampled_from(["password_reset", "device_change", "twofa_disabled", "login"])),
        "device_id": None,
        "ip_address": None,
        "ip_country": draw(st.sampled_from(["US", "DE", None])),
    }


def _label(draw, i: int, txn_id: str, slot: int) -> dict:
    return {
        "label_id": f"l{i}",
        "entity_type": "transaction",
        "entity_id": txn_id,
        "label": draw(st.sampled_from(["fraud", "fraud", "money_laundering", "legitimate"])),
        "known_at": T0 + slot * SLOT,
    }


def _slot(cut: int, lo: int, hi: int):
    """A time slot in [lo, hi], often exactly the cut (the boundary that matters)."""
    return st.one_of(st.just(cut), st.integers(lo, hi)) if lo <= cut <= hi else st.integers(lo, hi)


@st.composite
def past_and_two_futures(draw):
    """Shared history up to ``cut`` (inclusive) and two different sets of events at or after it."""
    day = 48
    cut = draw(st.integers(38 * day, 40 * day))  # history covers the 30d + 7d windows
    horizon = cut + 5 * day
    n_past = draw(st.integers(1, 12))
    past_slots = [
        draw(st.one_of(_slot(cut, 0, cut), st.integers(cut - 9 * day, cut - 7 * day))) for _ in range(n_past)
    ]
    past = [_txn(draw, i, s) for i, s in enumerate(past_slots)]
    past_events = [_event(draw, i, draw(_slot(cut - 1, 0, cut - 1))) for i in range(draw(st.integers(0, 6)))]
    # labels known up to the cut (about past transactions) are shared history
    known = []
    for j, tx in enumerate(past):
        if draw(st.booleans()):
            known.append(
                _label(draw, len(known), tx["transaction_id"], draw(st.integers(past_slots[j], cut)))
            )

    def future(tag: str) -> tuple[list, list, list]:
        txns = [
            _txn(draw, 1000 + i, draw(_slot(cut, cut, horizon))) | {"transaction_id": f"{tag}{i}"}
            for i in range(draw(st.integers(0, 6)))
        ]
        events = [
            _event(draw, 1000 + i, draw(_slot(cut, cut, horizon))) | {"event_id": f"{tag}e{i}"}
            for i in range(draw(st.integers(0, 4)))
        ]
        ids = [t["transaction_id"] for t in past + txns]
        labels = [
            _label(draw, 1000 + i, draw(st.sampled_from(ids)), draw(_slot(cut, cut, horizon)))
            | {"label_id": f"{tag}l{i}"}
            for i in range(draw(st.integers(0, 4)))
        ]
        return txns, events, labels

    return cut, past, past_events, known, future("x"), future("y")


def _tables(txns, events, labels, single_currency: bool) -> dict[str, pd.DataFrame]:
    t = pd.DataFrame(txns)
    t["occurred_at"] = t["occurred_at"].astype("datetime64[us, UTC]")
    if single_currency:
        t["currency"] = "EUR"
    e = pd.DataFrame(
        events,
        columns=[
            "event_id",
            "customer_id",
            "occurred_at",
            "event_type",
            "device_id",
            "ip_address",
            "ip_country",
        ],
    )
    e["occurred_at"] = e["occurred_at"].astype("datetime64[us, UTC]")
    lb = pd.DataFrame(labels, columns=["label_id", "entity_type", "entity_id", "label", "known_at"])
    lb["known_at"] = lb["known_at"].astype("datetime64[us, UTC]")
    assert set(lb["label"]) <= set(LABELS)
    return {"transactions": t, "account_events": e, "labels": lb}


def _past_rows(frame: pd.DataFrame, past_ids: list[str]) -> pd.DataFrame:
    return frame.set_index("transaction_id").loc[past_ids]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(past_and_two_futures())
def test_the_future_never_changes_the_past(case):
    cut, past, past_events, known, (tx_a, ev_a, lb_a), (tx_b, ev_b, lb_b) = case
    past_ids = [t["transaction_id"] for t in past]
    for name in SETS:
        single = get_feature_set(name).single_currency
        a = _tables(past + tx_a, past_events + ev_a, known + lb_a, single)
        b = _tables(past + tx_b, past_events + ev_b, known + lb_b, single)
        fa = _past_rows(compute_features(a, name, fx_rates=FX, goods_categories=CATEGORIES), past_ids)
        fb = _past_rows(compute_features(b, name, fx_rates=FX, goods_categories=CATEGORIES), past_ids)
        # global prefix sums differ when other rows differ: equal up to rounding
        np.testing.assert_allclose(
            fa.to_numpy(), fb.to_numpy(), rtol=1e-12, atol=0, equal_nan=True, err_msg=name
        )
        if name == "fraud_v1":
            oa = OnlineFeatureStore(":memory:", name, fx_rates=FX, goods_categories=CATEGORIES).replay(
                event_log(a)
            )
            ob = OnlineFeatureStore(":memory:", name, fx_rates=FX, goods_categories=CATEGORIES).replay(
                event_log(b)
            )
            np.testing.assert_array_equal(
                _past_rows(oa, past_ids).to_numpy(), _past_rows(ob, past_ids).to_numpy()
            )
            np.testing.assert_allclose(
                _past_rows(oa, past_ids).to_numpy(), fa.to_numpy(), rtol=1e-9, equal_nan=True
            )
