"""Evaluation metrics for fraud scores: ranking, alert budgets, cost, calibration, drift, fairness.

One module of ~740 lines on purpose: its sections are small (60-140 lines each), they share the
input conventions and helpers below, and ``evaluate_scores`` at the end composes all of them into
one run's metrics; split apart, every section would import the same private helpers back.

Conventions shared by every function here:

* ``y`` is 1 for a positive (fraud), 0 otherwise; ``score`` is higher for riskier rows; a row is
  flagged at threshold ``t`` when ``score >= t``.
* "Per day" means per UTC calendar day of ``times`` (integer day numbers, like fdh's
  ``TX_TIME_DAYS``, are used as they are).
* Ties are never split: all rows with one score value are on the same side of a threshold; where
  a fixed number of rows must be taken (top k) ties are broken by input order (stable sort).
* A metric that is undefined on the data (AUC with one class, ...) is ``nan``, never an error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

MISSING_SEGMENT = "missing"


# --- input helpers ----------------------------------------------------------------------------


def _yx(y, score) -> tuple[np.ndarray, np.ndarray]:
    y_arr = np.asarray(y, dtype=float).ravel()
    s_arr = np.asarray(score, dtype=float).ravel()
    if y_arr.shape != s_arr.shape:
        raise ValueError(f"y has {y_arr.size} values but score has {s_arr.size}")
    if not np.isin(y_arr, (0.0, 1.0)).all():
        raise ValueError("y must hold only 0 and 1")
    if np.isnan(s_arr).any():
        raise ValueError("score holds NaN")
    return y_arr.astype(np.int8), s_arr


def _same_length(name: str, values, n: int) -> np.ndarray:
    arr = np.asarray(values).ravel()
    if arr.size != n:
        raise ValueError(f"{name} has {arr.size} values, expected {n}")
    return arr


def _day_keys(days) -> pd.Series:
    """UTC day (midnight) of datetime-like values, naive read as UTC; other values (day numbers)
    as they are. The result has a fresh 0..n-1 index."""
    if isinstance(days, pd.Series | pd.Index):
        s = pd.Series(days).reset_index(drop=True)
    elif np.isscalar(days) or isinstance(days, pd.Timestamp):
        raise ValueError("expected one time or day number per row, got a scalar")
    else:
        s = pd.Series(list(days) if not isinstance(days, np.ndarray) else days.ravel())
    if s.dtype == object:
        first = s.dropna()
        if len(first) and isinstance(first.iloc[0], pd.Timestamp | np.datetime64 | datetime):
            s = pd.to_datetime(s, utc=True)
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = s.dt.tz_localize("UTC") if s.dt.tz is None else s.dt.tz_convert("UTC")
        return s.dt.floor("D")
    return s


def _both_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < y.size


# --- ranking ----------------------------------------------------------------------------------


def roc_auc(y, score) -> float:
    """Area under the ROC curve (scikit-learn); ``nan`` when only one class is present."""
    y_arr, s_arr = _yx(y, score)
    return float(roc_auc_score(y_arr, s_arr)) if _both_classes(y_arr) else math.nan


def average_precision(y, score) -> float:
    """Average precision (scikit-learn, step-wise, no interpolation); ``nan`` without positives."""
    y_arr, s_arr = _yx(y, score)
    return float(average_precision_score(y_arr, s_arr)) if y_arr.sum() > 0 else math.nan


def operating_point_at_fpr(y, score, max_fpr: float) -> dict[str, float]:
    """The ROC operating point with the most recall whose false-positive rate is at most ``max_fpr``.

    Interpolation-free: only thresholds equal to an observed score are considered (ties are not
    split). Among them, the lowest threshold whose FPR is <= ``max_fpr`` is taken; since FPR
    falls as the threshold rises, that is the largest FPR not above the target, and the highest
    recall reachable within it.

    Args:
        y: 0/1 labels.
        score: risk scores.
        max_fpr: target false-positive rate in [0, 1].

    Returns:
        ``threshold`` (``inf`` when even the top score exceeds the target: nothing flagged),
        ``recall`` (true-positive rate), ``fpr``; all ``nan`` with only one class.
    """
    if not 0.0 <= max_fpr <= 1.0:
        raise ValueError(f"max_fpr must be in [0, 1], got {max_fpr}")
    y_arr, s_arr = _yx(y, score)
    if not _both_classes(y_arr):
        return {"threshold": math.nan, "recall": math.nan, "fpr": math.nan}
    order = np.argsort(-s_arr, kind="stable")
    s_sorted, y_sorted = s_arr[order], y_arr[order]
    last_of_value = np.r_[np.flatnonzero(np.diff(s_sorted) != 0), s_sorted.size - 1]
    tp = np.cumsum(y_sorted)[last_of_value]
    fp = np.cumsum(1 - y_sorted)[last_of_value]
    n_pos, n_neg = int(y_arr.sum()), int(y_arr.size - y_arr.sum())
    # Compare counts, not rates, so that 1/100 <= 0.01 holds despite floating point.
    ok = np.flatnonzero(fp <= max_fpr * n_neg + 1e-9)
    if ok.size == 0:
        return {"threshold": math.inf, "recall": 0.0, "fpr": 0.0}
    i = ok[-1]
    return {
        "threshold": float(s_sorted[last_of_value[i]]),
        "recall": float(tp[i] / n_pos),
        "fpr": float(fp[i] / n_neg),
    }


def recall_at_fpr(y, score, max_fpr: float = 0.01) -> float:
    """Recall at the best threshold whose false-positive rate is at most ``max_fpr`` (see
    ``operating_point_at_fpr``)."""
    return operating_point_at_fpr(y, score, max_fpr)["recall"]


def precision_top_k_per_day(y, score, days, k: int = 100) -> float:
    """Mean over days of the precision among each day's ``k`` highest-scored rows.

    A day with fewer than ``k`` rows uses all of them (precision = positives / rows flagged);
    contrast ``card_precision_at_k``, which divides by ``k`` as the fdh book does.

    Args:
        y: 0/1 labels.
        score: risk scores.
        days: time (or day number) of each row.
        k: daily alert budget.

    Returns:
        The mean daily precision (``nan`` with no rows).
    """
    return float(precision_top_k_by_day(y, score, days, k)["precision"].mean())


def precision_top_k_by_day(y, score, days, k: int = 100) -> pd.DataFrame:
    """Daily table behind ``precision_top_k_per_day``.

    Returns:
        DataFrame indexed by ``day`` with ``n_rows`` (rows that day), ``n_flagged``
        (``min(k, n_rows)``), ``n_positive_flagged`` and ``precision``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    y_arr, s_arr = _yx(y, score)
    day = _day_keys(days)
    if day.size != y_arr.size:
        raise ValueError(f"days has {day.size} values, expected {y_arr.size}")
    frame = pd.DataFrame({"day": day, "y": y_arr, "score": s_arr})
    frame = frame.sort_values("score", ascending=False, kind="mergesort")
    top = frame.groupby("day", sort=True).head(k)
    table = pd.DataFrame(
        {
            "n_rows": frame.groupby("day", sort=True).size(),
            "n_flagged": top.groupby("day", sort=True).size(),
            "n_positive_flagged": top.groupby("day", sort=True)["y"].sum(),
        }
    )
    table["precision"] = table["n_positive_flagged"] / table["n_flagged"]
    table.index.name = "day"
    return table


