"""Tests of training.splits: label-delay targets, time splits with gaps, the fdh protocol."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.metrics import known_compromised_mask
from training.splits import (
    TimeSplit,
    fdh_ch3_split,
    fdh_known_compromised,
    fdh_prequential_folds,
    label_targets,
    make_time_splits,
    mature_mask,
    period_of,
    split_frame,
)


def utc(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture
def entities() -> pd.DataFrame:
    return pd.DataFrame({"transaction_id": ["t1", "t2", "t3", "t4", "t5"]}, index=[10, 11, 12, 13, 14])


@pytest.fixture
def labels() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "label_id": ["l1", "l2", "l3", "l4", "l5", "l6"],
            "entity_type": [
                "transaction",
                "transaction",
                "transaction",
                "customer",
                "transaction",
                "customer",
            ],
            "entity_id": ["t1", "t2", "t3", "t4", "t5", "c1"],
            "label": ["fraud", "fraud", "legitimate", "fraud", "restricted_goods", "synthetic_identity"],
            "known_at": pd.to_datetime(
                ["2026-01-05", "2026-01-20", "2026-01-02", "2026-01-03", "2026-01-10", "2026-01-04"], utc=True
            ),
        }
    )


# --- targets ----------------------------------------------------------------------------------


def test_only_labels_known_strictly_before_the_cutoff_count(entities, labels):
    target = label_targets(entities, labels, "2026-01-10")
    # t2 is known after the cut-off, t5 exactly at it: both still unknown, hence 0; t3 is a good
    # outcome; t4's label is about a customer that happens to share the id.
    assert target.tolist() == [1, 0, 0, 0, 0]
    assert target.index.tolist() == [10, 11, 12, 13, 14]
    assert target.name == "target"


def test_no_cutoff_uses_every_label(entities, labels):
    assert label_targets(entities, labels, None).tolist() == [1, 1, 0, 0, 1]


def test_labels_after_the_cutoff_never_change_the_targets(entities, labels):
    before = label_targets(entities, labels, "2026-01-10")
    future = pd.DataFrame(
        {
            "label_id": ["f1", "f2"],
            "entity_type": ["transaction", "transaction"],
            "entity_id": ["t3", "t4"],
            "label": ["fraud", "money_laundering"],
            "known_at": pd.to_datetime(["2026-01-10", "2027-01-01"], utc=True),
        }
    )
    after = label_targets(entities, pd.concat([labels, future], ignore_index=True), "2026-01-10")
    pd.testing.assert_series_equal(before, after)


def test_naive_cutoff_means_utc_and_customer_targets(labels):
    customers = pd.DataFrame({"customer_id": ["c1", "c2"]})
    target = label_targets(
        customers, labels, pd.Timestamp("2026-01-04 00:00:01"), "customer", bad_labels=("synthetic_identity",)
    )
    assert target.tolist() == [1, 0]
    assert label_targets(customers, labels, "2026-01-04", "customer", ("synthetic_identity",)).tolist() == [
        0,
        0,
    ]


def test_label_targets_names_a_missing_column(entities, labels):
    with pytest.raises(ValueError, match="known_at"):
        label_targets(entities, labels.drop(columns="known_at"), "2026-01-10")
    with pytest.raises(ValueError, match="transaction_id"):
        label_targets(entities.rename(columns={"transaction_id": "id"}), labels, "2026-01-10")


def test_mature_rows_are_older_than_the_delay():
    times = pd.Series(
        pd.to_datetime(
            ["2026-01-01 00:00", "2026-01-02 12:00", "2026-01-03 00:00", "2026-01-09 00:00"], utc=True
        )
    )
    mature = mature_mask(times, "2026-01-10", "7D")
    # 2026-01-03 + 7 days is the cut-off itself: not strictly before it.
    assert mature.tolist() == [True, True, False, False]


# --- TimeSplit ---------------------------------------------------------------------------------


def test_gap_shorter_than_the_delay_raises():
    with pytest.raises(ValueError, match="shorter than the label delay"):
        TimeSplit("2026-01-01", "2026-02-01", "3D", "2026-03-01", "2026-04-01", label_delay="7D")


def test_empty_period_raises_naming_it():
    with pytest.raises(ValueError, match="train period is empty"):
        TimeSplit("2026-02-01", "2026-02-01", "7D", "2026-03-01", "2026-04-01")
    with pytest.raises(ValueError, match="valid period is empty"):
        TimeSplit("2026-01-01", "2026-02-01", "7D", "2026-02-05", "2026-04-01")
    with pytest.raises(ValueError, match="test period is empty"):
        TimeSplit("2026-01-01", "2026-02-01", "7D", "2026-03-01", "2026-03-08")


def test_boundaries_and_label_cutoffs_are_leak_free():
    split = TimeSplit("2026-01-01", "2026-02-01", "10D", "2026-03-01", "2026-04-01", label_delay="7D")
    assert split.valid_start == utc("2026-02-11")
    assert split.test_start == utc("2026-03-11")
    cut = split.label_cutoffs()
    assert cut["train"] == split.valid_start
    assert cut["valid"] == cut["refit"] == split.test_start
    assert cut["test"] is None
    # Nothing used for fitting or choosing is known at or after the test starts.
    assert max(cut["train"], cut["valid"], cut["refit"]) <= split.test_start
    # Train labels: every training row is at least the delay old at its cut-off.
    assert cut["train"] - split.train_end >= split.label_delay
    assert cut["valid"] - split.valid_end >= split.label_delay


# --- make_time_splits and split_frame ---------------------------------------------------------


@pytest.fixture
def hourly() -> pd.DataFrame:
    times = pd.date_range("2026-01-01", periods=100 * 24, freq="h", tz="UTC")
    return pd.DataFrame({"occurred_at": times, "x": np.arange(times.size)})


def test_fraction_split_keeps_gaps_of_the_delay(hourly):
    split = make_time_splits(
        hourly["occurred_at"], train_frac=0.6, valid_frac=0.2, test_frac=0.2, label_delay="7D"
    )
    assert split.valid_start - split.train_end >= pd.Timedelta("7D")
    assert split.test_start - split.valid_end >= pd.Timedelta("7D")
    assert split.train_start == utc("2026-01-01")
    assert split.test_end == utc("2026-04-11")
    # 100 days minus two 7-day gaps leaves 86: 51 + 17 + 18 (whole days, the test takes the rest).
    assert split.train_end - split.train_start == pd.Timedelta("51D")
    assert split.valid_end - split.valid_start == pd.Timedelta("17D")
    assert split.test_end - split.test_start == pd.Timedelta("18D")
    for ts in (split.train_end, split.valid_end, split.test_start):
        assert ts == ts.floor("D")


def test_split_frame_gap_holds_between_rows(hourly):
    split = make_time_splits(hourly["occurred_at"], label_delay="7D")
    original = hourly.copy()
    train, valid, test = split_frame(hourly, "occurred_at", split)
    pd.testing.assert_frame_equal(hourly, original)  # the input is not changed
    assert valid["occurred_at"].min() - train["occurred_at"].max() > pd.Timedelta("7D")
    assert test["occurred_at"].min() - valid["occurred_at"].max() > pd.Timedelta("7D")
    assert train["occurred_at"].max() < split.train_end <= valid["occurred_at"].min() - pd.Timedelta("7D")
    gap_rows = (period_of(hourly["occurred_at"], split) == "gap").sum()
    assert len(train) + len(valid) + len(test) + gap_rows == len(hourly)
    assert gap_rows == 2 * 7 * 24


def test_split_frame_without_validation_returns_none(hourly):
    split = make_time_splits(hourly["occurred_at"], valid_frac=0, label_delay="7D")
    train, valid, test = split_frame(hourly, "occurred_at", split)
    assert valid is None and len(train) and len(test)
    assert test["occurred_at"].min() - train["occurred_at"].max() > pd.Timedelta("7D")


def test_explicit_dates_and_empty_periods_raise(hourly):
    with_hole = hourly[(hourly["occurred_at"] < "2026-01-25") | (hourly["occurred_at"] >= "2026-03-01")]
    with pytest.raises(ValueError, match="valid period .* holds no rows"):
        make_time_splits(
            with_hole["occurred_at"], train_end="2026-01-20", valid_end="2026-02-20", test_end="2026-04-01"
        )
    split = make_time_splits(
        hourly["occurred_at"], train_end="2026-01-20", valid_end="2026-02-20", test_end="2026-04-01"
    )
    with pytest.raises(ValueError, match="valid period .* holds no rows"):
        split_frame(with_hole, "occurred_at", split)
    with pytest.raises(ValueError, match="no time column"):
        split_frame(hourly, "when", split)


def test_span_too_short_for_the_gaps_raises(hourly):
    with pytest.raises(ValueError, match="too short"):
        make_time_splits(hourly["occurred_at"].head(24 * 10), label_delay="7D")
    with pytest.raises(ValueError, match="shorter than the label delay"):
        make_time_splits(hourly["occurred_at"], label_delay="7D", gap="2D")


def test_naive_times_are_read_as_utc(hourly):
    naive = hourly.assign(occurred_at=hourly["occurred_at"].dt.tz_localize(None))
    split = make_time_splits(naive["occurred_at"], label_delay="7D")
    a = split_frame(naive, "occurred_at", split)
    b = split_frame(hourly, "occurred_at", split)
    assert [len(x) for x in a] == [len(x) for x in b]


# --- fdh ---------------------------------------------------------------------------------------


def test_fdh_chapter3_split():
    split = fdh_ch3_split()
    assert (split.train_start, split.train_end) == (utc("2018-07-25"), utc("2018-08-01"))
    assert (split.test_start, split.test_end) == (utc("2018-08-08"), utc("2018-08-15"))
    assert not split.has_validation and split.label_delay == pd.Timedelta("7D")
    assert split.label_cutoffs()["train"] == utc("2018-08-08")


def test_fdh_prequential_folds_shift_back_a_week():
    folds = fdh_prequential_folds("2018-07-25", n_folds=4)
    assert folds[0] == fdh_ch3_split()
    for i, fold in enumerate(folds):
        assert fold.train_start == utc("2018-07-25") - pd.Timedelta(days=7 * i)
        assert fold.train_end - fold.train_start == pd.Timedelta("7D")
        assert fold.test_start - fold.train_end == pd.Timedelta("7D")
        assert fold.test_end - fold.test_start == pd.Timedelta("7D")
    valid = fdh_prequential_folds("2018-07-25", validation=True)
    assert valid[0].train_start == utc("2018-07-11")
    assert max(f.test_end for f in valid) <= folds[0].test_start - pd.Timedelta("7D")


def _book_known_sets(tx: pd.DataFrame, start_day: int) -> dict[int, set]:
    """The book's get_train_test_set loop, transcribed: known cards per test day."""
    train = tx[(tx.day >= start_day) & (tx.day < start_day + 7)]
    known = set(train[train.fraud == 1].customer)
    out = {}
    for day in range(7):
        delay_day = tx[tx.day == start_day + 7 + day - 1]
        known = known | set(delay_day[delay_day.fraud == 1].customer)
        out[start_day + 14 + day] = set(known)
    return out


def test_fdh_known_compromised_matches_the_book():
    rng = np.random.default_rng(3)
    n = 3000
    day = rng.integers(0, 35, n)  # day 0 = 2018-07-18: a week of history before training
    tx = pd.DataFrame(
        {
            "customer": rng.integers(0, 60, n),
            "day": day,
            "time": pd.Timestamp("2018-07-18")
            + pd.to_timedelta(day, "D")
            + pd.to_timedelta(rng.integers(0, 86400, n), "s"),
            "fraud": (rng.random(n) < 0.03).astype(int),
        }
    )
    split = fdh_ch3_split()
    known = fdh_known_compromised(tx["customer"], tx["time"], tx["fraud"], split)
    expected = _book_known_sets(tx, start_day=7)
    test = tx[(tx.day >= 21) & (tx.day < 28)]
    removed = known_compromised_mask(test["customer"], test["time"], known)
    want = np.array([c in expected[d] for c, d in zip(test["customer"], test["day"], strict=True)])
    assert removed.sum() > 0
    np.testing.assert_array_equal(removed, want)
