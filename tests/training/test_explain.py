"""Tests of training.explain: exact contributions, reason codes and sentences, rule reasons; bench smoke test."""

from __future__ import annotations

import json
import math

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from features.definitions import ENTITIES, OPS, parse_feature_name
from training.bench.explain import format_report, make_problem, run
from training.explain import (
    BIAS_COLUMN,
    REASON_CATALOGUE,
    Explainer,
    booster_of,
    contributions,
    describe_feature,
    message_for,
    reasons_for_row,
    rule_reasons,
)
from training.policy import TierPolicy

REASON_KEYS = {
    "code",
    "source",
    "feature",
    "value",
    "contribution",
    "direction",
    "message",
    "features",
    "decisive",
}
SCREENING = {
    "buyer_screen_entry_id": "WL-00123",
    "buyer_screen_list_type": "sanction",
    "buyer_screen_score": 93.0,
    "buyer_screen_dob_match": "exact",
}


@pytest.fixture(scope="module")
def problem() -> tuple[pd.DataFrame, np.ndarray]:
    return make_problem(n_rows=4000, n_features=40, positive_rate=0.05, seed=1, signal=3.0)


@pytest.fixture(scope="module")
def booster(problem) -> lgb.Booster:
    X, y = problem
    params = {"objective": "binary", "num_leaves": 7, "learning_rate": 0.1, "verbose": -1, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(X, y), num_boost_round=30)


@pytest.fixture(scope="module")
def reset_model() -> lgb.Booster:
    """A model where password resets clearly drive the risk."""
    rng = np.random.default_rng(0)
    n = 3000
    X = pd.DataFrame(
        {
            "buyer_password_reset_count_24h": rng.poisson(0.3, n).astype(float),
            "amount_usd": rng.lognormal(4, 1, n),
            "noise_1": rng.normal(size=n),
        }
    )
    y = (rng.random(n) < np.where(X["buyer_password_reset_count_24h"] > 0, 0.5, 0.02)).astype(int)
    params = {"objective": "binary", "num_leaves": 4, "verbose": -1, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(X, y), num_boost_round=20)


# --- Contributions ------------------------------------------------------------------------------


def test_contributions_add_up_to_the_raw_score(booster, problem):
    X = problem[0].iloc[:200]
    before = X.copy()
    contrib = contributions(booster, X)
    assert list(contrib.columns) == [*booster.feature_name(), BIAS_COLUMN]
    assert contrib.index.equals(X.index)
    raw = booster.predict(X, raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=1).to_numpy(), raw, rtol=0, atol=1e-9)
    assert contrib[BIAS_COLUMN].nunique() == 1
    pd.testing.assert_frame_equal(X, before)  # the input is not modified


def test_contributions_reorder_columns_and_reject_missing_ones(booster, problem):
    X = problem[0].iloc[:20]
    shuffled = X[list(reversed(X.columns))].assign(extra=1.0)
    pd.testing.assert_frame_equal(contributions(booster, shuffled), contributions(booster, X))
    with pytest.raises(ValueError, match="missing model feature"):
        contributions(booster, X.drop(columns=[X.columns[3]]))


def test_contributions_of_sklearn_model_and_pipeline(problem):
    X, y = problem
    clf = lgb.LGBMClassifier(n_estimators=10, num_leaves=5, verbose=-1, n_jobs=1).fit(X, y)
    pipe = Pipeline([("identity", FunctionTransformer()), ("model", clf)])
    assert booster_of(pipe) is clf.booster_
    a = contributions(clf, X.iloc[:10])
    pd.testing.assert_frame_equal(a, contributions(pipe, X.iloc[:10]))
    logit = np.log(clf.predict_proba(X.iloc[:10])[:, 1] / clf.predict_proba(X.iloc[:10])[:, 0])
    np.testing.assert_allclose(a.sum(axis=1), logit, atol=1e-9)
    with pytest.raises(TypeError):
        booster_of(object())


def test_explainer_gives_the_same_score_and_contributions(booster, problem):
    X = problem[0].iloc[:30]
    explainer = Explainer(booster)
    frame = contributions(booster, X)
    for i in range(len(X)):
        out = explainer.explain(X.iloc[i : i + 1].to_numpy())
        np.testing.assert_allclose(out["contributions"], frame.iloc[i, :-1].to_numpy(), atol=1e-12)
        assert out["expected_value"] == pytest.approx(frame.iloc[i, -1])
        assert out["probability"] == pytest.approx(booster.predict(X.iloc[i : i + 1])[0], abs=1e-12)
    # A mapping of values gives the same answer as the numpy row.
    values = X.iloc[0].to_dict()
    by_dict, by_row = explainer.explain(values), explainer.explain(explainer.row(values))
    assert by_dict["raw_score"] == by_row["raw_score"]
    assert [r["code"] for r in by_dict["reasons"]] == [r["code"] for r in by_row["reasons"]]