# --- fdh card precision -----------------------------------------------------------------------


def known_compromised_mask(customer_ids, days, known) -> np.ndarray:
    """Which rows belong to a customer already known to be compromised on the row's day.

    Args:
        customer_ids: customer (card) of each row.
        days: time or day number of each row.
        known: ``None`` (nobody), a collection of customer ids (known on every day), or a
            DataFrame with ``customer_id`` and ``known_from``: the customer is known on every day
            ``>= known_from`` (compared as UTC days, or as day numbers), e.g. the output of
            ``training.splits.fdh_known_compromised``.

    Returns:
        bool array, True for rows to remove.
    """
    ids = pd.Series(np.asarray(customer_ids).ravel())
    if known is None:
        return np.zeros(ids.size, dtype=bool)
    if isinstance(known, pd.DataFrame):
        missing = {"customer_id", "known_from"} - set(known.columns)
        if missing:
            raise ValueError(f"known-compromised frame lacks column(s) {sorted(missing)}")
        day = _day_keys(days)
        if day.size != ids.size:
            raise ValueError(f"days has {day.size} values, expected {ids.size}")
        first = known.groupby("customer_id")["known_from"].min()
        first = pd.Series(_day_keys(first).to_numpy(), index=first.index)
        row_first = ids.map(first)
        return (row_first.notna() & (day >= row_first)).to_numpy(dtype=bool)
    return ids.isin(list(known)).to_numpy(dtype=bool)


