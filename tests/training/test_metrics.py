"""Tests of training.metrics against values computed by hand on tiny arrays."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from training.metrics import (
    age_band,
    average_precision,
    brier_score,
    card_precision_at_k,
    card_precision_by_day,
    cost_optimal_flags,
    cost_summary,
    evaluate_scores,
    expected_calibration_error,
    expected_cost,
    fpr_min_max_ratio,
    known_compromised_mask,
    metric_key,
    operating_point_at_fpr,
    population_stability_index,
    precision_top_k_per_day,
    psi_by_feature,
    recall_at_fpr,
    reliability_table,
    roc_auc,
    segment_metrics,
)

# --- ranking ----------------------------------------------------------------------------------


def test_auc_and_average_precision_by_hand():
    y, s = [0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]
    assert roc_auc(y, s) == pytest.approx(0.75)  # 3 of the 4 positive-negative pairs ordered
    # Precision 1 at recall 0.5, then 2/3 at recall 1.
    assert average_precision(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert math.isnan(roc_auc([0, 0], [0.1, 0.2]))
    assert math.isnan(average_precision([0, 0], [0.1, 0.2]))


@pytest.fixture
def ranked():
    # 4 positives, 10 negatives.
    pos = [0.9, 0.8, 0.5, 0.2]
    neg = [0.85, 0.6, 0.4, 0.3, 0.15, 0.14, 0.13, 0.12, 0.11, 0.1]
    return np.array([1] * 4 + [0] * 10), np.array(pos + neg)


def test_recall_at_fpr_takes_the_lowest_threshold_within_the_target(ranked):
    y, s = ranked
    # Descending: 0.9 (tp 1, fp 0), 0.85 (fp 1), 0.8 (tp 2, fp 1), 0.6 (fp 2) ...
    assert operating_point_at_fpr(y, s, 0.10) == {"threshold": 0.8, "recall": 0.5, "fpr": 0.1}
    assert recall_at_fpr(y, s, 0.05) == 0.25
    assert recall_at_fpr(y, s, 0.0) == 0.25
    assert recall_at_fpr(y, s, 0.2) == 0.75  # down to 0.5, with 0.85 and 0.6 flagged
    assert recall_at_fpr(y, s, 1.0) == 1.0


def test_recall_at_fpr_never_splits_ties():
    y = np.array([1, 0, 0, 0, 0])
    s = np.array([0.7, 0.7, 0.1, 0.1, 0.1])
    # Flagging the positive means flagging the tied negative: FPR 0.25 > 0.2.
    assert operating_point_at_fpr(y, s, 0.2) == {"threshold": math.inf, "recall": 0.0, "fpr": 0.0}
    assert recall_at_fpr(y, s, 0.25) == 1.0


def test_precision_top_k_per_day():
    times = pd.to_datetime(
        ["2026-01-01 01:00", "2026-01-01 05:00", "2026-01-01 09:00", "2026-01-01 23:59", "2026-01-02 03:00"],
        utc=True,
    )
    y = [1, 0, 0, 1, 1]
    s = [0.9, 0.8, 0.1, 0.2, 0.3]
    # Day 1: top 2 = 0.9 (fraud), 0.8 (good) -> 0.5; day 2 has one row, a fraud -> 1.
    assert precision_top_k_per_day(y, s, times, k=2) == pytest.approx(0.75)
    assert precision_top_k_per_day(y, s, [1, 1, 1, 1, 2], k=2) == pytest.approx(0.75)
    assert precision_top_k_per_day(y, s, times, k=1) == pytest.approx(1.0)


# --- card precision ---------------------------------------------------------------------------


@pytest.fixture
def cards() -> pd.DataFrame:
    return pd.DataFrame(
        [
            # day 1: per card max: A (.9, 1), B (.8, 0), C (.7, 1), D (.1, 1)
            ("A", 1, 0.9, 1),
            ("A", 1, 0.2, 0),
            ("B", 1, 0.8, 0),
            ("C", 1, 0.7, 1),
            ("D", 1, 0.1, 1),
            # day 2: A (.95, 1), C (.6, 1), E (.5, 0), D (.4, 0)
            ("A", 2, 0.95, 1),
            ("C", 2, 0.6, 1),
            ("E", 2, 0.5, 0),
            ("D", 2, 0.4, 0),
        ],
        columns=["customer", "day", "score", "y"],
    )


def _cp(cards, **kw):
    return card_precision_at_k(cards["y"], cards["score"], cards["customer"], cards["day"], **kw)


def test_card_precision_removes_cards_detected_on_earlier_days(cards):
    # Day 1: top 2 = A (fraud), B -> 1/2, A detected. Day 2 without A: C (fraud), E -> 1/2.
    assert _cp(cards, k=2) == pytest.approx(0.5)
    # Without removal day 2's top 2 are A and C -> 2/2.
    assert _cp(cards, k=2, remove_detected=False) == pytest.approx(0.75)


def test_card_precision_divides_by_k_even_with_fewer_cards(cards):
    # Day 1: A, C, D compromised among 4 cards -> 3/10, all three detected; day 2 only E is left -> 0.
    assert _cp(cards, k=10) == pytest.approx((0.3 + 0.0) / 2)
    assert _cp(cards, k=10, remove_detected=False) == pytest.approx((0.3 + 0.2) / 2)


def test_card_precision_known_compromised_set_and_frame(cards):
    # Known on every day: A. Day 1: B, C -> 1/2 (C detected); day 2: E, D -> 0.
    assert _cp(cards, k=2, known_compromised={"A"}) == pytest.approx(0.25)
    # Known from day 2 only: day 1 as without removal (1/2); day 2 without A (known) -> C, E -> 1/2.
    known = pd.DataFrame({"customer_id": ["A"], "known_from": [2]})
    assert _cp(cards, k=2, known_compromised=known, remove_detected=False) == pytest.approx(0.5)
    table = card_precision_by_day(
        cards["y"], cards["score"], cards["customer"], cards["day"], 2, known, remove_detected=False
    )
    assert table["n_customers"].tolist() == [4, 3]
    assert table["n_detected"].tolist() == [1, 1]


def test_known_compromised_mask_is_day_dependent():
    times = pd.to_datetime(["2018-08-08 10:00", "2018-08-09 10:00", "2018-08-09 11:00"], utc=True)
    known = pd.DataFrame(
        {"customer_id": ["x", "y"], "known_from": pd.to_datetime(["2018-08-09", "2018-08-01"], utc=True)}
    )
    assert known_compromised_mask(["x", "x", "z"], times, known).tolist() == [False, True, False]
    assert known_compromised_mask(["x", "y", "z"], times, {"y"}).tolist() == [False, True, False]
    assert known_compromised_mask(["x", "y"], times[:2], None).tolist() == [False, False]


def _book_card_precision(df: pd.DataFrame, top_k: int) -> float:
    """The book's card_precision_top_k, transcribed (removal of detected cards on)."""
    detected, per_day = [], []
    for day in sorted(df["day"].unique()):
        d = df[df["day"] == day][["score", "customer", "y"]]
        d = d[~d["customer"].isin(detected)]
        d = d.groupby("customer").max().sort_values(by="score", ascending=False).reset_index(drop=False)
        top = d.head(top_k)
        hits = list(top[top["y"] == 1]["customer"])
        per_day.append(len(hits) / top_k)
        detected.extend(hits)
    return float(np.mean(per_day))


