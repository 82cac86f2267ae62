"""The Fraud Detection Handbook protocol: its folds, the rows and targets of a fold, and its metrics.

Split from ``training.bench.fdh`` (model search, the run, the report) because this is the part
that decides what is known when; the benchmark runs our pipeline on it.

What is known when (the book's protocol, README "Protocol"):

- **Features** are computed once over the whole history (2018-04-01 on), point in time: a row at
  ``t`` sees only earlier transactions, and fraud labels only once known (``known_at =
  occurred_at + 7 days < t``). Days before a fold's training week are history, never rows.
- **Training rows** are the fold's training week (``[train_start, train_start + 7 d)``); their
  targets are the labels known before ``train_end + 7 d`` (``TimeSplit.label_cutoffs()["train"]``),
  the moment the model goes live. With the 7-day label delay every training-week label is known
  by then, so the targets are the week's true labels, exactly as the book trains; the benchmark
  checks this. The 7 days after the training week are the label delay: neither trained on nor
  tested.
- **Test rows** are the 7 days after the delay. On test day ``k`` (0-based) the cards already
  known to be compromised are removed: every customer with a fraud in the training week, or on a
  day up to ``train_start + 7 + k - 1`` (a fraud on day ``d`` is known from day ``d + 8``;
  ``training.splits.fdh_known_compromised``). The book removes them *from the test set itself*
  (its ``get_train_test_set``), so AUC ROC and average precision are computed on the reduced
  test set too, and we do the same: the README's test size, 58,264 transactions (385 fraud), is
  the size after removal (67,080 / 568 before), and the benchmark checks it on the full data.
  Test labels are every label in the data (evaluation "now").
- **Card Precision@100** (``training.metrics.card_precision_by_day``): per test day, each
  remaining customer's maximum score and maximum label, customers ranked by score, compromised
  ones among the top 100, divided by 100; customers detected (compromised and in the top 100) on
  an earlier test day are removed as well (the book's ``remove_detected_compromised_cards``);
  then the mean over the 7 days.
- **Prequential** (the book's chapter 5): 4 folds of 7 days train, 7 delay, 7 test; the latest
  starts training on ``test_train_start`` (fold 0 = the chapter 3 split), each earlier fold 7
  days before. Metrics are reported as the mean and the population standard deviation
  (``ddof=0``, as the book's ``prequential_grid_search``) over the folds.
- **Hyperparameters** are chosen on *earlier* weeks only (``selection_folds``): 3 folds of the
  same shape whose test weeks end no later than the first training day of the earliest
  evaluated fold, so that no selection row, label or test week overlaps an evaluated fold. This
  is stricter than the book's validation folds (shifted back only ``delay + test`` = 14 days,
  whose test week is the real training week). A grid of at most 12 LightGBM configurations
  (``SEARCH_GRID``) is fitted on each selection fold with early stopping on that fold's test
  week (average precision, after the same known-compromised removal); the configuration with
  the best mean average precision wins, with ``n_estimators`` the median best iteration. The
  evaluated folds are then fitted with that fixed number of trees (no early stopping on them).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

# numpy, pandas and training.metrics are imported inside the functions: the CLI builds its parser
# from training.bench.fdh, which imports this module, and ``kycrisk --help`` must stay instant.
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from training.splits import TimeSplit

FDH_TRAIN_START = "2018-07-25"  # the book's training start (= training.splits.FDH_TRAIN_START)
PROTOCOLS = ("ch3", "prequential")
METRICS = ("auc_roc", "average_precision", "card_precision_at_100")
TOP_K = 100
N_PREQUENTIAL_FOLDS = 4
N_SELECTION_FOLDS = 3


# --- Folds -------------------------------------------------------------------------------------


def protocol_folds(protocol: str = "ch3", test_train_start=FDH_TRAIN_START) -> list[TimeSplit]:
    """The evaluated folds of a protocol, latest first.

    Args:
        protocol: ``"ch3"`` (one split: train 7 days from ``test_train_start``, 7-day delay,
            7-day test) or ``"prequential"`` (``N_PREQUENTIAL_FOLDS`` such splits, each 7 days
            before the next).
        test_train_start: first training day of the latest fold (the book: 2018-07-25).

    Returns:
        The splits (half-open UTC periods, see ``training.splits.TimeSplit``).

    Raises:
        ValueError: unknown protocol.
    """
    from training.splits import fdh_ch3_split, fdh_prequential_folds

    if protocol == "ch3":
        return [fdh_ch3_split(test_train_start)]
    if protocol == "prequential":
        return fdh_prequential_folds(test_train_start, N_PREQUENTIAL_FOLDS)
    raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")


def selection_folds(folds: Sequence[TimeSplit], n_folds: int = N_SELECTION_FOLDS) -> list[TimeSplit]:
    """Model-selection folds that end before the earliest evaluated fold starts training.

    The latest selection fold is the earliest evaluated fold moved back by its whole length
    (train + delay + test), so its test week ends exactly where that fold's training begins;
    each further selection fold is one test length earlier (the prequential shift).

    Args:
        folds: the evaluated folds.
        n_folds: number of selection folds (>= 1).

    Returns:
        ``n_folds`` splits, latest first.
    """
    if n_folds < 1:
        raise ValueError(f"n_folds must be >= 1, got {n_folds}")
    earliest = min(folds, key=lambda s: s.train_start)
    span = earliest.test_end - earliest.train_start
    step = earliest.test_end - earliest.test_start
    latest = earliest.shifted(-span)
    return [latest.shifted(-i * step) for i in range(n_folds)]


@dataclass(frozen=True)
class FoldRows:
    """Rows of one fold, as positions in the transactions table.

    Attributes:
        split: the fold's periods.
        train: positions of the training week's transactions.
        train_y: their targets (labels known before ``train_end + gap``).
        test: positions of the test week's transactions that remain after removing the cards
            known to be compromised on their day.
        test_y: their labels (every label in the data).
        test_before_removal: number of test-week transactions before the removal.
        test_fraud_before_removal: frauds among them.
        train_y_true_fraud: frauds of the training week by all labels (equals ``train_y.sum()``
            under the fdh label delay: every training label is known before the cut-off).
    """

    split: TimeSplit
    train: np.ndarray
    train_y: np.ndarray
    test: np.ndarray
    test_y: np.ndarray
    test_before_removal: int
    test_fraud_before_removal: int
    train_y_true_fraud: int

    def sizes(self) -> dict[str, int]:
        """Counts for the report: train/test transactions and frauds, removed test rows."""
        return {
            "train_transactions": int(self.train.size),
            "train_fraud": int(self.train_y.sum()),
            "test_transactions": int(self.test.size),
            "test_fraud": int(self.test_y.sum()),
            "test_transactions_before_removal": self.test_before_removal,
            "test_fraud_before_removal": self.test_fraud_before_removal,
            "test_removed_known_compromised": self.test_before_removal - int(self.test.size),
        }


def fold_rows(
    transactions: pd.DataFrame, labels: pd.DataFrame, y_true: np.ndarray, split: TimeSplit
) -> FoldRows:
    """Select a fold's training and test rows under the fdh protocol (see the module docstring).

    Args:
        transactions: contract ``transactions`` (``transaction_id``, ``occurred_at``, ``buyer_id``).
        labels: contract ``labels``.
        y_true: 0/1 per transaction from every label (``label_targets(..., cutoff=None)``).
        split: the fold.

    Returns:
        The fold's rows and targets.

    Raises:
        ValueError: the training week or the test week holds no transaction.
    """
    import numpy as np

    from training.metrics import known_compromised_mask
    from training.splits import fdh_known_compromised, label_targets, period_of

    period = period_of(transactions["occurred_at"], split).to_numpy()
    train = np.flatnonzero(period == "train")
    test_all = np.flatnonzero(period == "test")
    for name, rows in (("train", train), ("test", test_all)):
        if rows.size == 0:
            start, end = split.periods()[name]
            raise ValueError(f"the {name} period [{start}, {end}) holds no transaction")
    cutoff = split.label_cutoffs()["train"]
    train_y = label_targets(transactions.iloc[train], labels, cutoff).to_numpy()
    buyers = transactions["buyer_id"]
    known = fdh_known_compromised(buyers, transactions["occurred_at"], y_true, split)
    removed = known_compromised_mask(
        buyers.iloc[test_all].to_numpy(), transactions["occurred_at"].iloc[test_all], known
    )
    test = test_all[~removed]
    return FoldRows(
        split=split,
        train=train,
        train_y=train_y.astype(np.int8),
        test=test,
        test_y=y_true[test].astype(np.int8),
        test_before_removal=int(test_all.size),
        test_fraud_before_removal=int(y_true[test_all].sum()),
        train_y_true_fraud=int(y_true[train].sum()),
    )


# --- Metrics -----------------------------------------------------------------------------------


def evaluate(y, score, customer_ids, times, k: int = TOP_K) -> dict[str, Any]:
    """The README's three metrics on a test set from which known-compromised cards are removed.

    Args:
        y: 0/1 labels of the test transactions.
        score: model scores.
        customer_ids: card of each transaction.
        times: transaction times (days are UTC calendar days).
        k: cards investigated per day.

    Returns:
        ``auc_roc``, ``average_precision``, ``card_precision_at_{k}`` (floats) and ``per_day``: a
        list of ``{day, n_customers, n_compromised, n_detected, card_precision}``.
    """
    import pandas as pd

    from training.metrics import average_precision, card_precision_by_day, roc_auc

    table = card_precision_by_day(
        y, score, customer_ids, times, k=k, known_compromised=None, remove_detected=True
    )
    per_day = [
        {
            "day": pd.Timestamp(day).strftime("%Y-%m-%d"),
            "n_customers": int(row["n_customers"]),
            "n_compromised": int(row["n_compromised"]),
            "n_detected": int(row["n_detected"]),
            "card_precision": float(row["card_precision"]),
        }
        for day, row in table.iterrows()
    ]
    return {
        "auc_roc": roc_auc(y, score),
        "average_precision": average_precision(y, score),
        f"card_precision_at_{k}": float(table["card_precision"].mean()) if len(table) else math.nan,
        "per_day": per_day,
    }


def summarize_folds(
    per_fold: Sequence[Mapping[str, Any]], metrics: Sequence[str] = METRICS
) -> dict[str, float]:
    """Mean and population standard deviation (``ddof=0``, as the book) of each metric over folds.

    Returns:
        ``{metric: mean, metric + "_std": std}`` for every metric.
    """
    import numpy as np

    out: dict[str, float] = {}
    for m in metrics:
        values = np.array([f[m] for f in per_fold], dtype=float)
        out[m] = float(values.mean())
        out[f"{m}_std"] = float(values.std(ddof=0))
    return out


__all__ = [
    "FDH_TRAIN_START",
    "METRICS",
    "N_PREQUENTIAL_FOLDS",
    "N_SELECTION_FOLDS",
    "PROTOCOLS",
    "TOP_K",
    "FoldRows",
    "evaluate",
    "fold_rows",
    "protocol_folds",
    "selection_folds",
    "summarize_folds",
]
