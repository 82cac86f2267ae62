"""Customer snapshots of the risk-tier model: the rows ``(customer_id, as_of)``, their inputs and targets, point in time.

Split from the model (``training.risk``) because assembly is its own job: it reads the contract
tables through ``features.customer`` and knows nothing of the Pipeline, the policy or MLflow.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.customer import (
    TIME_COLUMN,
    customer_behaviour,
    customer_frame,
    screen_snapshots,
    snapshot_times,
)
from features.screening import WatchlistScreener
from training.config import Config, as_config
from training.customer_targets import customer_patterns, customer_targets

RISK_FEATURE_SET = "risk_v1"
RISK_FEATURE_SET_VERSION = "1.0.0"
RISK_FEATURE_SET_ID = f"{RISK_FEATURE_SET}@{RISK_FEATURE_SET_VERSION}"


@dataclass
class RiskData:
    """The assembled snapshot dataset plus what targets and evaluation need beside it.

    Attributes:
        frame: model input, one row per snapshot (``features.customer.customer_frame`` columns).
        customers, transactions, labels: the tables targets are computed from (not copied).
        patterns: the generator's ground truth per snapshot (``customer_patterns``: ``pattern``,
            ``stage``; index of ``frame``), or ``None`` for real data.
        period: ``(start, end)`` of the snapshot period (UTC).
        every: spacing of the regular snapshots (e.g. ``"30D"``).
        feature_set, feature_set_id: ``RISK_FEATURE_SET`` and ``RISK_FEATURE_SET_ID``.
        timings: seconds per assembly step.
    """

    frame: pd.DataFrame
    customers: pd.DataFrame
    transactions: pd.DataFrame
    labels: pd.DataFrame
    patterns: pd.DataFrame | None
    period: tuple[pd.Timestamp, pd.Timestamp]
    every: str
    feature_set: str = RISK_FEATURE_SET
    feature_set_id: str = RISK_FEATURE_SET_ID
    timings: dict[str, float] = field(default_factory=dict)


def _utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def data_period(tables: dict[str, pd.DataFrame]) -> tuple[pd.Timestamp, pd.Timestamp]:
    """``[first UTC day, day after the last)`` of the transactions: the default snapshot period."""
    times = pd.to_datetime(tables["transactions"]["occurred_at"], utc=True)
    if times.empty:
        raise ValueError("no transactions: the snapshot period is undefined")
    return times.min().floor("D"), times.max().floor("D") + pd.Timedelta(days=1)


def assemble_customers(
    tables: dict[str, pd.DataFrame],
    every: str | pd.Timedelta = "30D",
    screener: WatchlistScreener | None = None,
    *,
    start: Any = None,
    end: Any = None,
) -> RiskData:
    """Build the risk model's input for every customer snapshot of the data's period, point in time.

    Steps (``features.customer``): ``snapshot_times`` over ``[start, end)`` (default: the
    transactions' days) → ``customer_behaviour`` before each ``as_of`` → ``screen_snapshots``
    against the watchlist as listed at ``as_of`` → ``customer_frame`` → ``customer_patterns``
    (only when the tables carry the generator's ``patterns``).

    Args:
        tables: validated contract tables (``training.flow.load_tables``).
        every: spacing of the regular snapshots.
        screener: a fitted watchlist screener (fitted on ``tables["watchlist"]`` when None and
            the watchlist is not empty; without either the screening columns stay empty).
        start, end: explicit snapshot period (the promotion gate re-creates a model's snapshots
            from its metadata); default ``data_period(tables)``.

    Returns:
        ``RiskData`` whose ``frame`` has the columns of ``features.customer.customer_frame``.
    """
    timings: dict[str, float] = {}
    default_start, default_end = data_period(tables) if start is None or end is None else (None, None)
    start = _utc(start) if start is not None else default_start
    end = _utc(end) if end is not None else default_end
    every = str(every) if not isinstance(every, pd.Timedelta) else f"{every // pd.Timedelta(seconds=1)}s"
    customers = tables["customers"]
    labels = tables.get("labels")
    if labels is None:
        labels = pd.DataFrame(
            {
                "entity_type": [],
                "entity_id": [],
                "label": [],
                "known_at": pd.Series([], dtype="datetime64[us, UTC]"),
            }
        )
    events = tables.get("account_events")
    if events is None:
        events = pd.DataFrame(
            {
                "customer_id": [],
                "occurred_at": pd.Series([], dtype="datetime64[us, UTC]"),
                "event_type": [],
                "device_id": [],
            }
        )

    started = time.perf_counter()
    snapshots = snapshot_times(customers, start, end, every=every)
    timings["snapshots_s"] = time.perf_counter() - started
    started = time.perf_counter()
    behaviour = customer_behaviour(snapshots, tables["transactions"], events, labels, customers=customers)
    timings["behaviour_s"] = time.perf_counter() - started
    started = time.perf_counter()
    watchlist = tables.get("watchlist")
    if screener is None and watchlist is not None and len(watchlist):
        screener = WatchlistScreener().fit(watchlist)
    screening = screen_snapshots(customers, snapshots, screener) if screener is not None else None
    timings["screening_s"] = time.perf_counter() - started
    frame = customer_frame(customers, snapshots, behaviour, screening)
    patterns = tables.get("patterns")
    truth = None
    if patterns is not None and len(patterns):
        truth = customer_patterns(snapshots, patterns).reset_index(drop=True)
    return RiskData(
        frame=frame,
        customers=customers,
        transactions=tables["transactions"],
        labels=labels,
        patterns=truth,
        period=(start, end),
        every=every,
        timings=timings,
    )


def targets(
    data: RiskData, rows: pd.DataFrame, cutoff: Any, config: Config | Mapping[str, Any] | None = None
) -> np.ndarray:
    """Bad-customer target of some snapshot rows from the labels known before ``cutoff``.

    Args:
        data: the assembled dataset (its customers, transactions and labels).
        rows: snapshot rows (``customer_id``, ``as_of``).
        cutoff: a timestamp, one per row (e.g. ``rows["as_of"]``: "already known bad at the
            snapshot"), or ``None`` for every label (evaluation).
        config: the training configuration; ``[risk] seller_min_bad`` / ``seller_min_share``
            set the seller rule of ``customer_targets`` (defaults: ``training.config.RiskConfig``).

    Returns:
        int8 array, one value per row.
    """
    settings = as_config(config).risk
    y = customer_targets(
        rows[["customer_id", TIME_COLUMN]],
        data.customers,
        data.transactions,
        data.labels,
        cutoff,
        seller_min_bad=settings.seller_min_bad,
        seller_min_share=settings.seller_min_share,
    )
    return y.to_numpy()