def test_card_precision_matches_the_book_on_random_data():
    rng = np.random.default_rng(11)
    n = 2000
    df = pd.DataFrame(
        {
            "customer": rng.integers(0, 150, n),
            "day": rng.integers(0, 7, n),
            "score": rng.random(n),  # continuous: no ties, so the order is the same
            "y": (rng.random(n) < 0.05).astype(int),
        }
    )
    ours = card_precision_at_k(df["y"], df["score"], df["customer"], df["day"], k=10)
    assert ours == pytest.approx(_book_card_precision(df, 10))


# --- cost -------------------------------------------------------------------------------------


def test_expected_cost_by_hand():
    y = [1, 0, 1, 0]
    amount = [100.0, 50.0, 200.0, 30.0]
    flagged = [True, True, False, False]
    # Missed fraud 200 + two reviews at 10.
    assert expected_cost(y, flagged, amount, 10.0) == pytest.approx(220.0)
    summary = cost_summary(y, flagged, amount, 10.0)
    assert summary["expected_cost_approve_all"] == pytest.approx(300.0)
    assert summary["expected_cost_saved"] == pytest.approx(80.0)
    assert summary["expected_cost_saved_ratio"] == pytest.approx(80.0 / 300.0)
    assert summary["flag_rate"] == pytest.approx(0.5)