def card_precision_by_day(
    y, score, customer_ids, days, k: int = 100, known_compromised=None, remove_detected: bool = True
) -> pd.DataFrame:
    """Daily table behind ``card_precision_at_k`` (the fdh README's Card Precision@k).

    For each day (in order): drop rows of customers known compromised that day
    (``known_compromised``, see ``known_compromised_mask``) and, with ``remove_detected``, of
    customers detected (compromised and in the top k) on an earlier day; take each customer's
    maximum score and maximum label over the day's rows; rank customers by score (ties by
    customer id); count compromised customers among the top ``k`` and divide by ``k``.

    Returns:
        DataFrame indexed by ``day`` with ``n_customers`` (after removal), ``n_compromised``
        (after removal), ``n_detected`` (compromised in the top k) and ``card_precision``.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    y_arr, s_arr = _yx(y, score)
    ids = _same_length("customer_ids", customer_ids, y_arr.size)
    day = _day_keys(days)
    if day.size != y_arr.size:
        raise ValueError(f"days has {day.size} values, expected {y_arr.size}")
    frame = pd.DataFrame({"customer_id": ids, "day": day, "y": y_arr, "score": s_arr})
    # Days come from the rows before removal, so that a day whose cards were all known counts 0.
    all_days = np.sort(frame["day"].unique())
    frame = frame[~known_compromised_mask(ids, day, known_compromised)]
    detected: set = set()
    rows = []
    for d in all_days:
        today = frame[frame["day"] == d]
        if remove_detected and detected:
            today = today[~today["customer_id"].isin(list(detected))]
        cards = today.groupby("customer_id", sort=True)[["score", "y"]].max()
        top = cards.sort_values("score", ascending=False, kind="mergesort").head(k)
        hits = top.index[top["y"] == 1]
        if remove_detected:
            detected.update(hits)
        rows.append(
            {
                "day": d,
                "n_customers": len(cards),
                "n_compromised": int(cards["y"].sum()),
                "n_detected": len(hits),
                "card_precision": len(hits) / k,
            }
        )
    columns = ["day", "n_customers", "n_compromised", "n_detected", "card_precision"]
    return pd.DataFrame(rows, columns=columns).set_index("day")


def card_precision_at_k(
    y, score, customer_ids, days, k: int = 100, known_compromised=None, remove_detected: bool = True
) -> float:
    """Card Precision@k exactly as the fdh README (and the book's ``card_precision_top_k``) define it.

    Per day: each customer's maximum score and maximum label, customers ranked by score, the
    number of compromised customers among the top ``k`` divided by ``k``; then the mean over the
    days present in the input. Customers known compromised (``known_compromised``) and, with
    ``remove_detected``, customers detected on earlier days are removed first.

    Args:
        y: 0/1 transaction labels.
        score: transaction scores.
        customer_ids: card / customer of each transaction.
        days: time or day number of each transaction.
        k: number of cards investigated per day.
        known_compromised: see ``known_compromised_mask``.
        remove_detected: drop customers detected on earlier days (the book's default).

    Returns:
        The mean daily card precision (``nan`` with no rows).
    """
    table = card_precision_by_day(y, score, customer_ids, days, k, known_compromised, remove_detected)
    return float(table["card_precision"].mean()) if len(table) else math.nan


# --- cost -------------------------------------------------------------------------------------


def cost_summary(y, flagged, amount, review_cost: float) -> dict[str, float]:
    """Cost of a flagging decision on labelled data, against approving everything.

    A missed (unflagged) fraud costs its amount; every flagged row (reviewed or blocked) costs
    ``review_cost``. Approving everything costs the sum of the fraud amounts.

    Args:
        y: 0/1 labels.
        flagged: bool per row, True when the row is reviewed or blocked.
        amount: amount per row (same currency as ``review_cost``, e.g. USD).
        review_cost: cost of handling one flagged row.

    Returns:
        ``expected_cost``, ``expected_cost_approve_all``, ``expected_cost_saved`` (baseline minus
        cost), ``expected_cost_saved_ratio`` (saved / baseline; ``nan`` without fraud),
        ``missed_fraud_amount``, ``review_cost_total`` and ``flag_rate``.
    """
    y_arr = np.asarray(y, dtype=float).ravel()
    flag = _same_length("flagged", flagged, y_arr.size).astype(bool)
    amt = _same_length("amount", amount, y_arr.size).astype(float)
    if review_cost < 0:
        raise ValueError(f"review_cost must be >= 0, got {review_cost}")
    fraud = y_arr == 1
    baseline = float(amt[fraud].sum())
    missed = float(amt[fraud & ~flag].sum())
    reviews = float(flag.sum() * review_cost)
    cost = missed + reviews
    return {
        "expected_cost": cost,
        "expected_cost_approve_all": baseline,
        "expected_cost_saved": baseline - cost,
        "expected_cost_saved_ratio": (baseline - cost) / baseline if baseline > 0 else math.nan,
        "missed_fraud_amount": missed,
        "review_cost_total": reviews,
        "flag_rate": float(flag.mean()) if flag.size else math.nan,
    }


def expected_cost(y, flagged, amount, review_cost: float) -> float:
    """Missed fraud amounts plus ``review_cost`` per flagged row (see ``cost_summary``)."""
    return cost_summary(y, flagged, amount, review_cost)["expected_cost"]


def cost_optimal_flags(probability, amount, review_cost: float) -> np.ndarray:
    """Flag a row when its expected fraud loss exceeds the review cost: ``p * amount > review_cost``.

    The per-row Bayes decision for *calibrated* probabilities, used when no threshold is given.
    """
    p = np.asarray(probability, dtype=float).ravel()
    return p * _same_length("amount", amount, p.size).astype(float) > review_cost


# --- calibration ------------------------------------------------------------------------------


def brier_score(y, probability) -> float:
    """Mean squared error of the probabilities (scikit-learn's Brier score)."""
    y_arr, p = _yx(y, probability)
    return float(brier_score_loss(y_arr, p, labels=[0, 1]))


def reliability_table(y, probability, n_bins: int = 10, strategy: str = "quantile") -> pd.DataFrame:
    """Reliability (calibration) curve as a table.

    Bins are ``[lower, upper)``, the last one closed. ``strategy="quantile"`` (the default) uses
    equal-count bins from the quantiles of the probabilities (repeated edges merged, so there can
    be fewer bins): with rare fraud most probabilities are tiny, and equal-width bins would put
    almost every row in the first bin. ``strategy="uniform"`` uses equal-width bins on [0, 1];
    empty bins are kept with count 0.

    Args:
        y: 0/1 labels.
        probability: predicted probabilities in [0, 1].
        n_bins: number of bins.
        strategy: ``"quantile"`` or ``"uniform"``.

    Returns:
        DataFrame with one row per bin: ``bin``, ``lower``, ``upper``, ``count``,
        ``mean_predicted``, ``fraction_positive`` (``nan`` for empty bins) and ``abs_gap``
        (``|mean_predicted - fraction_positive|``).
    """
    y_arr, p = _yx(y, probability)
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError("probabilities must lie in [0, 1]")
    if strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    elif strategy == "quantile":
        if p.size == 0:
            edges = np.array([0.0, 1.0])
        else:
            edges = np.unique(np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1)))
            if edges.size == 1:
                edges = np.array([edges[0], edges[0]])
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    inner = edges[1:-1]
    idx = np.searchsorted(inner, p, side="right")
    n = edges.size - 1
    count = np.bincount(idx, minlength=n).astype(float)
    sum_p = np.bincount(idx, weights=p, minlength=n)
    sum_y = np.bincount(idx, weights=y_arr.astype(float), minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_p = np.where(count > 0, sum_p / count, np.nan)
        frac = np.where(count > 0, sum_y / count, np.nan)
    return pd.DataFrame(
        {
            "bin": np.arange(n),
            "lower": edges[:-1],
            "upper": edges[1:],
            "count": count.astype(int),
            "mean_predicted": mean_p,
            "fraction_positive": frac,
            "abs_gap": np.abs(mean_p - frac),
        }
    )


def expected_calibration_error(y, probability, n_bins: int = 10, strategy: str = "quantile") -> float:
    """Expected calibration error: ``sum_b (n_b / n) * |mean predicted_b - fraction positive_b|``.

    Bins as in ``reliability_table`` (equal-count by default, ``strategy="uniform"`` for
    equal-width); empty bins contribute nothing.
    """
    table = reliability_table(y, probability, n_bins, strategy)
    total = table["count"].sum()
    if total == 0:
        return math.nan
    used = table[table["count"] > 0]
    return float((used["count"] / total * used["abs_gap"]).sum())


# --- drift ------------------------------------------------------------------------------------


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype)


def population_stability_index(
    reference, current, n_bins: int = 10, eps: float = 1e-4, categorical: bool | None = None
) -> float:
    """Population stability index of ``current`` against ``reference``.

    ``PSI = sum_b (c_b - r_b) * ln(c_b / r_b)`` over bins, with ``r_b`` and ``c_b`` the shares of
    the two samples in bin ``b`` and empty shares replaced by ``eps``. Numeric values are binned
    at the reference's quantiles (``n_bins`` equal-count bins, repeated edges merged; the outer
    bins are open so that current values outside the reference range still count); other values
    (strings, categories, booleans) are binned by value. Missing values form a bin of their own
    in both cases, so a change in the missing rate shows. Rule of thumb: < 0.1 stable, 0.1-0.25
    moderate shift, > 0.25 large shift.

    Args:
        reference: the baseline sample (e.g. training data).
        current: the sample to compare (e.g. last week's requests).
        n_bins: number of quantile bins for numeric values.
        eps: share used in place of 0.
        categorical: force categorical (True) or numeric (False) binning; ``None`` infers it.

    Returns:
        The PSI (0 for identical distributions; ``nan`` when a sample is empty).
    """
    ref = reference if isinstance(reference, pd.Series) else pd.Series(np.asarray(reference).ravel())
    cur = current if isinstance(current, pd.Series) else pd.Series(np.asarray(current).ravel())
    if ref.empty or cur.empty:
        return math.nan
    if categorical is None:
        categorical = not (_is_numeric(ref) and _is_numeric(cur))
    if categorical:
        ref_keys = ref.astype(object).where(ref.notna(), "\0missing")
        cur_keys = cur.astype(object).where(cur.notna(), "\0missing")
        ref_share = ref_keys.value_counts(normalize=True)
        cur_share = cur_keys.value_counts(normalize=True)
        keys = ref_share.index.union(cur_share.index)
        r = ref_share.reindex(keys, fill_value=0.0).to_numpy(dtype=float)
        c = cur_share.reindex(keys, fill_value=0.0).to_numpy(dtype=float)
    else:
        ref_v = ref.to_numpy(dtype=float, na_value=np.nan)
        cur_v = cur.to_numpy(dtype=float, na_value=np.nan)
        ref_ok = ref_v[~np.isnan(ref_v)]
        inner = (
            np.unique(np.quantile(ref_ok, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]))
            if ref_ok.size
            else np.array([])
        )
        n = inner.size + 2  # value bins plus the missing bin
        r = _bin_shares(ref_v, inner, n)
        c = _bin_shares(cur_v, inner, n)
    r = np.where(r > 0, r, eps)
    c = np.where(c > 0, c, eps)
    return float(np.sum((c - r) * np.log(c / r)))


