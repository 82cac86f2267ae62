"""The events the online engine takes: their times, the contract's bounds they are checked against, the event log.

Nothing the engines cannot represent enters the state: times outside the contract's ranges,
amounts and prices beyond ``MAX_AMOUNT`` and non-finite derived measures are refused with a
``ValueError`` naming the column and the event before anything changes. Apart from the state and
the store because the seeding pass and the serving side (``serving.history``) use the same
checks and timestamps without holding a store.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.contracts import TABLES


def _isnull(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)


def timestamp_us(value: Any) -> int:
    """One timestamp (``pd.Timestamp``, ``datetime``, ``np.datetime64``, ISO text, or int
    microseconds) as int64 microseconds since the epoch; naive times are taken as UTC."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, pd.Timestamp):  # .value is UTC nanoseconds, naive or aware
        return value.value // 1000
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError("timestamp must not be null")
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    try:
        return ts.value // 1000  # .value is nanoseconds whatever the unit; floor like the batch engine
    except OverflowError:  # beyond pandas' nanosecond range (1677-2262): no contract time is
        raise ValueError("timestamp outside the range of pandas' nanosecond times") from None


def _time_bounds(table: str, column: str) -> tuple[int | None, int | None, tuple[str, str]]:
    low, high = TABLES[table].column(column).time_range or (None, None)

    def us(text: str | None) -> int | None:  # None: "now", read when checking
        return None if text in (None, "now") else timestamp_us(pd.Timestamp(text, tz="UTC"))

    return us(low), us(high), (str(low), str(high))


_TIME_BOUNDS = {
    key: _time_bounds(*key)
    for key in (("transactions", "occurred_at"), ("account_events", "occurred_at"), ("labels", "known_at"))
}
# Personal columns of the event streams the store keeps (pseudonymised when the store is given a function).
_PII = {c.name for t in ("transactions", "account_events") for c in TABLES[t].columns if c.pii}
_PSEUDONYM_PROBE = "kycrisk.features.online: pseudonym probe"


def _pseudonym_fingerprint(fn: Callable[[str], str] | None) -> str:
    """What meta keeps of a pseudonymiser: a hash of its pseudonym of a fixed probe ("none")."""
    if fn is None:
        return "none"
    return "sha256:" + hashlib.sha256(str(fn(_PSEUDONYM_PROBE)).encode()).hexdigest()


# Numeric transaction columns the row features read, with their contract bounds.
_NUMBER_BOUNDS = {
    c.name: c for c in TABLES["transactions"].columns if c.kind in ("float", "int") and c.max_value is not None
}


def _event_time(event: Mapping[str, Any], table: str, column: str, what: str) -> int:
    """``event[column]`` as int microseconds, checked against the contract's range of the column.

    Raises:
        ValueError: null, not a time, or outside the range; names the column and ``what`` (the
            event's id), never the value.
    """
    value = event.get(column)
    if _isnull(value):
        raise ValueError(f"{column} of {what} must not be null")
    try:
        t: int | None = timestamp_us(value)
    except (ValueError, TypeError, OverflowError):
        t = None  # out of pandas' range, or no time at all
    low, high, text = _TIME_BOUNDS[table, column]
    now = time.time_ns() // 1000
    if t is None or t < (now if low is None else low) or t >= (now if high is None else high):
        raise ValueError(f"{column} of {what} is not a time in the contract's range [{text[0]}, {text[1]})")
    return t


def _check_numbers(ids: list[str], inputs: Mapping[str, np.ndarray]) -> None:
    """Refuse amounts, prices and quantities outside the contract's bounds (bounds that keep
    every USD conversion and every sum finite); nulls are left to the derived measures' check.

    Raises:
        ValueError: naming the column and the first transaction id concerned, not the value.
    """
    for c, spec in _NUMBER_BOUNDS.items():
        x = inputs.get(c)
        if x is None:
            continue
        with np.errstate(invalid="ignore"):
            low = x > spec.min_value if spec.min_exclusive else x >= spec.min_value
            bad = np.flatnonzero(~np.isnan(x) & ~(low & (x <= spec.max_value)))
        if len(bad):
            sign = ">" if spec.min_exclusive else ">="
            raise ValueError(
                f"{c} of transaction {ids[bad[0]]} is outside the contract's bounds "
                f"({sign} {spec.min_value:g} and <= {spec.max_value:g})"
            )


def _check_derived(ids: list[str], values: Mapping[str, np.ndarray], derived: Iterable[str]) -> dict[str, np.ndarray]:
    """The derived measures (e.g. ``amount_usd``) as float arrays, refused when null or not
    finite: ``_exact`` turns only finite floats into integers.

    Raises:
        ValueError: naming the measure and the first transaction id concerned.
    """
    out = {}
    for c in derived:
        col = np.asarray(values[c], dtype=float)
        bad = np.flatnonzero(~np.isfinite(col))
        if len(bad):
            state = "null" if np.isnan(col[bad[0]]) else "not finite"
            raise ValueError(f"numeric measure {c} is {state} for transaction {ids[bad[0]]}")
        out[c] = col
    return out


def _floats(values: np.ndarray, column: str, ids: list[str]) -> np.ndarray:
    """An object array of numbers (None for null) as floats; text that is no number is refused."""
    try:
        return values.astype(float)
    except (TypeError, ValueError):
        for i, v in enumerate(values):
            try:
                float(v if v is not None else math.nan)
            except (TypeError, ValueError):
                raise ValueError(f"{column} of transaction {ids[i]} is not a number") from None
        raise


def _records(frame: pd.DataFrame | None) -> Iterator[dict[str, Any]]:
    if frame is None or not len(frame):
        return iter(())
    cols = list(frame.columns)
    return (dict(zip(cols, row, strict=True)) for row in frame.itertuples(index=False, name=None))


def event_log(tables: Mapping[str, pd.DataFrame]) -> list[tuple[str, dict[str, Any]]]:
    """Merge transactions, account events and labels into one log in time order.

    Transactions and account events come at their ``occurred_at``, labels at their ``known_at``.
    Order among equal times does not matter to the features (an event at ``t`` is never seen at
    ``t``); it is labels, then account events, then transactions, then input order.

    Returns:
        ``(kind, record)`` pairs for ``OnlineFeatureStore.replay``.
    """
    items: list[tuple[int, int, int, str, dict[str, Any]]] = []
    n = 0
    for kind, name, col, rank in (
        ("label", "labels", "known_at", 0),
        ("account_event", "account_events", "occurred_at", 1),
        ("transaction", "transactions", "occurred_at", 2),
    ):
        for rec in _records(tables.get(name)):
            items.append((timestamp_us(rec[col]), rank, n, kind, rec))
            n += 1
    items.sort(key=lambda x: x[:3])
    return [(kind, rec) for *_, kind, rec in items]