def test_cost_optimal_flags_compare_expected_loss_with_review_cost():
    flags = cost_optimal_flags([0.1, 0.1, 0.5], [50.0, 200.0, 10.0], review_cost=10.0)
    assert flags.tolist() == [False, True, False]  # 5, 20, 5 against 10


# --- calibration ------------------------------------------------------------------------------


def test_brier_and_ece_by_hand():
    assert brier_score([0, 1], [0.2, 0.6]) == pytest.approx((0.04 + 0.16) / 2)
    y, p = [0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]
    # Equal-count bins {0.1, 0.2} and {0.3, 0.4}: gaps |0.15 - 0| and |0.35 - 1|.
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.5 * 0.15 + 0.5 * 0.65)
    # Equal-width bins [0, .5) and [.5, 1]: everything in the first, mean 0.25 against 0.5.
    assert expected_calibration_error(y, p, n_bins=2, strategy="uniform") == pytest.approx(0.25)
    table = reliability_table(y, p, n_bins=2, strategy="uniform")
    assert table["count"].tolist() == [4, 0]
    assert table.loc[0, "mean_predicted"] == pytest.approx(0.25)
    assert math.isnan(table.loc[1, "fraction_positive"])
    assert expected_calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        reliability_table([0, 1], [0.5, 1.5])


# --- drift ------------------------------------------------------------------------------------


def test_psi_is_zero_for_identical_samples_and_positive_for_shifted():
    rng = np.random.default_rng(0)
    x = rng.normal(size=2000)
    assert population_stability_index(x, x.copy()) == pytest.approx(0.0, abs=1e-12)
    assert population_stability_index(x, x + 1.0) > 0.25
    cats = pd.Series(rng.choice(["a", "b", "c"], 1000))
    assert population_stability_index(cats, cats.sample(frac=1.0, random_state=1)) == pytest.approx(
        0.0, abs=1e-12
    )


def test_psi_by_hand():
    ref = pd.Series(["A", "B"] * 50)
    cur = pd.Series(["A"] * 75 + ["B"] * 25)
    want = 0.25 * math.log(1.5) + (-0.25) * math.log(0.5)
    assert population_stability_index(ref, cur) == pytest.approx(want)
    # Reference quantiles of 0..9 with 2 bins: one edge at 4.5.
    num = population_stability_index(np.arange(10.0), [0, 1, 2, 8, 9, 9, 9, 9], n_bins=2)
    assert num == pytest.approx((3 / 8 - 0.5) * math.log(0.75) + (5 / 8 - 0.5) * math.log(1.25))
    # A category unseen in the reference gets eps instead of 0.
    eps = 1e-4
    new_cat = population_stability_index(["A"] * 4, ["A", "A", "B", "B"], eps=eps)
    assert new_cat == pytest.approx((0.5 - 1) * math.log(0.5) + (0.5 - eps) * math.log(0.5 / eps))


def test_psi_sees_a_change_in_the_missing_rate():
    ref = np.arange(100.0)
    cur = np.where(np.arange(100) % 2 == 0, np.nan, np.arange(100.0))
    assert population_stability_index(ref, cur) > 1.0