def _bin_shares(values: np.ndarray, inner: np.ndarray, n: int) -> np.ndarray:
    missing = np.isnan(values)
    idx = np.where(missing, n - 1, np.searchsorted(inner, np.where(missing, 0.0, values), side="right"))
    return np.bincount(idx, minlength=n) / values.size


def psi_by_feature(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    columns: Iterable[str] | None = None,
    n_bins: int = 10,
    eps: float = 1e-4,
) -> pd.DataFrame:
    """``population_stability_index`` of every column shared by two frames.

    Args:
        reference: baseline rows.
        current: rows to compare.
        columns: columns to compare; defaults to the reference's columns also in ``current``.
        n_bins: quantile bins for numeric columns.
        eps: share used in place of 0.

    Returns:
        DataFrame indexed by ``feature`` with ``kind`` (``numeric`` / ``categorical``) and
        ``psi``, sorted by decreasing PSI.
    """
    cols = [c for c in reference.columns if c in current.columns] if columns is None else list(columns)
    missing = [c for c in cols if c not in reference.columns or c not in current.columns]
    if missing:
        raise ValueError(f"column(s) {missing} are not in both frames")
    rows = []
    for col in cols:
        numeric = _is_numeric(reference[col]) and _is_numeric(current[col])
        psi = population_stability_index(reference[col], current[col], n_bins, eps, categorical=not numeric)
        rows.append({"feature": col, "kind": "numeric" if numeric else "categorical", "psi": psi})
    table = pd.DataFrame(rows, columns=["feature", "kind", "psi"]).set_index("feature")
    return table.sort_values("psi", ascending=False, kind="mergesort")


