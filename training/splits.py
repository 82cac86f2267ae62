"""Out-of-time splits with a label-delay gap, training targets from delayed labels, and the fdh protocol.

Label-delay rule (the one leak-free rule every training job follows):

* Periods are half-open ``[start, end)`` in UTC: train, gap, validation, gap, test. Every gap is at
  least the label delay, so that by the start of the next period the labels of the previous one
  have (mostly) arrived. Rows in a gap belong to no period; rows before ``train_start`` are
  history that point-in-time features may look back at, never training rows.
* A period's targets come from the labels known *strictly before the start of the next period*,
  the moment a model that uses them would go live (``TimeSplit.label_cutoffs``):

  - ``train``: labels known before ``valid_start = train_end + gap`` (before ``test_start`` when
    there is no validation period). The model fitted on them is the one scored on validation.
  - ``valid``: labels known before ``test_start = valid_end + gap``. Early stopping, model
    selection and the tier thresholds (``training.policy.choose_thresholds``) use them.
  - ``refit``: to refit on train + validation for the out-of-time test, use labels known before
    ``test_start`` for both periods.
  - ``test``: all labels known at evaluation time (``cutoff=None``: every label in the table), for
    evaluation only. Nothing fitted or chosen ever sees a label known at or after ``test_start``.

  A label that arrives after its cut-off counts as unknown, i.e. 0 for training: that is what the
  live system would have seen. ``mature_mask`` tells which rows are old enough (``time +
  label_delay < cutoff``) for a label to have arrived; immature rows can be dropped or weighted.

The fdh helpers encode the *Fraud Detection Handbook* protocol of
``/work/shared/benchmarks/fdh/README.md`` (chapter 3 baseline and chapter 5 prequential folds).
Naive timestamps (the fdh files) are read as UTC.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.contracts import BAD_TRANSACTION_LABELS

ID_COLUMNS = {"transaction": "transaction_id", "customer": "customer_id"}
PERIODS = ("train", "valid", "test")


# --- time helpers -----------------------------------------------------------------------------


def _utc(value, name: str = "timestamp") -> pd.Timestamp:
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError(f"{name} is missing (NaT)")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _utc_series(values, name: str = "times") -> pd.Series:
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = pd.to_datetime(s, utc=True)
    elif s.dt.tz is None:
        s = s.dt.tz_localize("UTC")
    else:
        s = s.dt.tz_convert("UTC")
    return s


def _delta(value, name: str) -> pd.Timedelta:
    if isinstance(value, int | np.integer | float) and not isinstance(value, bool):
        value = pd.Timedelta(days=float(value))
    td = pd.Timedelta(value)
    if td is pd.NaT:
        raise ValueError(f"{name} is missing (NaT)")
    if td < pd.Timedelta(0):
        raise ValueError(f"{name} must not be negative, got {td}")
    return td


# --- targets ----------------------------------------------------------------------------------


def label_targets(
    entities: pd.DataFrame,
    labels: pd.DataFrame,
    cutoff,
    entity_type: str = "transaction",
    bad_labels: Iterable[str] = BAD_TRANSACTION_LABELS,
    *,
    id_col: str | None = None,
) -> pd.Series:
    """Binary training target for each entity from the labels known strictly before ``cutoff``.

    An entity is positive when at least one label of ``bad_labels`` about it (same
    ``entity_type``) has ``known_at < cutoff``. Labels known at or after the cut-off are treated
    as not yet known, so the entity counts as 0: the label-delay rule. A later ``legitimate``
    label does not clear an earlier bad one (a confirmed bad outcome stays a positive).

    Args:
        entities: rows to label; must hold ``id_col``.
        labels: the labels table (``entity_type``, ``entity_id``, ``label``, ``known_at``).
        cutoff: first moment whose labels are *not* used (naive means UTC); ``None`` uses every
            label in the table (evaluation of the out-of-time test "with all labels known now").
        entity_type: ``"transaction"`` or ``"customer"``.
        bad_labels: label values that make a positive.
        id_col: id column of ``entities``; defaults to ``transaction_id`` / ``customer_id``.

    Returns:
        int8 Series named ``target`` with the index of ``entities`` (1 positive, 0 otherwise).

    Raises:
        ValueError: unknown entity type or missing columns.
    """
    if id_col is None:
        if entity_type not in ID_COLUMNS:
            raise ValueError(f"entity_type must be one of {sorted(ID_COLUMNS)}, got {entity_type!r}")
        id_col = ID_COLUMNS[entity_type]
    if id_col not in entities.columns:
        raise ValueError(f"entities have no id column {id_col!r}")
    missing = {"entity_type", "entity_id", "label", "known_at"} - set(labels.columns)
    if missing:
        raise ValueError(f"labels lack column(s) {sorted(missing)}")
    relevant = labels[(labels["entity_type"] == entity_type) & labels["label"].isin(list(bad_labels))]
    if cutoff is not None:
        relevant = relevant[_utc_series(relevant["known_at"]) < _utc(cutoff, "cutoff")]
    # Compare as text: ids are strings by contract, but an adapter may hand over integers.
    bad_ids = set(relevant["entity_id"].astype(str))
    target = entities[id_col].astype(str).isin(bad_ids).to_numpy().astype("int8")
    return pd.Series(target, index=entities.index, name="target")


def mature_mask(times, cutoff, label_delay) -> pd.Series:
    """Whether each row is old enough for its label to be known before ``cutoff``.

    Args:
        times: event times (Series or array; naive means UTC).
        cutoff: the label cut-off (see ``TimeSplit.label_cutoffs``).
        label_delay: typical time from event to label (Timedelta, string like ``"7D"`` or days).

    Returns:
        bool Series named ``mature`` (index of ``times`` when it is a Series): ``time +
        label_delay < cutoff``.
    """
    t = _utc_series(times)
    mature = (t + _delta(label_delay, "label_delay")) < _utc(cutoff, "cutoff")
    return mature.rename("mature")


# --- splits -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimeSplit:
    """Train / validation / out-of-time test periods separated by gaps of at least the label delay.

    All periods are half-open ``[start, end)`` in UTC: ``train_end`` is the first instant *not* in
    training (the fdh training week 2018-07-25..07-31 has ``train_end = 2018-08-01``).

    Attributes:
        train_start: first instant of training.
        train_end: end (exclusive) of training.
        gap: time between train and validation and between validation and test.
        valid_end: end (exclusive) of validation, or ``None`` for no validation period (fdh).
        test_end: end (exclusive) of the out-of-time test.
        label_delay: label delay the gap must cover; defaults to ``gap``.

    Raises:
        ValueError: a period is empty (start >= end) or the gap is shorter than the label delay.
    """

    train_start: pd.Timestamp
    train_end: pd.Timestamp
    gap: pd.Timedelta
    valid_end: pd.Timestamp | None
    test_end: pd.Timestamp
    label_delay: pd.Timedelta | None = None

    def __post_init__(self) -> None:
        # A frozen value object: normalise the types once, then check the invariants.
        set_ = object.__setattr__
        set_(self, "train_start", _utc(self.train_start, "train_start"))
        set_(self, "train_end", _utc(self.train_end, "train_end"))
        set_(self, "gap", _delta(self.gap, "gap"))
        set_(self, "valid_end", None if self.valid_end is None else _utc(self.valid_end, "valid_end"))
        set_(self, "test_end", _utc(self.test_end, "test_end"))
        delay = self.gap if self.label_delay is None else _delta(self.label_delay, "label_delay")
        set_(self, "label_delay", delay)
        if self.gap < delay:
            raise ValueError(f"the gap {self.gap} is shorter than the label delay {delay}")
        for name, (start, end) in self.periods().items():
            if start >= end:
                raise ValueError(f"the {name} period is empty: start {start} is not before end {end}")

    @property
    def has_validation(self) -> bool:
        return self.valid_end is not None

    @property
    def valid_start(self) -> pd.Timestamp | None:
        return self.train_end + self.gap if self.has_validation else None

    @property
    def test_start(self) -> pd.Timestamp:
        return (self.valid_end if self.has_validation else self.train_end) + self.gap

    def periods(self) -> dict[str, tuple[pd.Timestamp, pd.Timestamp]]:
        """Return ``{"train": (start, end), "valid": ..., "test": ...}`` (no ``valid`` when absent)."""
        out = {"train": (self.train_start, self.train_end)}
        if self.has_validation:
            out["valid"] = (self.valid_start, self.valid_end)
        out["test"] = (self.test_start, self.test_end)
        return out

    def label_cutoffs(self, evaluated_at=None) -> dict[str, pd.Timestamp | None]:
        """Label cut-off of each use of the data (labels known strictly before it are used).

        Args:
            evaluated_at: when the out-of-time test is evaluated; ``None`` means "every label
                available now" (the whole labels table).

        Returns:
            ``train``: ``train_end + gap`` (start of the next period); ``valid``: ``test_start``
            (only with a validation period); ``refit`` (train + validation refitted for the
            test): ``test_start``; ``test``: ``evaluated_at`` or ``None``.
        """
        out: dict[str, pd.Timestamp | None] = {"train": self.train_end + self.gap}
        if self.has_validation:
            out["valid"] = self.test_start
        out["refit"] = self.test_start
        out["test"] = None if evaluated_at is None else _utc(evaluated_at, "evaluated_at")
        return out

    def shifted(self, delta) -> TimeSplit:
        """The same split moved by ``delta`` (negative moves back in time)."""
        td = pd.Timedelta(delta)
        return TimeSplit(
            train_start=self.train_start + td,
            train_end=self.train_end + td,
            gap=self.gap,
            valid_end=None if self.valid_end is None else self.valid_end + td,
            test_end=self.test_end + td,
            label_delay=self.label_delay,
        )

    def to_dict(self) -> dict[str, str | None]:
        """Plain strings (ISO 8601 instants, pandas durations) for run parameters and model cards."""
        return {
            "train_start": self.train_start.isoformat(),
            "train_end": self.train_end.isoformat(),
            "gap": str(self.gap),
            "label_delay": str(self.label_delay),
            "valid_start": None if self.valid_start is None else self.valid_start.isoformat(),
            "valid_end": None if self.valid_end is None else self.valid_end.isoformat(),
            "test_start": self.test_start.isoformat(),
            "test_end": self.test_end.isoformat(),
        }


def make_time_splits(
    times=None,
    *,
    train_frac: float = 0.6,
    valid_frac: float = 0.2,
    test_frac: float = 0.2,
    label_delay="7D",
    gap=None,
    freq: str = "D",
    train_start=None,
    train_end=None,
    valid_end=None,
    test_end=None,
) -> TimeSplit:
    """Build a ``TimeSplit`` from explicit boundaries or from fractions of the data's time span.

    Explicit mode (``train_end`` and ``test_end`` given): the boundaries are used as they are
    (exclusive ends; ``valid_end=None`` means no validation period); ``train_start`` defaults to
    the first day of ``times``.

    Fraction mode: the span runs from the first ``freq`` boundary at or before the earliest time
    to the one after the latest; the gaps are taken out first and the *time* left (not the row
    count) is shared between the periods in proportion to the fractions, each rounded down to
    whole ``freq`` units, the test taking the remainder. ``valid_frac=0`` means no validation.

    Args:
        times: event times of the rows to split (naive means UTC); required in fraction mode and
            used in both modes to check that no period is empty.
        train_frac, valid_frac, test_frac: shares of the span left after the gaps.
        label_delay: the label delay the gaps must cover (Timedelta, string or days).
        gap: the gap; defaults to ``label_delay``.
        freq: boundary granularity in fraction mode (``"D"``: whole UTC days).
        train_start, train_end, valid_end, test_end: explicit boundaries.

    Returns:
        The split.

    Raises:
        ValueError: the gap is shorter than the delay, the span is too short, or a period is
            empty (no time, or no row of ``times``), naming the period.
    """
    delay = _delta(label_delay, "label_delay")
    gap_td = delay if gap is None else _delta(gap, "gap")
    t = None if times is None else _utc_series(times).dropna()
    if t is not None and t.empty:
        raise ValueError("times is empty: nothing to split")

    if train_end is not None or test_end is not None:
        if train_end is None or test_end is None:
            raise ValueError("explicit mode needs both train_end and test_end")
        if train_start is None:
            if t is None:
                raise ValueError("train_start is needed when times is not given")
            train_start = t.min().floor("D")
        split = TimeSplit(train_start, train_end, gap_td, valid_end, test_end, label_delay=delay)
    else:
        if t is None:
            raise ValueError("fraction mode needs times (or give train_end and test_end)")
        fracs = np.array([train_frac, valid_frac, test_frac], dtype=float)
        if (fracs < 0).any() or fracs[0] <= 0 or fracs[2] <= 0:
            raise ValueError(f"train and test fractions must be > 0 and none negative, got {fracs.tolist()}")
        fracs = fracs / fracs.sum()
        unit = pd.Timedelta(pd.tseries.frequencies.to_offset(freq))
        start = t.min().floor(freq)
        end = t.max().floor(freq) + unit
        with_valid = fracs[1] > 0
        n_gaps = 2 if with_valid else 1
        usable = (end - start) - n_gaps * gap_td
        if usable <= pd.Timedelta(0):
            raise ValueError(
                f"the data span {end - start} is too short for {n_gaps} gap(s) of {gap_td} (label delay {delay})"
            )
        train_len = (usable * fracs[0]) // unit * unit
        valid_len = (usable * fracs[1]) // unit * unit if with_valid else pd.Timedelta(0)
        test_len = usable - train_len - valid_len
        for name, length in (("train", train_len), ("valid", valid_len), ("test", test_len)):
            if (name != "valid" or with_valid) and length < unit:
                raise ValueError(
                    f"the {name} period would be empty: {length} of {usable} left after the gaps"
                )
        tr_end = start + train_len
        va_end = tr_end + gap_td + valid_len if with_valid else None
        split = TimeSplit(start, tr_end, gap_td, va_end, end, label_delay=delay)

    if t is not None:
        _check_rows(period_of(t, split), split)
    return split


def period_of(times, split: TimeSplit) -> pd.Series:
    """Name the period of each time: ``train``, ``valid``, ``test``, ``gap``, ``before`` or ``after``.

    Args:
        times: event times (naive means UTC).
        split: the split.

    Returns:
        str Series named ``period`` (index of ``times`` when it is a Series).
    """
    t = _utc_series(times)
    out = np.full(len(t), "gap", dtype=object)
    out[(t < split.train_start).to_numpy()] = "before"
    out[(t >= split.test_end).to_numpy()] = "after"
    for name, (start, end) in split.periods().items():
        out[((t >= start) & (t < end)).to_numpy()] = name
    return pd.Series(out, index=t.index, name="period", dtype=object)


def _check_rows(period: pd.Series, split: TimeSplit) -> None:
    counts = period.value_counts()
    for name, (start, end) in split.periods().items():
        if counts.get(name, 0) == 0:
            raise ValueError(f"the {name} period [{start}, {end}) holds no rows")


def split_frame(
    df: pd.DataFrame, time_col: str, split: TimeSplit
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame]:
    """Select the train, validation and test rows of ``df`` (frames of their own; ``df`` is not changed).

    Rows in the gaps, before ``train_start`` or from ``test_end`` on belong to no period and are
    left out; compute point-in-time features on the whole history *before* splitting.

    Args:
        df: rows with an event-time column.
        time_col: name of the event-time column (naive means UTC).
        split: the split.

    Returns:
        ``(train, valid, test)``; ``valid`` is ``None`` when the split has no validation period.

    Raises:
        ValueError: ``time_col`` is missing or a period holds no rows (naming the period).
    """
    if time_col not in df.columns:
        raise ValueError(f"the frame has no time column {time_col!r}")
    period = period_of(df[time_col], split)
    _check_rows(period, split)
    parts = {name: _rows(df, (period == name).to_numpy()) for name in split.periods()}
    return parts["train"], parts.get("valid"), parts["test"]


def _rows(df: pd.DataFrame, selected: np.ndarray) -> pd.DataFrame:
    """The selected rows as a frame of their own (changing it never changes ``df``: copy-on-write).

    A frame in time order has each period as one run of rows: that slice shares ``df``'s data
    instead of copying it (on 1M orders the three periods were ~0.9 GB of copies).
    """
    positions = np.flatnonzero(selected)
    if len(positions) and positions[-1] - positions[0] + 1 == len(positions):
        return df.iloc[positions[0] : positions[-1] + 1]
    return df.loc[selected]


# --- the fdh protocol -------------------------------------------------------------------------

FDH_TRAIN_START = "2018-07-25"


def fdh_ch3_split(
    train_start=FDH_TRAIN_START, delta_train: int = 7, delta_delay: int = 7, delta_test: int = 7
) -> TimeSplit:
    """The fdh chapter 3 baseline: train 2018-07-25..07-31, 7-day delay, test 2018-08-08..08-14.

    Args:
        train_start: first training day.
        delta_train, delta_delay, delta_test: period lengths in days.

    Returns:
        A split without validation period (ends exclusive: train_end 2018-08-01, test_end
        2018-08-15).
    """
    start = _utc(train_start, "train_start").floor("D")
    train_end = start + pd.Timedelta(days=delta_train)
    delay = pd.Timedelta(days=delta_delay)
    return TimeSplit(start, train_end, delay, None, train_end + delay + pd.Timedelta(days=delta_test))


def fdh_prequential_folds(
    test_train_start=FDH_TRAIN_START,
    n_folds: int = 4,
    *,
    validation: bool = False,
    delta_train: int = 7,
    delta_delay: int = 7,
    delta_test: int = 7,
) -> list[TimeSplit]:
    """The fdh prequential folds (chapter 5): each 7 days train, 7 delay, 7 test.

    Fold 0 starts training on ``test_train_start`` (the chapter 3 split); fold ``i`` is fold 0
    moved back ``i * delta_test`` days, as in the book's ``prequentialSplit``. With
    ``validation=True`` every fold is moved back a further ``delta_delay + delta_test`` days (the
    book's model-selection folds, whose test weeks end before the final test's labels are known).

    Args:
        test_train_start: training start of the final (test) fold.
        n_folds: number of folds (>= 1).
        validation: build the model-selection folds instead of the assessment folds.
        delta_train, delta_delay, delta_test: period lengths in days.

    Returns:
        ``n_folds`` splits, latest first.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")
    start = _utc(test_train_start, "test_train_start").floor("D")
    if validation:
        start -= pd.Timedelta(days=delta_delay + delta_test)
    base = fdh_ch3_split(start, delta_train, delta_delay, delta_test)
    return [base.shifted(pd.Timedelta(days=-i * delta_test)) for i in range(n_folds)]