def test_explainer_encodes_categories_like_lightgbm():
    rng = np.random.default_rng(3)
    n = 2000
    X = pd.DataFrame(
        {
            "amount_usd": rng.lognormal(4, 1, n),
            "payment_method": pd.Categorical(rng.choice(["card", "wallet", "bnpl"], n)),
        }
    )
    y = ((X["payment_method"] == "bnpl") & (rng.random(n) < 0.4)).astype(int)
    clf = lgb.LGBMClassifier(n_estimators=10, num_leaves=4, verbose=-1, n_jobs=1).fit(X, y)
    explainer = Explainer(clf)
    frame = contributions(clf, X.iloc[:5])
    for i in range(5):
        values = {"amount_usd": X["amount_usd"].iloc[i], "payment_method": X["payment_method"].iloc[i]}
        out = explainer.explain(values, direction="both")
        np.testing.assert_allclose(out["contributions"], frame.iloc[i, :-1].to_numpy(), atol=1e-12)
    unknown = explainer.row({"amount_usd": 10.0, "payment_method": "cheque"})
    assert math.isnan(unknown[0, 1])
    # The numpy path shows the category, not its code.
    out = explainer.explain(explainer.row({"amount_usd": 10.0, "payment_method": "bnpl"}), direction="both")
    shown = {r["feature"]: r["value"] for r in out["reasons"]}
    assert shown.get("payment_method") in (None, "bnpl")


# --- Reasons from a model -----------------------------------------------------------------------


def test_a_feature_pushing_the_score_up_is_listed_as_increasing_risk(reset_model):
    explainer = Explainer(reset_model)
    risky = explainer.explain({"buyer_password_reset_count_24h": 3.0, "amount_usd": 50.0, "noise_1": 0.0})
    top = risky["reasons"][0]
    assert top["code"] == "ACCOUNT_EVENTS_BEFORE_ORDER"
    assert top["direction"] == "increases risk" and top["contribution"] > 0
    assert top["message"] == "3 password resets on the buyer's account in the 24 hours before the order"
    assert all(r["contribution"] > 0 for r in risky["reasons"])

    calm = explainer.explain({"buyer_password_reset_count_24h": 0.0, "amount_usd": 50.0, "noise_1": 0.0})
    assert "ACCOUNT_EVENTS_BEFORE_ORDER" not in [r["code"] for r in calm["reasons"]]
    both = explainer.explain(
        {"buyer_password_reset_count_24h": 0.0, "amount_usd": 50.0, "noise_1": 0.0}, direction="both"
    )
    reset = next(r for r in both["reasons"] if r["code"] == "ACCOUNT_EVENTS_BEFORE_ORDER")
    assert reset["direction"] == "decreases risk" and reset["contribution"] < 0
    assert reset["message"].startswith("0 password resets")


def test_reasons_from_a_contributions_frame(booster, problem):
    X = problem[0].iloc[:50]
    contrib = contributions(booster, X)
    for i in range(len(X)):
        reasons = reasons_for_row(contrib.iloc[i], X.iloc[i], top_k=3, direction="both")
        assert len(reasons) <= 3
        assert len({r["code"] for r in reasons}) == len(reasons)
        magnitudes = [abs(r["contribution"]) for r in reasons]
        assert magnitudes == sorted(magnitudes, reverse=True)
        for r in reasons:
            assert set(r) == REASON_KEYS and r["source"] == "model" and r["code"] in REASON_CATALOGUE
            members = contrib.iloc[i][r["features"]]
            assert r["contribution"] == pytest.approx(members.sum())
    json.dumps(reasons)  # JSON-ready: no numpy scalars, no NaN