def test_psi_by_feature_numeric_and_categorical():
    ref = pd.DataFrame(
        {"amount": np.arange(100.0), "country": ["DE", "FR"] * 50, "twofa": [True, False] * 50}
    )
    table = psi_by_feature(ref, ref.copy())
    assert table["psi"].abs().max() == pytest.approx(0.0, abs=1e-12)
    assert table.loc["amount", "kind"] == "numeric"
    assert table.loc["country", "kind"] == "categorical"
    assert table.loc["twofa", "kind"] == "categorical"
    shifted = ref.assign(country=["DE"] * 90 + ["FR"] * 10)
    assert psi_by_feature(ref, shifted).index[0] == "country"


# --- segments ---------------------------------------------------------------------------------


def test_segment_fpr_ratios_by_hand():
    y = [0, 0, 1, 0, 0, 1]
    s = [0.6, 0.1, 0.9, 0.7, 0.8, 0.2]
    seg = ["a", "a", "a", "b", "b", "b"]
    table = segment_metrics(y, s, seg, threshold=0.5)
    # a: negatives 0.6 (flagged), 0.1 -> FPR 1/2; b: 0.7, 0.8 both flagged -> 1; overall 3/4.
    assert table.loc["a", "fpr"] == pytest.approx(0.5)
    assert table.loc["b", "fpr"] == pytest.approx(1.0)
    assert table.attrs["overall"]["fpr"] == pytest.approx(0.75)
    assert table.loc["a", "fpr_ratio_to_overall"] == pytest.approx(0.5 / 0.75)
    assert table.loc["b", "tpr"] == pytest.approx(0.0)
    assert fpr_min_max_ratio(table) == pytest.approx(0.5)


def test_missing_segment_values_form_their_own_group():
    table = segment_metrics([0, 1, 0], [0.1, 0.9, 0.6], ["x", None, np.nan], threshold=0.5)
    assert sorted(table.index) == ["missing", "x"]
    assert table.loc["missing", "count"] == 2


def test_age_band():
    born = pd.Series(pd.to_datetime(["2000-06-15", "2000-06-16", "1950-01-01", None], utc=True))
    bands = age_band(born, "2025-06-15")
    assert bands.tolist() == ["25-34", "<25", "65+", "missing"]


# --- evaluate_scores --------------------------------------------------------------------------


def test_evaluate_scores_flat_safe_keys():
    rng = np.random.default_rng(5)
    n = 600
    y = (rng.random(n) < 0.05).astype(int)
    p = np.clip(0.4 * y + 0.6 * rng.random(n), 0, 1)
    times = pd.Series(pd.date_range("2026-01-01", periods=n, freq="30min", tz="UTC"))
    region = rng.choice(["Europe", "North America", "Asia/Pacific"], n)
    metrics = evaluate_scores(
        y,
        p,
        amount=rng.gamma(2.0, 80.0, n),
        times=times,
        customer_ids=rng.integers(0, 40, n),
        segments={"region": region},
        threshold=0.5,
        k=20,
        prefix="test.",
    )
    for key in (
        "test.auc_roc",
        "test.average_precision",
        "test.recall_at_fpr_1pct",
        "test.recall_at_fpr_5pct",
        "test.precision_top20_per_day",
        "test.card_precision_top20",
        "test.expected_cost_saved",
        "test.brier",
        "test.ece",
        "test.segment.region.North_America.fpr",
        "test.segment.region.Asia_Pacific.fpr_ratio_to_overall",
        "test.segment.region.fpr_min_max_ratio",
    ):
        assert key in metrics, key
    assert all(re.fullmatch(r"[0-9A-Za-z_.\-]+", k) for k in metrics)
    assert all(isinstance(v, float) for v in metrics.values())
    assert metrics["test.auc_roc"] == pytest.approx(roc_auc(y, p))
    assert metrics["test.flag_rate"] == pytest.approx(np.mean(p >= 0.5))


def test_evaluate_scores_leaves_out_what_it_cannot_compute():
    metrics = evaluate_scores([0, 1, 0, 1], [0.1, 0.8, 0.3, 0.6])
    assert "expected_cost" not in metrics and "precision_top100_per_day" not in metrics
    assert metrics["auc_roc"] == pytest.approx(1.0)
    assert metric_key("segment", "age band", "65+") == "segment.age_band.65"