def fdh_known_compromised(customer_ids, times, y, split: TimeSplit) -> pd.DataFrame:
    """Customers known to be compromised, and from which day, under the fdh protocol.

    The README's rule: on test day k, every customer with a fraud in the training week or on a
    day up to ``train_start + delta_train + k - 1`` is known. Equivalently a fraud on day ``d``
    (``d >= train_start``) is known from day ``d + label_delay + 1 day`` on. Pass the result to
    ``training.metrics.known_compromised_mask`` (to drop these cards from the test set, as the
    book does for every metric) or to ``card_precision_at_k``.

    Args:
        customer_ids: card / customer of each transaction.
        times: transaction times (naive means UTC).
        y: 1 for a fraudulent transaction.
        split: the split whose test days are evaluated.

    Returns:
        DataFrame with one row per customer: ``customer_id`` and ``known_from`` (UTC midnight of
        the first day on which the customer counts as known).
    """
    day = _utc_series(times).dt.floor("D").reset_index(drop=True)
    frame = pd.DataFrame({"customer_id": np.asarray(customer_ids), "day": day, "y": np.asarray(y)})
    frauds = frame[(frame["y"] == 1) & (frame["day"] >= split.train_start) & (frame["day"] < split.test_end)]
    known_from = frauds["day"] + split.label_delay + pd.Timedelta(days=1)
    out = pd.DataFrame({"customer_id": frauds["customer_id"], "known_from": known_from})
    return out.groupby("customer_id", as_index=False, sort=True)["known_from"].min()


def in_period(times: pd.Series, start: Any, end: Any) -> pd.Series:
    """True where ``start <= time < end`` (a period recorded as text in a model's metadata)."""
    return (times >= pd.Timestamp(start)) & (times < pd.Timestamp(end))