# --- Sentences ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("feature", "value", "raw", "code", "expected"),
    [
        (
            "buyer_amount_ratio_30d",
            12.0,
            None,
            "AMOUNT_VS_BUYER_AVG",
            "order amount is 12× this buyer's 30-day average",
        ),
        (
            "buyer_amount_ratio_30d",
            2.46,
            None,
            "AMOUNT_VS_BUYER_AVG",
            "order amount is 2.5× this buyer's 30-day average",
        ),
        (
            "buyer_txn_count_1h",
            3,
            None,
            "BUYER_VELOCITY",
            "3 orders by this buyer in the hour before this one",
        ),
        (
            "seller_txn_count_24h",
            1,
            None,
            "SELLER_VELOCITY",
            "1 order received by this seller in the 24 hours",
        ),
        (
            "device_buyer_nunique_all",
            7,
            None,
            "SHARED_DEVICE",
            "this device has been used by 7 different accounts",
        ),
        ("seller_buyer_nunique_7d", 23, None, "FAN_IN", "orders from 23 different buyers in the past 7 days"),
        (
            "buyer_device_nunique_7d",
            4,
            None,
            "MANY_DEVICES",
            "this buyer used 4 different devices in the past 7 days",
        ),
        (
            "seller_fraud_rate_30d",
            0.04,
            None,
            "SELLER_FRAUD_RATE",
            "seller's fraud rate over the past 30 days (labels known at the time) is 4.0%",
        ),
        (
            "seller_fraud_rate_30d_delay7d",
            0.04,
            None,
            "SELLER_FRAUD_RATE",
            "seller's fraud rate over the 30 days ending 7 days before the order (labels known at the time) is 4.0%",
        ),
        (
            "seller_fraud_count_28d_delay7d",
            2,
            None,
            "SELLER_FRAUD_RATE",
            "2 orders received by this seller labelled fraud over the 28 days ending 7 days before the order",
        ),
        # since_last is in hours (features.definitions)
        (
            "buyer_txn_since_last_all",
            0.05,
            None,
            "BUYER_VELOCITY",
            "this buyer's previous order was 3 minutes before",
        ),
        (
            "buyer_password_reset_since_last_all",
            36,
            None,
            "ACCOUNT_EVENTS_BEFORE_ORDER",
            "the last password reset on the buyer's account was 36 hours before the order",
        ),
        (
            "buyer_txn_count_7d_with_current",
            4,
            None,
            "BUYER_VELOCITY",
            "4 orders by this buyer in the 7 days up to and including this one",
        ),
        ("pair_txn_count_all", 0, None, "NEW_COUNTERPARTY", "first order between this buyer and this seller"),
        (
            "pair_txn_count_all",
            3,
            None,
            "NEW_COUNTERPARTY",
            "3 earlier orders between this buyer and this seller",
        ),
        ("buyer_device_txn_count_all", 0, None, "NEW_DEVICE", "first order by this buyer from this device"),
        (
            "buyer_ipcountry_txn_count_all",
            0,
            None,
            "NEW_IP_COUNTRY",
            "first order by this buyer from this IP country",
        ),
        (
            "buyer_password_reset_count_24h",
            2,
            None,
            "ACCOUNT_EVENTS_BEFORE_ORDER",
            "2 password resets on the buyer's account in the 24 hours before the order",
        ),
        (
            "buyer_login_failed_count_1h",
            1,
            None,
            "ACCOUNT_EVENTS_BEFORE_ORDER",
            "1 failed login on the buyer's account",
        ),
        (
            "buyer_device_change_count_24h",
            1,
            None,
            "ACCOUNT_EVENTS_BEFORE_ORDER",
            "1 device change on the buyer's",
        ),
        (
            "buyer_amount_sum_24h",
            4200,
            None,
            "BUYER_AMOUNT_VELOCITY",
            "$4,200 in orders by this buyer in the 24 hours",
        ),
        ("buyer_doc_expired", 1.0, None, "DOC_EXPIRED", "the buyer's identity document had expired"),
        ("buyer_doc_days_to_expiry", -30, None, "DOC_EXPIRED", "expired 30 days before the order"),
        (
            "buyer_name_email_similarity",
            0.12,
            None,
            "NAME_EMAIL_MISMATCH",
            "does not resemble their name (similarity 12%)",
        ),
        (
            "buyer_nationality_risk",
            1.0,
            {"buyer_nationality": "IR"},
            "HIGH_RISK_COUNTRY",
            "the buyer's nationality (IR) is a high-risk country (risk score 1.00)",
        ),
        (
            "seller_business_age_days",
            40,
            None,
            "NEW_BUSINESS",
            "business was registered 40 days before the order",
        ),
        ("buyer_twofa_at_onboarding", 0.0, None, "NO_2FA", "no two-factor authentication"),
        (
            "unit_price_to_reference",
            0.22,
            None,
            "PRICE_BELOW_REFERENCE",
            "unit price is 78% below the category reference price",
        ),
        (
            "unit_price_to_reference",
            1.5,
            {"goods_category": "phones"},
            "PRICE_BELOW_REFERENCE",
            "unit price is 50% above the reference price for phones",
        ),
        (
            "ip_country_mismatch",
            1.0,
            {"ip_country": "NG", "buyer_country": "DE"},
            "IP_COUNTRY_MISMATCH",
            "(IP in NG",
        ),
        ("hour_of_day", 3.0, None, "ORDER_TIME", "between 03:00 and 03:59 UTC"),
        ("amount_usd", 1234.5, None, "ORDER_AMOUNT", "order amount is $1,234"),
        (
            "buyer_screen_score",
            93.0,
            SCREENING,
            "SCREENING_MATCH",
            "the buyer's name matches sanctions list entry WL-00123 (score 93; birth date matches)",
        ),
        ("buyer_screen_score", 0.0, None, "SCREENING_MATCH", "matches no watchlist entry"),
    ],
)
def test_sentences_are_built_from_the_actual_values(feature, value, raw, code, expected):
    spec = describe_feature(feature)
    assert spec.code == code and code in REASON_CATALOGUE
    assert expected in message_for(feature, value, raw)