# --- segments (fairness) ----------------------------------------------------------------------


def age_band(birth_date, as_of, edges: tuple[int, ...] = (25, 35, 50, 65)) -> pd.Series:
    """Age band of each person on ``as_of``, for segment metrics.

    Args:
        birth_date: birth dates (naive means UTC); missing (e.g. businesses) gives ``missing``.
        as_of: reference time (a scalar, or one per row).
        edges: band boundaries in whole years.

    Returns:
        str Series named ``age_band``: ``<25``, ``25-34``, ..., ``65+`` or ``missing``.
    """
    born = _day_keys(birth_date)
    if isinstance(as_of, str | pd.Timestamp | datetime | np.datetime64):
        ref = pd.Series(pd.Timestamp(as_of), index=born.index)
        ref = _day_keys(ref)
    else:
        ref = _day_keys(as_of)
    if not pd.api.types.is_datetime64_any_dtype(born.dtype):
        born = _day_keys(pd.to_datetime(born, utc=True))
    age = (ref.dt.year - born.dt.year) - (
        (ref.dt.month < born.dt.month) | ((ref.dt.month == born.dt.month) & (ref.dt.day < born.dt.day))
    ).astype(int)
    labels = (
        [f"<{edges[0]}"]
        + [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
        + [f"{edges[-1]}+"]
    )
    idx = np.searchsorted(np.asarray(edges), age.fillna(-1).to_numpy(), side="right")
    out = np.asarray(labels, dtype=object)[idx]
    out[age.isna().to_numpy()] = MISSING_SEGMENT
    index = birth_date.index if isinstance(birth_date, pd.Series) else None
    return pd.Series(out, index=index, name="age_band", dtype=object)


def segment_metrics(y, score, segment, threshold: float | None = None, *, flagged=None) -> pd.DataFrame:
    """Metrics per segment (customer type, region, age band, any column) at one decision rule.

    Args:
        y: 0/1 labels.
        score: risk scores.
        segment: segment of each row; missing values form the ``missing`` segment.
        threshold: rows with ``score >= threshold`` are flagged; or give ``flagged`` instead.
        flagged: bool per row (e.g. ``cost_optimal_flags``), instead of ``threshold``.

    Returns:
        DataFrame indexed by ``segment`` (as text) with ``count``, ``positives``,
        ``prevalence``, ``auc_roc``, ``average_precision``, ``flag_rate``, ``fpr`` (flagged
        share of negatives), ``tpr`` (recall), ``precision`` and ``fpr_ratio_to_overall``
        (segment FPR / overall FPR). The overall values are in ``table.attrs["overall"]``.
    """
    y_arr, s_arr = _yx(y, score)
    if (threshold is None) == (flagged is None):
        raise ValueError("give exactly one of threshold and flagged")
    flag = (
        s_arr >= threshold if flagged is None else _same_length("flagged", flagged, y_arr.size).astype(bool)
    )
    seg = pd.Series(_same_length("segment", segment, y_arr.size), dtype=object)
    seg = seg.where(seg.notna(), MISSING_SEGMENT).astype(str)

    def rates(mask: np.ndarray) -> dict[str, float]:
        yy, ss, ff = y_arr[mask], s_arr[mask], flag[mask]
        neg, pos = int((yy == 0).sum()), int(yy.sum())
        return {
            "count": int(mask.sum()),
            "positives": pos,
            "prevalence": pos / mask.sum() if mask.sum() else math.nan,
            "auc_roc": roc_auc(yy, ss) if mask.sum() else math.nan,
            "average_precision": average_precision(yy, ss) if mask.sum() else math.nan,
            "flag_rate": float(ff.mean()) if mask.sum() else math.nan,
            "fpr": float((ff & (yy == 0)).sum() / neg) if neg else math.nan,
            "tpr": float((ff & (yy == 1)).sum() / pos) if pos else math.nan,
            "precision": float((ff & (yy == 1)).sum() / ff.sum()) if ff.sum() else math.nan,
        }

    overall = rates(np.ones(y_arr.size, dtype=bool))
    rows = {name: rates((seg == name).to_numpy()) for name in sorted(seg.unique())}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "segment"
    with np.errstate(divide="ignore", invalid="ignore"):
        table["fpr_ratio_to_overall"] = (
            table["fpr"] / overall["fpr"] if overall["fpr"] and not math.isnan(overall["fpr"]) else math.nan
        )
    table.attrs["overall"] = overall
    return table


def fpr_min_max_ratio(table: pd.DataFrame) -> float:
    """Smallest segment FPR divided by the largest (1 = equal; segments without negatives ignored).

    Args:
        table: output of ``segment_metrics``.

    Returns:
        The ratio in [0, 1]; 1 when every FPR is 0; ``nan`` with no segment holding negatives.
    """
    fpr = table["fpr"].dropna()
    if fpr.empty:
        return math.nan
    return 1.0 if fpr.max() == 0 else float(fpr.min() / fpr.max())


# --- everything for one run -------------------------------------------------------------------

_UNSAFE = re.compile(r"[^0-9A-Za-z_.\-]+")


def metric_key(*parts) -> str:
    """Join parts with ``.`` into a metric name MLflow accepts (letters, digits, ``_ . -``)."""
    return ".".join(_UNSAFE.sub("_", str(p)).strip("_") or "_" for p in parts)


def _pct(rate: float) -> str:
    return f"{rate * 100:g}".replace(".", "_") + "pct"


def evaluate_scores(
    y,
    score,
    amount=None,
    times=None,
    *,
    customer_ids=None,
    segments: pd.DataFrame | Mapping[str, Iterable] | None = None,
    threshold: float | None = None,
    review_cost: float = 10.0,
    k: int = 100,
    fpr_targets: Iterable[float] = (0.01, 0.05),
    n_bins: int = 10,
    bin_strategy: str = "quantile",
    known_compromised=None,
    prefix: str = "",
) -> dict[str, float]:
    """Every metric of this module for one set of scores, as flat MLflow-safe keys.

    Metrics needing an input that is not given are left out (no ``amount``: no cost; no ``times``:
    nothing per day; no ``customer_ids``: no card precision). The decision rule for cost and
    segment rates is ``score >= threshold`` when a threshold is given, else the cost-optimal rule
    for calibrated probabilities ``score * amount > review_cost`` (``cost_optimal_flags``), else
    (neither) those metrics are left out.

    Args:
        y: 0/1 labels.
        score: predicted fraud probabilities (calibration metrics only if all lie in [0, 1]).
        amount: amount per row, same currency as ``review_cost``.
        times: event times (or day numbers) for the per-day metrics.
        customer_ids: card / customer per row for Card Precision@k.
        segments: columns to slice by (e.g. ``customer_type``, ``region``, ``age_band``).
        threshold: flagging threshold (e.g. the tier policy's medium threshold).
        review_cost: cost of one review.
        k: daily alert budget for the top-k metrics.
        fpr_targets: false-positive rates for ``recall_at_fpr_*``.
        n_bins, bin_strategy: calibration bins (see ``reliability_table``).
        known_compromised: customers removed from Card Precision@k (see
            ``known_compromised_mask``).
        prefix: prepended to every key (e.g. ``"test."``).

    Returns:
        ``{name: value}``: ``n``, ``n_positive``, ``prevalence``, ``auc_roc``,
        ``average_precision``, ``recall_at_fpr_1pct`` and ``threshold_at_fpr_1pct`` (per target),
        ``brier``, ``ece``, ``precision_top{k}_per_day``, ``card_precision_top{k}``, the
        ``cost_summary`` keys, and per segment column ``segment.{column}.{value}.{metric}`` plus
        ``segment.{column}.fpr_min_max_ratio``. Values may be ``nan``.
    """
    y_arr, s_arr = _yx(y, score)
    out: dict[str, float] = {
        "n": float(y_arr.size),
        "n_positive": float(y_arr.sum()),
        "prevalence": float(y_arr.mean()) if y_arr.size else math.nan,
        "auc_roc": roc_auc(y_arr, s_arr),
        "average_precision": average_precision(y_arr, s_arr),
    }
    for rate in fpr_targets:
        point = operating_point_at_fpr(y_arr, s_arr, rate)
        out[f"recall_at_fpr_{_pct(rate)}"] = point["recall"]
        out[f"threshold_at_fpr_{_pct(rate)}"] = point["threshold"]
    if s_arr.size and s_arr.min() >= 0 and s_arr.max() <= 1:
        out["brier"] = brier_score(y_arr, s_arr)
        out["ece"] = expected_calibration_error(y_arr, s_arr, n_bins, bin_strategy)
    if times is not None:
        days = _day_keys(times)
        out[f"precision_top{k}_per_day"] = precision_top_k_per_day(y_arr, s_arr, days, k)
        if customer_ids is not None:
            out[f"card_precision_top{k}"] = card_precision_at_k(
                y_arr, s_arr, customer_ids, days, k, known_compromised=known_compromised
            )
    flagged = None
    if threshold is not None:
        flagged = s_arr >= threshold
    elif amount is not None:
        flagged = cost_optimal_flags(s_arr, amount, review_cost)
    if flagged is not None and amount is not None:
        out.update(cost_summary(y_arr, flagged, amount, review_cost))
    if segments is not None and flagged is not None:
        seg_frame = segments if isinstance(segments, pd.DataFrame) else pd.DataFrame(dict(segments))
        for col in seg_frame.columns:
            table = segment_metrics(y_arr, s_arr, seg_frame[col].to_numpy(), flagged=flagged)
            for value, row in table.iterrows():
                for metric in (
                    "count",
                    "prevalence",
                    "auc_roc",
                    "average_precision",
                    "flag_rate",
                    "fpr",
                    "tpr",
                    "fpr_ratio_to_overall",
                ):
                    out[metric_key("segment", col, value, metric)] = float(row[metric])
            out[metric_key("segment", col, "fpr_min_max_ratio")] = fpr_min_max_ratio(table)
    prefix = _UNSAFE.sub("_", prefix)
    return {prefix + key: float(value) for key, value in out.items()}
