"""Feature definitions: generated names, validation, window offsets, registry, row-level features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.definitions import (
    ENTITIES,
    FEATURE_SETS,
    ROW_FEATURES,
    US_PER_DAY,
    US_PER_HOUR,
    Aggregation,
    FeatureSet,
    Reference,
    compute_row_features,
    describe_feature_set,
    get_feature_set,
    parse_duration,
    row_feature_inputs,
)

FX = {"USD": 1.0, "EUR": 1.16, "JPY": 0.0066}
CATEGORIES = {"phones": 450.0, "books": 15.0}


def test_names_are_generated_from_the_fields():
    assert Aggregation("buyer", "amount", "sum", "24h").name == "buyer_amount_sum_24h"
    assert (
        Aggregation("seller", "txn", "fraud_rate", "30d", delay="7d").name == "seller_fraud_rate_30d_delay7d"
    )
    assert Aggregation("device", "buyer", "nunique", "all").name == "device_buyer_nunique_all"
    assert (
        Aggregation(
            "buyer", "event", "count", "1h", source="account_events", event_type="password_reset"
        ).name
        == "buyer_password_reset_count_1h"
    )
    assert (
        Aggregation("buyer", "txn", "count", "7d", include_current=True).name
        == "buyer_txn_count_7d_with_current"
    )
    right = Aggregation("seller", "txn", "count", "1d", delay="7d", closed="right")
    assert right.name == "seller_txn_count_1d_delay7d_closed_right"
    # The default closure is not spelled out.
    assert (
        Aggregation("seller", "txn", "count", "1d", delay="7d", closed="left").name
        == "seller_txn_count_1d_delay7d"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"entity": "planet", "measure": "txn", "op": "count", "window": "1h"},
        {"entity": "buyer", "measure": "amount", "op": "nunique", "window": "1h"},
        {"entity": "buyer", "measure": "seller", "op": "sum", "window": "1h"},
        {"entity": "buyer", "measure": "txn", "op": "count", "window": "1week"},
        {"entity": "buyer", "measure": "txn", "op": "count", "window": "1h", "closed": "right"},
        {"entity": "seller", "measure": "txn", "op": "fraud_rate", "window": "all", "delay": "7d"},
        {
            "entity": "buyer",
            "measure": "txn",
            "op": "count",
            "window": "1h",
            "include_current": True,
            "delay": "1d",
        },
        {"entity": "buyer", "measure": "event", "op": "count", "window": "1h", "event_type": "login"},
        {"entity": "pair", "measure": "event", "op": "count", "window": "1h", "source": "account_events"},
        {"entity": "buyer", "measure": "amount", "op": "count", "window": "1h"},
    ],
)
def test_invalid_definitions_are_rejected(kwargs):
    with pytest.raises(ValueError):
        Aggregation(**kwargs)


def test_offsets_encode_the_window_boundaries():
    h, d = US_PER_HOUR, US_PER_DAY
    # (t - w, t): e + 1 <= t < e + w
    assert Aggregation("buyer", "txn", "count", "1h").offsets() == (1, h)
    # default delayed window [t - (w + d), t - d): e + d + 1 <= t < e + w + d + 1
    assert Aggregation("seller", "txn", "count", "1d", delay="7d").offsets() == (7 * d + 1, 8 * d + 1)
    # handbook: (t - (w + d), t - d]: e + d <= t < e + w + d
    assert Aggregation("seller", "txn", "count", "1d", delay="7d", closed="right").offsets() == (7 * d, 8 * d)
    assert Aggregation("buyer", "txn", "count", "all").offsets() == (1, None)
    # with a coarser time unit, strictness is one unit
    assert Aggregation("buyer", "txn", "count", "1h").offsets(unit=1_000_000) == (1_000_000, h)


def test_parse_duration():
    assert parse_duration("90s") == 90_000_000
    assert parse_duration("15m") == 15 * 60_000_000
    assert parse_duration("24h") == parse_duration("1d") == US_PER_DAY
    for bad in ("0h", "1w", "h", "-1d", "1.5h"):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_registry_and_versions():
    assert set(FEATURE_SETS) >= {"fraud_v1", "fdh_baseline", "fdh_v1"}
    for name, fs in FEATURE_SETS.items():
        assert get_feature_set(name) is fs
        assert fs.version and fs.id == f"{name}@{fs.version}"
        assert len(set(fs.feature_names)) == len(fs.feature_names)
    assert get_feature_set(FEATURE_SETS["fdh_v1"]) is FEATURE_SETS["fdh_v1"]
    with pytest.raises(KeyError, match="fraud_v1"):
        get_feature_set("nope")
    with pytest.raises(ValueError, match="twice"):
        agg = Aggregation("buyer", "txn", "count", "1h")
        FeatureSet("dup", "1", "", (), (agg, agg))


def test_fingerprint_changes_with_any_definition():
    a = FeatureSet("x", "1", "", (), (Aggregation("buyer", "txn", "count", "1h"),))
    b = FeatureSet("x", "1", "", (), (Aggregation("buyer", "txn", "count", "2h"),))
    assert a.fingerprint != b.fingerprint


def test_fdh_baseline_is_the_handbooks_15_features():
    fs = get_feature_set("fdh_baseline")
    assert len(fs.feature_names) == 15
    assert fs.row_features == ("amount", "is_weekend", "is_night")
    by_name = {a.name: a for a in fs.aggregations}
    for n in ("1d", "7d", "30d"):
        count = by_name[f"buyer_txn_count_{n}_with_current"]
        assert count.include_current and count.delay is None
        assert by_name[f"buyer_amount_local_mean_{n}_with_current"].include_current
        rate = by_name[f"seller_fraud_rate_{n}_delay7d_closed_right"]
        assert rate.closed_ends == "right" and rate.delay == "7d" and rate.fill == 0.0
        assert f"seller_txn_count_{n}_delay7d_closed_right" in by_name
    assert fs.single_currency


def test_fraud_v1_covers_the_required_families():
    names = set(get_feature_set("fraud_v1").feature_names)
    for w in ("1h", "24h", "7d", "30d"):
        assert {
            f"buyer_txn_count_{w}",
            f"buyer_amount_sum_{w}",
            f"seller_txn_count_{w}",
            f"seller_amount_sum_{w}",
        } <= names
    assert {
        "buyer_amount_ratio_30d",
        "buyer_amount_max_30d",
        "buyer_amount_std_30d",
        "pair_txn_count_all",
        "buyer_device_txn_count_all",
        "buyer_ipcountry_txn_count_all",
        "seller_buyer_nunique_7d",
        "buyer_seller_nunique_7d",
        "seller_buyercountry_nunique_30d",
        "seller_fraud_rate_30d_delay7d",
        "buyer_password_reset_since_last_all",
        "device_buyer_nunique_all",
        "ip_buyer_nunique_all",
        "buyer_device_nunique_30d",
        "amount_usd",
        "cross_border",
        "ip_country_mismatch",
        "unit_price_to_reference",
        "hour_of_day",
        "is_weekend",
    } <= names
    for et in ("password_reset", "device_change", "twofa_disabled", "twofa_enabled", "email_change"):
        assert {f"buyer_{et}_count_{w}" for w in ("1h", "24h", "7d")} <= names


def test_describe_covers_every_feature():
    for name in FEATURE_SETS:
        rows = describe_feature_set(name)
        assert [r[0] for r in rows] == get_feature_set(name).feature_names
        assert all(text and "\n" not in text for _, text in rows)
    text = dict(describe_feature_set("fdh_baseline"))
    assert "(t-37d, t-7d]" in text["seller_fraud_rate_30d_delay7d_closed_right"]


def test_entities_have_transaction_keys():
    assert all("transactions" in keys for keys in ENTITIES.values())


def _inputs(**cols):
    return {
        k: np.asarray(v, dtype=object) if k != "occurred_at_us" else np.asarray(v) for k, v in cols.items()
    }


def test_row_features_hand_computed():
    sat_noon = pd.Timestamp("2024-03-02 12:00", tz="UTC").value // 1000  # a Saturday
    mon_3am = pd.Timestamp("2024-03-04 03:00", tz="UTC").value // 1000
    inputs = _inputs(
        amount=[100.0, 2.0],
        currency=["EUR", "USD"],
        unit_price=[50.0, 1.0],
        goods_category=["books", "unknown"],
        buyer_country=["DE", None],
        seller_country=["DE", "US"],
        ip_country=["FR", "US"],
        occurred_at_us=[sat_noon, mon_3am],
    )
    names = list(ROW_FEATURES)
    out = compute_row_features(names, inputs, Reference(FX, CATEGORIES))
    np.testing.assert_allclose(out["amount_usd"], [116.0, 2.0])
    np.testing.assert_array_equal(out["cross_border"], [0.0, np.nan])
    np.testing.assert_array_equal(out["ip_country_mismatch"], [1.0, np.nan])
    np.testing.assert_allclose(out["unit_price_to_reference"], [50 * 1.16 / 15.0, np.nan])
    np.testing.assert_array_equal(out["hour_of_day"], [12.0, 3.0])
    np.testing.assert_array_equal(out["is_weekend"], [1.0, 0.0])
    np.testing.assert_array_equal(out["is_night"], [0.0, 1.0])
    assert row_feature_inputs(["amount_usd"]) == {"amount", "currency"}


def test_usd_needs_no_rate_table_and_unknown_currency_fails():
    inputs = _inputs(amount=[5.0], currency=["USD"])
    assert compute_row_features(["amount_usd"], inputs, Reference({}, {}))["amount_usd"][0] == 5.0
    with pytest.raises(ValueError, match="XXX"):
        compute_row_features(["amount_usd"], _inputs(amount=[5.0], currency=["XXX"]), Reference(FX, {}))