@pytest.mark.parametrize(
    "feature",
    [
        "buyer_amount_ratio_30d",
        "buyer_txn_count_1h",
        "device_buyer_nunique_all",
        "seller_fraud_rate_30d_delay7d",
        "buyer_txn_since_last_all",
        "pair_txn_count_all",
        "buyer_password_reset_count_24h",
        "buyer_doc_expired",
        "buyer_nationality_risk",
        "unit_price_to_reference",
        "buyer_screen_score",
        "mystery_feature",
    ],
)
@pytest.mark.parametrize("missing", [math.nan, None, np.float32("nan"), pd.NA])
def test_missing_values_say_unknown(feature, missing):
    assert "unknown" in message_for(feature, missing)


def test_missing_values_in_a_row_say_unknown():
    contrib = pd.Series({"buyer_amount_ratio_30d": 0.8, "pair_txn_count_all": 0.5, "bias": -4.0})
    reasons = reasons_for_row(contrib, pd.Series({"buyer_amount_ratio_30d": np.nan}))
    assert [r["code"] for r in reasons] == ["AMOUNT_VS_BUYER_AVG", "NEW_COUNTERPARTY"]
    assert all("unknown" in r["message"] and r["value"] is None for r in reasons)


def test_parse_feature_name():
    p = parse_feature_name("seller_fraud_rate_30d_delay7d")
    assert (p.entity, p.measure, p.op, p.window, p.delay) == ("seller", "", "fraud_rate", "30d", "7d")
    p = parse_feature_name("buyer_device_txn_count_all")
    assert (p.entity, p.measure, p.op, p.window) == ("buyer_device", "txn", "count", "all")
    # A distinct count needs a measure: this is the buyer's number of devices.
    p = parse_feature_name("buyer_device_nunique_7d")
    assert (p.entity, p.measure, p.op) == ("buyer", "device", "nunique")
    assert parse_feature_name("buyer_txn_since_last").window is None
    # The measure of account events is the event type, even where it starts like an entity.
    p = parse_feature_name("buyer_device_change_count_24h")
    assert (p.entity, p.measure, p.op, p.window) == ("buyer", "device_change", "count", "24h")
    p = parse_feature_name("seller_fraud_rate_7d_delay7d_closed_right")
    assert (p.entity, p.op, p.window, p.delay, p.closed) == ("seller", "fraud_rate", "7d", "7d", "right")
    p = parse_feature_name("buyer_amount_local_mean_30d_with_current")
    assert (p.measure, p.op, p.include_current) == ("amount_local", "mean", True)
    assert parse_feature_name("seller_fraud_count_30d_delay7d").op == "fraud_count"
    for name in ("buyer_doc_expired", "amount_usd", "buyer_txn_count", "customer_amount_sum_24h", "count_1h"):
        assert parse_feature_name(name) is None


def test_unknown_feature_gets_the_generic_sentence():
    assert describe_feature("mystery_feature").code == "OTHER"
    assert message_for("mystery_feature", 3.5) == "mystery_feature = 3.50"
    assert message_for("mystery_feature", 2.0) == "mystery_feature = 2"
    assert message_for("mystery_feature", "blue") == "mystery_feature = blue"
    # A template that cannot render a value falls back instead of raising.
    assert message_for("buyer_amount_ratio_30d", "abc") == "buyer_amount_ratio_30d = abc"
    assert message_for("buyer_amount_ratio_30d", object()).startswith("buyer_amount_ratio_30d = ")
    # Unknown features are never summed together.
    contrib = pd.Series({"mystery_a": 0.3, "mystery_b": 0.2})
    reasons = reasons_for_row(contrib, {"mystery_a": 1.0, "mystery_b": 2.0})
    assert [(r["code"], r["feature"]) for r in reasons] == [("OTHER", "mystery_a"), ("OTHER", "mystery_b")]


# --- Grouping, top-k, direction -----------------------------------------------------------------


def _reasons(**kwargs):
    contrib = pd.Series(
        {
            "buyer_txn_count_1h": 0.5,
            "buyer_txn_count_24h": 0.3,
            "buyer_txn_count_7d": 0.1,
            "buyer_amount_ratio_30d": 0.6,
            "device_buyer_nunique_all": 0.2,
            "pair_txn_count_all": -0.4,
            "buyer_account_age_days": -0.05,
            "amount_usd": 0.0,
            BIAS_COLUMN: -4.2,
        }
    )
    values = {
        "buyer_txn_count_1h": 4,
        "buyer_txn_count_24h": 5,
        "buyer_txn_count_7d": 6,
        "buyer_amount_ratio_30d": 12.0,
        "device_buyer_nunique_all": 7,
        "pair_txn_count_all": 9,
        "buyer_account_age_days": 800,
        "amount_usd": 120.0,
    }
    return reasons_for_row(contrib, values, **kwargs)


def test_features_of_one_code_are_grouped():
    reasons = _reasons()
    assert [r["code"] for r in reasons] == ["BUYER_VELOCITY", "AMOUNT_VS_BUYER_AVG", "SHARED_DEVICE"]
    velocity = reasons[0]
    assert velocity["contribution"] == pytest.approx(0.9)
    assert velocity["feature"] == "buyer_txn_count_1h" and velocity["value"] == 4
    assert velocity["message"] == "4 orders by this buyer in the hour before this one"
    assert velocity["features"] == ["buyer_txn_count_1h", "buyer_txn_count_24h", "buyer_txn_count_7d"]
    assert reasons[1]["message"] == "order amount is 12× this buyer's 30-day average"


def test_direction_increase_lists_only_risk_increasing_groups_and_both_lists_all():
    assert all(r["direction"] == "increases risk" for r in _reasons())
    both = _reasons(direction="both", top_k=10)
    assert [r["code"] for r in both] == [
        "BUYER_VELOCITY",
        "AMOUNT_VS_BUYER_AVG",
        "NEW_COUNTERPARTY",
        "SHARED_DEVICE",
        "NEW_ACCOUNT",
    ]  # amount_usd contributes nothing: no reason
    counterparty = both[2]
    assert counterparty["direction"] == "decreases risk" and counterparty["contribution"] == pytest.approx(
        -0.4
    )
    assert counterparty["message"] == "9 earlier orders between this buyer and this seller before this one"


def test_top_k_is_respected():
    assert len(_reasons(top_k=2)) == 2
    assert len(_reasons(top_k=1, direction="both")) == 1
    assert _reasons(top_k=0) == []
    with pytest.raises(ValueError, match="top_k"):
        _reasons(top_k=-1)
    with pytest.raises(ValueError, match="direction"):
        _reasons(direction="decrease")


def test_a_group_decreasing_risk_shows_its_most_decreasing_member():
    contrib = pd.Series({"buyer_txn_count_1h": 0.1, "buyer_txn_count_24h": -0.5})
    (reason,) = reasons_for_row(
        contrib, {"buyer_txn_count_1h": 1, "buyer_txn_count_24h": 0}, direction="both"
    )
    assert reason["contribution"] == pytest.approx(-0.4) and reason["feature"] == "buyer_txn_count_24h"
    assert reason["features"] == ["buyer_txn_count_24h", "buyer_txn_count_1h"]


# --- Rule and screening reasons -----------------------------------------------------------------


def test_rule_reasons_have_the_reason_shape_and_name_the_list_entry():
    policy = TierPolicy(medium_threshold=0.1, high_threshold=0.5)
    decision = policy.decide(0.3, {"screen_confirmed": True, "doc_expired": True})
    reasons = rule_reasons(decision, SCREENING | {"doc_expired": 1.0})
    assert [r["code"] for r in reasons] == ["SCORE_MEDIUM", "WATCHLIST_CONFIRMED", "DOC_EXPIRED"]
    assert all(set(r) == REASON_KEYS for r in reasons)
    score, watchlist, doc = reasons
    assert score["source"] == "score" and score["value"] == pytest.approx(0.3) and not score["decisive"]
    assert watchlist["source"] == "rule" and watchlist["decisive"] is True
    assert "name matches sanctions list entry WL-00123 (score 93; birth date matches)" in watchlist["message"]
    assert watchlist["message"].startswith(decision.reasons[1].message)
    assert (watchlist["feature"], watchlist["value"]) == ("buyer_screen_entry_id", "WL-00123")
    assert doc["feature"] == "doc_expired" and doc["value"] == 1.0 and doc["decisive"] is False
    assert doc["direction"] == "increases risk" and doc["contribution"] is None
    json.dumps(reasons)


def test_rule_reasons_without_screening_details_keep_the_policy_sentence():
    decision = TierPolicy(0.1, 0.5).decide(0.05, {"screen_possible": True})
    reasons = rule_reasons(decision)
    assert reasons[1]["message"] == decision.reasons[1].message
    assert reasons[1]["feature"] == "screen_possible"
    # A customer-level decision: unprefixed screening keys, a PEP entry.
    details = {
        "screen_entry_id": "PEP-7",
        "screen_list_type": "pep",
        "screen_score": 88.4,
        "screen_dob_match": "year",
    }
    message = rule_reasons(decision, details)[1]["message"]
    assert "Name matches PEP list entry PEP-7 (score 88; birth year matches)." in message


# --- Catalogue and benchmark --------------------------------------------------------------------


def test_every_code_is_in_the_catalogue(problem):
    names = list(problem[0].columns) + [
        f"{e}_{m}_{op}_{w}"
        for e in ENTITIES
        for m in ("txn", "amount", "buyer", "device", "login_failed")
        for op in OPS
        for w in ("1h", "all")
    ]
    for name in names:
        assert describe_feature(name).code in REASON_CATALOGUE, name
        message_for(name, 1.0)


def test_the_feature_engine_names_all_have_templates():
    definitions = pytest.importorskip("features.definitions")
    for feature_set in definitions.FEATURE_SETS.values():
        for name in feature_set.feature_names:
            spec = describe_feature(name)
            assert spec.code != "OTHER", name
            for value in (0.0, 1.0, 2.5, math.nan):
                message = spec.message(value)
                assert not message.startswith(f"{name} ="), (name, message)  # no fallback


def test_bench_runs_on_a_tiny_grid():
    result = run(
        n_rows=3000,
        n_features=40,
        positive_rate=0.05,
        trees=(5, 10),
        num_leaves=(7,),
        n_calls=20,
        repeats=1,
        train_threads=1,
    )
    assert len(result["grid"]) == 4
    row = result["grid"][0]
    for key in ("auc", "ap", "predict_p99_ms", "contrib_p50_ms", "contrib_p99_ms", "mean_depth", "cost"):
        assert key in row
    assert "Explainer.explain(dict): row + score + top-5 reasons" in result["call_paths"]["latency"]
    assert "Recommendation" in format_report(result)


def test_event_risk_features_have_sentences_from_their_values() -> None:
    from training.explain import describe_feature, message_for

    assert describe_feature("goods_category_risk").code == "RISKY_GOODS"
    assert message_for("goods_category_risk", 1.0, {"goods_category": "precursor_chemicals"}) == (
        "the goods (precursor_chemicals) are a restricted category"
    )
    assert "IP address's country (IR) is a high-risk country" in message_for(
        "ip_country_risk", 0.9, {"ip_country": "IR"}
    )
    for name in ("ip_country_risk", "buyer_country_risk", "seller_country_risk"):
        assert describe_feature(name).code == "HIGH_RISK_COUNTRY"


def test_a_new_aggregation_is_explained_from_its_declaration():
    from features.definitions import Aggregation

    new = Aggregation("ip", "txn", "count", "1h")  # in no registered feature set
    doc = describe_feature(new.name)
    assert (doc.code, doc.kind) == (new.reason.code, "history") == ("IP_VELOCITY", "history")
    assert doc.code in REASON_CATALOGUE
    assert message_for(new.name, 4.0) == new.reason.render(4.0, {})
    assert message_for(new.name, 4.0) == "4 orders from this IP address in the hour before this one"
