"""Online engine: the same feature definitions for one new event, from state kept in sqlite.

``OnlineFeatureStore`` keeps, per aggregation group (entity, source, event type) and entity
key, the entity's recent events (within the longest finite window plus the allowed lateness),
in time order, with exact prefix sums: every float is turned into an exact integer (a multiple
of 2**-1074) so window sums, means and variances are exact until the final, correctly rounded
division. Windows are found by bisection on the event times, so a query may come at any time
the state still covers and the answer never depends on the order queries arrive in. Older
events are pruned lazily; what "all"-history features need of them is folded into per-entity
bases (count, sums, max/min, last time), and first occurrences of values (distinct counts over
all history) are kept for good. Distinct counts over finite windows and fraud counts use the
same "segments of query time" formulation as the batch engine, on sorted lists. An event older
than the newest of its log (within the allowed lateness) is inserted in place: the prefix sums
after it shift by its value and its window merges into its value's runs, so a late event costs
an append plus the few events after it.

Nothing the engines cannot represent enters the state: times outside the contract's ranges,
amounts and prices beyond ``MAX_AMOUNT`` and non-finite derived measures are refused with a
``ValueError`` naming the column and the event before anything changes; a stored row that still
cannot be applied when memory is rebuilt is moved to a ``quarantine`` table and logged, and the
store starts without it. With ``pseudonymise`` the personal columns (device ids, IPs) are kept,
keyed and compared only as pseudonyms.

State lives in memory (dicts and lists keyed by entity) and is written through to sqlite (WAL
mode) in one sqlite transaction per applied event: a failure leaves both sqlite and memory as
before the event, and a restart rebuilds the same memory state from sqlite. Pruning runs as its
own transaction. With ``synchronous=NORMAL`` a committed event survives a crash of the process;
a power loss may lose the last few committed events, but never half of one.

Seeding an empty store from a whole history (``bulk_apply``) skips the per-event work: row
features for all transactions at once, each entity log built once from its events (folding into
bases exactly what the hourly pruning would have folded), and every sqlite row written in one
transaction at the end. The result is the state the one-by-one path leaves, row for row; it is
all or nothing (a failure leaves the store empty), and it refuses a store that holds state.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import gc
import hashlib
import heapq
import itertools
import json
import logging
import math
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contracts import BAD_TRANSACTION_LABELS, TABLES
from features.definitions import (
    ENTITIES,
    ROW_FEATURES,
    US_PER_HOUR,
    Aggregation,
    FeatureSet,
    Reference,
    compute_row_features,
    get_feature_set,
    parse_duration,
    row_feature_inputs,
)

_EXP = 1074  # every finite float64 is an integer multiple of 2**-1074
_NAN = float("nan")
_INF = float("inf")
_SCHEMA_VERSION = "1"
_logger = logging.getLogger(__name__)


def _exact(x: float) -> int:
    """``x * 2**1074`` as an exact integer."""
    num, den = x.as_integer_ratio()
    return num << (_EXP + 1 - den.bit_length())


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"cannot store {type(v).__name__} {v!r} in the event log")


def _dumps(v: Any) -> str:
    return json.dumps(v, default=_json_default)


def _json_object(text: Any) -> dict[str, Any]:
    """A stored JSON object (payload, base), refused as ``ValueError`` when it is none."""
    v = json.loads(text)
    if not isinstance(v, dict):
        raise ValueError("not a JSON object")
    return v


def _entity(text: Any) -> tuple:
    """A stored entity key (a JSON list) as the tuple the logs are keyed by."""
    v = json.loads(text)
    if not isinstance(v, list):
        raise ValueError("not a JSON list")
    key = tuple(v)
    hash(key)
    return key


def _meta_time(text: str | None) -> int | None:
    """A time kept in ``meta`` (watermark, pruned_at); None when absent, unreadable or out of range."""
    try:
        t = int(text) if text is not None else None
    except ValueError:
        return None
    low, high, _ = _TIME_BOUNDS["transactions", "occurred_at"]
    return t if t is not None and (low or 0) <= t < (high or time.time_ns() // 1000) else None


def _sqlite_text(v: Any) -> Any:
    """A value of a sqlite row as JSON can keep it (bytes as text)."""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else v


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


# --- Input bounds (features.contracts): nothing the engines cannot represent enters the state ------


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
                float(v if v is not None else _NAN)
            except (TypeError, ValueError):
                raise ValueError(f"{column} of transaction {ids[i]} is not a number") from None
        raise


# --- Per-entity state ----------------------------------------------------------------------------


class _Num:
    """Values of one numeric measure with exact prefix sums (index 0 holds the pruned base)."""

    __slots__ = ("vals", "p1", "p2", "pmax", "pmin")

    def __init__(self, base: Mapping[str, Any] | None, squares: bool, extremes: bool) -> None:
        b = base or {}
        self.vals: list[float] = []
        self.p1 = [int(b.get("p1", 0))]
        self.p2 = [int(b.get("p2", 0))] if squares else None
        self.pmax = [float(b.get("pmax", -_INF))] if extremes else None
        self.pmin = [float(b.get("pmin", _INF))] if extremes else None

    def append(self, x: float) -> None:
        xi = _exact(x)
        self.vals.append(x)
        self.p1.append(self.p1[-1] + xi)
        if self.p2 is not None:
            self.p2.append(self.p2[-1] + xi * xi)
        if self.pmax is not None:
            self.pmax.append(max(self.pmax[-1], x))
            self.pmin.append(min(self.pmin[-1], x))

    def insert(self, pos: int, x: float) -> None:
        """``x`` as the value at ``pos``: every prefix after it grows by ``x``."""
        xi = _exact(x)
        self.vals.insert(pos, x)
        p1 = self.p1
        p1[pos + 1 :] = [p + xi for p in p1[pos:]]
        if self.p2 is not None:
            x2 = xi * xi
            p2 = self.p2
            p2[pos + 1 :] = [p + x2 for p in p2[pos:]]
        if self.pmax is not None:
            self.pmax[pos + 1 :] = [max(m, x) for m in self.pmax[pos:]]
            self.pmin[pos + 1 :] = [min(m, x) for m in self.pmin[pos:]]

    def base(self, k: int) -> dict[str, Any]:
        out: dict[str, Any] = {"p1": str(self.p1[k])}
        if self.p2 is not None:
            out["p2"] = str(self.p2[k])
        if self.pmax is not None:
            out["pmax"], out["pmin"] = self.pmax[k], self.pmin[k]
        return out

    def prune(self, k: int) -> None:
        del self.vals[:k]
        del self.p1[:k]
        if self.p2 is not None:
            del self.p2[:k]
        if self.pmax is not None:
            del self.pmax[:k]
            del self.pmin[:k]


class _Segments:
    """Where each value is inside a finite window: count(t) = #{starts <= t} - #{ends <= t}.

    A value's window intervals ``[e + a, e + b)`` merge into runs (touching ones too, which
    counts the same); ``runs`` holds each value's live runs as a flat sorted list ``[s0, e0, s1,
    e1, ...]``, so that an event may arrive in any order: in time order only the value's last
    run can grow, a late event merges with whichever runs it overlaps. ``ends`` are the live
    runs' ends exactly; ``starts`` may differ from the live runs' starts at or below ``floor``
    (the latest prune's earliest query), where ``prune`` keeps starts of dropped runs in place
    of older starts of kept ones: every start <= ``floor`` counts the same for every query time
    the state answers (t >= ``floor``). Removing a run whose start is <= ``floor`` therefore
    removes the smallest start, which is then <= ``floor`` too (the lists hold as many starts
    <= ``floor`` as the live runs have).
    """

    __slots__ = ("starts", "ends", "runs", "floor")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.runs: dict[Any, list[int]] = {}
        self.floor: int | None = None

    def add(self, value: Any, start: int, end: int) -> None:
        rs = self.runs.get(value)
        if rs is None:
            self.runs[value] = [start, end]
        elif start >= rs[-2]:  # in time order: only the last run can be reached
            current = rs[-1]
            if start <= current:
                if end > current:  # the value stays in the window longer
                    del self.ends[bisect.bisect_left(self.ends, current)]
                    bisect.insort(self.ends, end)
                    rs[-1] = end
                return
            rs += (start, end)
        else:
            self._merge(rs, start, end)
            return
        bisect.insort(self.starts, start)
        bisect.insort(self.ends, end)

    def _merge(self, rs: list[int], start: int, end: int) -> None:
        """A late interval: replace the runs it overlaps or touches by their union with it."""
        n = len(rs)
        i = 0
        while i < n and rs[i + 1] < start:
            i += 2
        j = i
        while j < n and rs[j] <= end:
            j += 2
        if j > i:
            start, end = min(start, rs[i]), max(end, rs[j - 1])
            for k in range(i, j, 2):
                s = rs[k]
                if self.floor is not None and s <= self.floor:
                    del self.starts[0]
                else:
                    del self.starts[bisect.bisect_left(self.starts, s)]
                del self.ends[bisect.bisect_left(self.ends, rs[k + 1])]
        rs[i:j] = (start, end)
        bisect.insort(self.starts, start)
        bisect.insort(self.ends, end)

    def count(self, t: int) -> int:
        return bisect.bisect_right(self.starts, t) - bisect.bisect_right(self.ends, t)

    def prune(self, before: int) -> None:
        """Drop segments over before ``before``: the earliest query time the state answers."""
        k = bisect.bisect_right(self.ends, before)
        if k:
            # Any k starts <= before are interchangeable for every t >= before.
            del self.ends[:k]
            del self.starts[:k]
            runs = {}
            for v, rs in self.runs.items():
                if rs[-1] > before:
                    if rs[1] <= before:
                        i = 2
                        while rs[i + 1] <= before:
                            i += 2
                        del rs[:i]
                    runs[v] = rs
            self.runs = runs
        self.floor = before if self.floor is None else max(self.floor, before)


class _FirstSeen:
    """First occurrence time of every value ever seen (distinct counts over all history)."""

    __slots__ = ("first", "times")

    def __init__(self) -> None:
        self.first: dict[Any, int] = {}
        self.times: list[int] = []

    def is_new(self, value: Any, t: int) -> bool:
        old = self.first.get(value)
        return old is None or t < old

    def add(self, value: Any, t: int) -> None:
        old = self.first.get(value)
        if old is not None:
            if t >= old:
                return
            del self.times[bisect.bisect_left(self.times, old)]
        self.first[value] = t
        bisect.insort(self.times, t)


class _Fraud:
    """Bad transactions of an entity as segments of query time [max(e + a, known + 1), e + b)."""

    __slots__ = ("starts", "ends", "entries")

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.entries: dict[str, tuple[int, int]] = {}

    def set(self, txn_id: str, start: int, end: int) -> None:
        self.remove(txn_id)
        if start < end:
            bisect.insort(self.starts, start)
            bisect.insort(self.ends, end)
            self.entries[txn_id] = (start, end)

    def remove(self, txn_id: str) -> None:
        old = self.entries.pop(txn_id, None)
        if old is not None:
            del self.starts[bisect.bisect_left(self.starts, old[0])]
            del self.ends[bisect.bisect_left(self.ends, old[1])]

    def count(self, t: int) -> int:
        return bisect.bisect_right(self.starts, t) - bisect.bisect_right(self.ends, t)


class _Group:
    """Compiled definitions of one aggregation group (entity, source, event type)."""

    def __init__(self, entity: str, source: str, event_type: str | None, aggs: list[Aggregation]) -> None:
        self.gid = f"{entity}|{source}|{event_type or ''}"
        self.source, self.event_type, self.aggs = source, event_type, aggs
        self.query_cols = ENTITIES[entity]["transactions"]
        self.source_cols = ENTITIES[entity][source]
        self.numeric: dict[str, tuple[bool, bool]] = {}  # column -> (squares, all-history extremes)
        self.segments: list[tuple[str, int, int]] = []  # finite nunique: (column, a, b)
        self.first_seen: list[str] = []  # all-history nunique columns
        self.fraud: list[tuple[int, int]] = []
        for agg in aggs:
            a, b = agg.offsets()
            col = agg.column
            if agg.op in ("sum", "mean", "ratio", "max", "min", "std"):
                assert col is not None
                sq, ext = self.numeric.get(col, (False, False))
                self.numeric[col] = (sq or agg.op == "std", ext or (agg.op in ("max", "min") and b is None))
            elif agg.op == "nunique":
                assert col is not None
                if b is None:
                    if col not in self.first_seen:
                        self.first_seen.append(col)
                elif (col, a, b) not in self.segments:
                    self.segments.append((col, a, b))
            elif agg.op in ("fraud_count", "fraud_rate"):
                assert b is not None
                if (a, b) not in self.fraud:
                    self.fraud.append((a, b))
        self.categorical = sorted({c for c, _, _ in self.segments} | set(self.first_seen))
        # How far back a query can reach: pruned events must be out of every window (finite
        # windows end at e + b; "all" windows with a delay start at e + a).
        self.reach = max((max(agg.offsets()[0], agg.offsets()[1] or 0) for agg in aggs), default=0)

    def new_log(self, base: Mapping[str, Any] | None) -> _Log:
        return _Log(self, base)


class _Log:
    """Retained events of one entity of one group, oldest first."""

    __slots__ = ("group", "times", "ids", "n0", "last0", "num", "cat", "seg", "first", "fraud")

    def __init__(self, group: _Group, base: Mapping[str, Any] | None) -> None:
        b = base or {}
        self.group = group
        self.times: list[int] = []
        self.ids: list[str] = []
        self.n0 = int(b.get("n0", 0))
        self.last0: int | None = b.get("last0")
        nums = b.get("num", {})
        self.num = {c: _Num(nums.get(c), sq, ext) for c, (sq, ext) in group.numeric.items()}
        self.cat: dict[str, list[Any]] = {c: [] for c, _, _ in group.segments}
        self.seg = {key: _Segments() for key in group.segments}
        self.first = {c: _FirstSeen() for c in group.first_seen}
        self.fraud = {key: _Fraud() for key in group.fraud}

    def append(self, t: int, event_id: str, nums: Mapping[str, float], cats: Mapping[str, Any]) -> None:
        times = self.times
        if times and t < times[-1]:
            # A late event goes after the retained events at or before its time; the prefix sums
            # of the events after it shift by its value (cost: the few later events, not the log).
            pos = bisect.bisect_right(times, t)
            times.insert(pos, t)
            self.ids.insert(pos, event_id)
            for c, n in self.num.items():
                n.insert(pos, nums[c])
            for c, values in self.cat.items():
                values.insert(pos, cats.get(c))
        else:
            times.append(t)
            self.ids.append(event_id)
            for c, n in self.num.items():
                n.append(nums[c])
            for c, values in self.cat.items():
                values.append(cats.get(c))
        # Segments, first occurrences and fraud sets take events in any order.
        for (c, a, b), seg in self.seg.items():
            v = cats.get(c)
            if not _isnull(v):
                seg.add(v, t + a, t + b)
        for c, fs in self.first.items():
            v = cats.get(c)
            if not _isnull(v):
                fs.add(v, t)

    def base_after(self, k: int) -> dict[str, Any]:
        """The base (what "all" windows need) once the ``k`` oldest events are pruned."""
        last0 = self.times[k - 1] if k else self.last0
        return {"n0": self.n0 + k, "last0": last0, "num": {c: n.base(k) for c, n in self.num.items()}}

    def prune(self, k: int, before: int) -> None:
        if k:
            self.last0 = self.times[k - 1]
            self.n0 += k
            for txn_id in self.ids[:k]:
                for fr in self.fraud.values():
                    fr.remove(txn_id)
            del self.times[:k]
            del self.ids[:k]
            for n in self.num.values():
                n.prune(k)
            for values in self.cat.values():
                del values[:k]
        for seg in self.seg.values():
            seg.prune(before)


# --- Evaluation of one aggregation for one query -------------------------------------------------


def _evaluator(agg: Aggregation) -> Callable[[_Log | None, int, float], float]:
    """A function (log, t, current value) -> feature value implementing ``agg``."""
    a, b = agg.offsets()
    op, col, cur = agg.op, agg.column, agg.include_current

    def window(log: _Log, t: int) -> tuple[int, int]:
        hi = bisect.bisect_right(log.times, t - a)
        lo = 0 if b is None else bisect.bisect_right(log.times, t - b)
        return lo, hi

    if op == "count":

        def count(log: _Log | None, t: int, x: float) -> float:
            n = 0
            if log is not None:
                lo, hi = window(log, t)
                n = hi - lo + (log.n0 if b is None else 0)
            return float(n + (1 if cur else 0))

        return count

    if op in ("sum", "mean", "ratio", "std"):

        def moments(log: _Log | None, t: int, x: float) -> tuple[int, int, int]:
            n = s1 = s2 = 0
            if log is not None:
                lo, hi = window(log, t)
                num = log.num[col]
                if b is None:
                    n, s1 = log.n0 + hi, num.p1[hi]
                    s2 = num.p2[hi] if num.p2 is not None else 0
                else:
                    n, s1 = hi - lo, num.p1[hi] - num.p1[lo]
                    s2 = num.p2[hi] - num.p2[lo] if num.p2 is not None else 0
            if cur:
                xi = _exact(x)
                n, s1, s2 = n + 1, s1 + xi, s2 + xi * xi
            return n, s1, s2

        if op == "sum":
            return lambda log, t, x: moments(log, t, x)[1] / (1 << _EXP)
        if op == "mean":

            def mean(log: _Log | None, t: int, x: float) -> float:
                n, s1, _ = moments(log, t, x)
                return s1 / (n << _EXP) if n else _NAN

            return mean
        if op == "ratio":

            def ratio(log: _Log | None, t: int, x: float) -> float:
                n, s1, _ = moments(log, t, x)
                if not n or not s1:
                    return _NAN
                return x / (s1 / (n << _EXP))

            return ratio

        def std(log: _Log | None, t: int, x: float) -> float:
            n, s1, s2 = moments(log, t, x)
            if n < 2:
                return _NAN
            return math.sqrt((n * s2 - s1 * s1) / ((n * (n - 1)) << (2 * _EXP)))

        return std

    if op in ("max", "min"):
        pick = max if op == "max" else min

        def extreme(log: _Log | None, t: int, x: float) -> float:
            v = _NAN
            if log is not None:
                lo, hi = window(log, t)
                num = log.num[col]
                if b is None:
                    p = (num.pmax if op == "max" else num.pmin)[hi]
                    v = p if math.isfinite(p) else _NAN
                elif hi > lo:
                    v = pick(num.vals[lo:hi])
            if cur:
                v = x if v != v else pick(v, x)
            return v

        return extreme

    if op == "nunique":
        if b is None:

            def nunique_all(log: _Log | None, t: int, x: float) -> float:
                return 0.0 if log is None else float(bisect.bisect_right(log.first[col].times, t - a))

            return nunique_all
        key = (col, a, b)
        return lambda log, t, x: 0.0 if log is None else float(log.seg[key].count(t))

    if op in ("fraud_count", "fraud_rate"):
        fkey = (a, b)

        def fraud(log: _Log | None, t: int, x: float) -> float:
            bad = 0 if log is None else log.fraud[fkey].count(t)
            if op == "fraud_count":
                return float(bad)
            if log is None:
                return _NAN
            lo, hi = window(log, t)
            return bad / (hi - lo) if hi > lo else _NAN

        return fraud

    if op == "since_last":

        def since_last(log: _Log | None, t: int, x: float) -> float:
            if log is None:
                return _NAN
            lo, hi = window(log, t)
            if hi > lo:
                return (t - log.times[hi - 1]) / US_PER_HOUR
            if b is None and log.last0 is not None:
                return (t - log.last0) / US_PER_HOUR
            return _NAN

        return since_last
    raise AssertionError(op)


# --- The store -----------------------------------------------------------------------------------

_DDL = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events(
    seq INTEGER PRIMARY KEY, kind TEXT NOT NULL, event_id TEXT NOT NULL,
    occurred_at INTEGER NOT NULL, payload TEXT NOT NULL, UNIQUE(kind, event_id));
CREATE INDEX IF NOT EXISTS events_time ON events(occurred_at);
CREATE TABLE IF NOT EXISTS bad_labels(transaction_id TEXT PRIMARY KEY, known_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bases(gid TEXT, entity TEXT, state TEXT NOT NULL, PRIMARY KEY(gid, entity));
CREATE TABLE IF NOT EXISTS first_seen(
    gid TEXT, entity TEXT, col TEXT, value TEXT, t INTEGER NOT NULL, PRIMARY KEY(gid, entity, col, value));
CREATE TABLE IF NOT EXISTS quarantine(
    id INTEGER PRIMARY KEY, source TEXT NOT NULL, event_id TEXT, row TEXT NOT NULL, reason TEXT NOT NULL,
    quarantined_at INTEGER NOT NULL);
"""
# What _load rebuilds (and puts back when it fails).
_MEMORY = ("_logs", "_txns", "_acct", "_bad", "_heap", "_watermark", "_pruned_at", "_currency", "_seq")


@dataclasses.dataclass
class StagedWrite:
    """The sqlite rows of events already applied to a store's memory (``OnlineFeatureStore.persist``)."""

    events: list[tuple] = dataclasses.field(default_factory=list)
    first_seen: list[tuple] = dataclasses.field(default_factory=list)
    watermark: int | None = None
    currency: str | None = None
    labels: list[tuple[str, int]] = dataclasses.field(default_factory=list)


class LateEventError(ValueError):
    """An event older than the allowed lateness; ``index`` is its position in the checked sequence."""

    def __init__(self, index: int, message: str):
        super().__init__(message)
        self.index = index


class OnlineFeatureStore:
    """Features of one new transaction at a time, from state kept in memory and in sqlite.

    Args:
        path: sqlite database file (created when missing), or ``":memory:"`` for tests.
        feature_set: registered name or ``FeatureSet``. A database remembers the set (name,
            version and definition fingerprint) it was built for and refuses another.
        fx_rates: ``currency, usd_per_unit`` table or mapping (default: committed reference).
        goods_categories: ``category, reference_unit_price_usd`` table or mapping (default:
            committed reference).
        allowed_lateness: how far (``"1d"``) behind the newest applied event a transaction or
            account event may still be applied or scored; older ones raise ``ValueError``. The
            state keeps events for the longest window plus this lateness.
        prune_every: prune old events each time event time advances this much (``"1h"``).
        pseudonymise: applied to every value of the personal columns (``pii`` in
            ``features.contracts``: ``device_id``, ``ip_address``) of transactions and account
            events before it is keyed, stored or compared, on every path, queries included; e.g.
            a keyed hash (HMAC), which keeps equality and so every feature. A database remembers
            a fingerprint of the function (its pseudonym of a fixed probe) and refuses another:
            keys made with another salt would silently match nothing.

    Event mappings use the contract column names (``transactions``, ``account_events``,
    ``labels``); ``occurred_at``/``known_at`` may be timestamps, ISO text or int microseconds.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        feature_set: str | FeatureSet = "fraud_v1",
        *,
        fx_rates: Any = None,
        goods_categories: Any = None,
        allowed_lateness: str = "1d",
        prune_every: str = "1h",
        pseudonymise: Callable[[str], str] | None = None,
    ) -> None:
        self.path = str(path)
        self.pseudonymise = pseudonymise
        self.feature_set = get_feature_set(feature_set)
        self.reference = Reference(fx_rates, goods_categories)
        self.lateness_us = parse_duration(allowed_lateness)
        self.prune_every_us = parse_duration(prune_every)
        fs = self.feature_set
        self._names = list(fs.feature_names)
        grouped: dict[tuple, list[Aggregation]] = {}
        for agg in fs.aggregations:
            grouped.setdefault(agg.group, []).append(agg)
        self._groups = [_Group(e, s, et, aggs) for (e, s, et), aggs in grouped.items()]
        self._txn_groups = [g for g in self._groups if g.source == "transactions"]
        self._ae_groups = [g for g in self._groups if g.source == "account_events"]
        self._fraud_groups = [g for g in self._txn_groups if g.fraud]
        self._evaluators = [
            (g, [(agg.name, _evaluator(agg), agg.column, agg.fill) for agg in g.aggs]) for g in self._groups
        ]
        measure_cols = {a.column for a in fs.aggregations if a.source == "transactions" and a.column}
        self._derived = sorted(c for c in measure_cols if c in ROW_FEATURES)
        self._row_names = list(dict.fromkeys([*fs.row_features, *self._derived]))
        self._row_inputs = sorted(row_feature_inputs(self._row_names) - {"occurred_at_us"})
        self._txn_cols = sorted(
            {c for g in self._txn_groups for c in g.source_cols} | {c for g in self._groups for c in g.query_cols}
            | {c for g in self._txn_groups for c in g.categorical}
        )  # fmt: skip
        self._ae_cols = sorted({c for g in self._ae_groups for c in (*g.source_cols, *g.categorical)})
        self._pii_txn = [c for c in self._txn_cols if c in _PII]
        self._pii_ae = [c for c in self._ae_cols if c in _PII]
        self._reach = max((g.reach for g in self._groups), default=0)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_DDL)
        self._check_meta()
        self._load()

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database (the state is already on disk)."""
        self._conn.close()

    def __enter__(self) -> OnlineFeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_meta(self) -> None:
        fs = self.feature_set
        meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        want = {"schema": _SCHEMA_VERSION, "feature_set": fs.id, "fingerprint": fs.fingerprint}
        pseudonym = _pseudonym_fingerprint(self.pseudonymise)
        if meta and meta.get("pseudonym", "none") != pseudonym:  # states from before it hold raw values
            held = "raw" if meta.get("pseudonym", "none") == "none" else "pseudonymised"
            given = "without a" if self.pseudonymise is None else "with a" if held == "raw" else "with another"
            raise ValueError(
                f"{self.path} holds {held} personal values, opened {given} pseudonymiser: "
                "its keys would match nothing (use the function, and salt, it was built with)"
            )
        want["pseudonym"] = pseudonym
        if not meta:
            self._transaction(
                lambda: self._conn.executemany("INSERT INTO meta VALUES (?, ?)", list(want.items()))
            )
            return
        for key, value in want.items():
            if key != "pseudonym" and meta.get(key) != value:
                raise ValueError(
                    f"{self.path} holds state for {meta.get('feature_set')} "
                    f"({key}={meta.get(key)!r}), not {fs.id} ({key}={value!r})"
                )

    def _load(self) -> None:
        """(Re)build the in-memory state from sqlite, all or nothing.

        A row that cannot be applied (not JSON, a measure missing or not finite, a time out of
        the contract's range, any error while applying it) is moved to ``quarantine`` with its
        reason, logged at WARNING (table, event id, reason: never a value), and left out; the
        rest of the state loads exactly as if the row had never been written. A row that failed
        half way into memory makes the rebuild start again without it, so no earlier event can
        be lost with it. If the rebuild fails for another reason (sqlite), the memory state
        from before the call is kept and the error raised.
        """
        saved = {name: getattr(self, name) for name in _MEMORY if hasattr(self, name)}
        moved: list[tuple] = []  # rows quarantined by earlier passes of this call
        try:
            while not self._rebuild(moved):
                pass  # a row failed half way into memory: quarantined, start again without it
        except BaseException:
            for name in _MEMORY:
                if name in saved:
                    setattr(self, name, saved[name])
            raise

    def _rebuild(self, moved: list[tuple]) -> bool:
        """One pass of ``_load``; False when a row failed while applied (memory is then partial)."""
        self._logs: dict[str, dict[tuple, _Log]] = {g.gid: {} for g in self._groups}
        self._txns: dict[str, tuple[int, list[tuple[_Group, tuple]]]] = {}
        self._acct: set[str] = set()
        self._bad: dict[str, int] = {}
        # (time, seq, kind, id, (group id, entity key) of the logs holding it), oldest first
        self._heap: list[tuple[int, int, str, str, tuple]] = []
        bad: list[tuple[str, int, str | None, tuple, str]] = []  # (table, rowid, event id, row, reason)
        meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        watermark, pruned_at = _meta_time(meta.get("watermark")), _meta_time(meta.get("pruned_at"))
        self._pruned_at: int | None = pruned_at
        self._currency: str | None = meta.get("currency")
        by_gid = {g.gid: g for g in self._groups}
        for rowid, *row in self._conn.execute("SELECT rowid, gid, entity, state FROM bases"):
            gid, entity, state = row
            if gid in by_gid:
                try:
                    log = by_gid[gid].new_log(_json_object(state))
                    if not isinstance(log.last0, (int, type(None))):
                        raise TypeError("last0")
                    self._logs[gid][_entity(entity)] = log
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    bad.append(("bases", rowid, None, tuple(row), f"unreadable base ({type(exc).__name__})"))
        for rowid, txn_id, known in self._conn.execute("SELECT rowid, transaction_id, known_at FROM bad_labels"):
            if isinstance(known, int):
                self._bad[txn_id] = known
            else:
                bad.append(("bad_labels", rowid, str(txn_id), (txn_id, known), "known_at is not an integer time"))
        rows = self._conn.execute(
            "SELECT seq, kind, event_id, occurred_at, payload FROM events ORDER BY occurred_at, seq"
        )
        newest = None
        failed = None
        for row in rows:
            seq, kind, event_id, t, payload = row
            reason, rec = self._stored_event(kind, t, payload)
            if reason is None:
                try:
                    if kind == "txn":
                        self._apply_txn_memory(event_id, t, rec, seq)
                    else:
                        self._apply_ae_memory(event_id, t, rec, seq)
                except Exception as exc:  # anything: the row goes, the state must still start
                    failed = ("events", seq, event_id, row, f"{type(exc).__name__} while applied to memory")
                    break
                newest = t if newest is None else max(newest, t)
            else:
                bad.append(("events", seq, event_id, row, reason))
        rows.close()
        if failed is not None:
            self._quarantine([failed], None)
            moved.append(failed)
            return False
        for rowid, *row in self._conn.execute("SELECT rowid, gid, entity, col, value, t FROM first_seen"):
            gid, entity, col, value, t = row
            try:
                key, v = _entity(entity), json.loads(value)
                hash(v)
                if not isinstance(t, int):
                    raise TypeError("t")
            except (ValueError, TypeError) as exc:
                bad.append(("first_seen", rowid, None, tuple(row), f"unreadable first occurrence ({type(exc).__name__})"))
                continue
            if gid not in by_gid:
                continue
            log = self._logs[gid].get(key)
            if log is None:
                log = self._logs[gid][key] = by_gid[gid].new_log(None)
            if col in log.first:
                log.first[col].add(v, t)
        # The watermark is the newest applied event's time: one that is unreadable or out of range,
        # or that a quarantined event set, goes back to the newest event kept.
        lost_newest = any(
            table == "events" and watermark is not None and isinstance(row[3], int) and row[3] >= watermark
            for table, _, _, row, _ in (*moved, *bad)
        )
        if (watermark is None and "watermark" in meta) or lost_newest:
            watermark = newest
        if (pruned_at is None and "pruned_at" in meta) or (
            pruned_at is not None and (watermark is None or pruned_at > watermark)
        ):
            self._pruned_at = None  # prune again at the next event
        self._watermark: int | None = watermark
        repaired = watermark != _meta_time(meta.get("watermark")) or "watermark" in meta and watermark is None
        repaired = repaired or (self._pruned_at is None and "pruned_at" in meta)
        if bad or repaired:
            self._quarantine(bad, (self._watermark, self._pruned_at))
        self._seq = self._conn.execute("SELECT COALESCE(MAX(seq), 0) FROM events").fetchone()[0]
        return True

    def _stored_event(self, kind: Any, t: Any, payload: Any) -> tuple[str | None, Any]:
        """``(None, record)`` of an ``events`` row the memory can take, else ``(reason, None)``."""
        if kind not in ("txn", "ae"):
            return "unknown kind", None
        table = "transactions" if kind == "txn" else "account_events"
        low, high, text = _TIME_BOUNDS[table, "occurred_at"]
        if not isinstance(t, int) or not (low or 0) <= t < (high or time.time_ns() // 1000):
            return f"occurred_at is not a time in the contract's range [{text[0]}, {text[1]})", None
        try:
            rec = _json_object(payload)
        except (ValueError, TypeError):
            return "payload is not a JSON object", None
        if kind == "txn":
            for c in self._derived:
                x = rec.get(c)
                if isinstance(x, bool) or not isinstance(x, (int, float)):
                    return f"numeric measure {c} is missing", None
                if not math.isfinite(x):
                    return f"numeric measure {c} is not finite", None
        return None, rec

    def _quarantine(
        self, rows: list[tuple[str, int, str | None, tuple, str]], clock: tuple[int | None, int | None] | None
    ) -> None:
        """Move rows ``(table, rowid, event id, row, reason)`` to ``quarantine`` and, with ``clock``,
        set meta's ``(watermark, pruned_at)`` (None: removed), all in one transaction."""
        now = time.time_ns() // 1000

        def write() -> None:
            for table, rowid, event_id, row, reason in rows:
                self._conn.execute(
                    "INSERT INTO quarantine(source, event_id, row, reason, quarantined_at) VALUES (?, ?, ?, ?, ?)",
                    (table, event_id, json.dumps([_sqlite_text(v) for v in row]), reason, now),
                )
                self._conn.execute(f"DELETE FROM {table} WHERE rowid = ?", (rowid,))  # noqa: S608 (fixed names)
            if clock is not None:
                for key, t in zip(("watermark", "pruned_at"), clock, strict=True):
                    if t is None:
                        self._conn.execute("DELETE FROM meta WHERE key = ?", (key,))
                    else:
                        self._conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, str(t)))

        self._transaction(write)
        for table, rowid, event_id, _, reason in rows:
            _logger.warning(
                "feature state %s: quarantined a row of %s (rowid %s, event %s): %s",
                self.path, table, rowid, event_id, reason,
            )

    def quarantined(self) -> list[dict[str, Any]]:
        """Rows the rebuild of memory could not apply and moved aside, oldest first.

        Returns:
            One dict per row: ``source`` (the table it came from), ``event_id`` (events and
            labels), ``row`` (its columns as stored), ``reason``, ``quarantined_at`` (int
            microseconds since the epoch).
        """
        with self._lock:
            rows = self._conn.execute(
                "SELECT source, event_id, row, reason, quarantined_at FROM quarantine ORDER BY id"
            ).fetchall()
        return [
            {"source": src, "event_id": eid, "row": json.loads(row), "reason": reason, "quarantined_at": at}
            for src, eid, row, reason, at in rows
        ]

    def _transaction(self, write: Callable[[], Any]) -> None:
        """Run ``write`` in one sqlite transaction: all of it or none of it."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            write()
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    # -- normalising events ---------------------------------------------------------------------

    def _row_features(self, event: Mapping[str, Any], t: int, txn_id: str) -> dict[str, float]:
        inputs: dict[str, Any] = {c: np.array([event.get(c)], dtype=object) for c in self._row_inputs}
        for c in ("amount", "unit_price", "quantity"):
            if c in inputs:
                inputs[c] = _floats(inputs[c], c, [txn_id])
        inputs["occurred_at_us"] = np.array([t], dtype=np.int64)
        _check_numbers([txn_id], inputs)
        values = compute_row_features(self._row_names, inputs, self.reference)
        _check_derived([txn_id], values, self._derived)
        return {k: float(v[0]) for k, v in values.items()}

    def _check_time(self, t: int, what: str, watermark: int | None = None) -> None:
        watermark = self._watermark if watermark is None else watermark
        if watermark is not None and t < watermark - self.lateness_us:
            raise ValueError(
                f"{what} at {pd.Timestamp(t, unit='us', tz='UTC')} is older than the allowed lateness behind "
                f"the newest event ({pd.Timestamp(watermark, unit='us', tz='UTC')})"
            )

    def check_lateness(self, times: Iterable[Any], what: str = "event") -> None:
        """Check, without changing anything, that events at ``times`` applied in this order would all
        be accepted (each within the allowed lateness behind the newest one before it).

        Raises:
            LateEventError: ``index`` is the position of the first event that would be refused.
        """
        with self._lock:
            watermark = self._watermark
            for i, value in enumerate(times):
                t = timestamp_us(value)
                try:
                    self._check_time(t, f"{what} {i}", watermark)
                except ValueError as exc:
                    raise LateEventError(i, str(exc)) from None
                watermark = t if watermark is None else max(watermark, t)

    def _check_currency(self, event: Mapping[str, Any]) -> None:
        if self.feature_set.single_currency:
            cur = event.get("currency")
            if self._currency is not None and cur != self._currency:
                raise ValueError(
                    f"{self.feature_set.name} is single-currency ({self._currency}), got {cur!r}"
                )

    @staticmethod
    def _key(event: Mapping[str, Any], cols: tuple[str, ...]) -> tuple | None:
        key = tuple(event.get(c) for c in cols)
        return None if any(_isnull(v) for v in key) else key

    def _txn_record(self, event: Mapping[str, Any]) -> tuple[str, int, dict[str, Any], dict[str, float]]:
        txn_id = event.get("transaction_id")
        if _isnull(txn_id):
            raise ValueError("transaction_id must not be null")
        txn_id = str(txn_id)
        t = _event_time(event, "transactions", "occurred_at", f"transaction {txn_id}")
        row = self._row_features(event, t, txn_id)  # refuses numbers the state cannot hold
        rec = {c: (None if _isnull(event.get(c)) else event.get(c)) for c in self._txn_cols}
        self._pseudonymised(rec, self._pii_txn)
        for c in self._derived:
            rec[c] = row[c]
        return txn_id, t, rec, row

    def _pseudonymised(self, rec: dict[str, Any], cols: list[str], memo: dict | None = None) -> dict[str, Any]:
        """``rec`` with the values of personal columns ``cols`` replaced by pseudonyms (in place)."""
        fn = self.pseudonymise
        if fn is not None:
            for c in cols:
                v = rec.get(c)
                if v is not None:
                    if memo is None:
                        rec[c] = fn(v if isinstance(v, str) else str(v))
                    else:
                        found = memo.get(v)
                        rec[c] = found if found is not None else memo.setdefault(v, fn(str(v)))
        return rec

    # -- the API --------------------------------------------------------------------------------

    def prepare(self, event: Mapping[str, Any]) -> tuple[str, int, dict[str, Any], dict[str, float]]:
        """Normalise a transaction once (id, time, stored record, row features) for ``compute`` and
        ``apply_transaction`` of the same event (saves doing it twice on the serving path)."""
        return self._txn_record(event)

    def compute(self, event: Mapping[str, Any], prepared: tuple | None = None) -> dict[str, float]:
        """Features of one new transaction from the current state, BEFORE applying it.

        Args:
            event: a transaction (contract columns of ``transactions``).
            prepared: ``prepare(event)``, when the caller has it.

        Returns:
            feature name -> float, in ``FeatureSet.feature_names`` order (same values as the
            batch engine's row for this transaction, given the same earlier events).
        """
        txn_id, t, rec, row = prepared or self._txn_record(event)
        with self._lock:
            self._check_time(t, f"transaction {txn_id}")
            self._check_currency(event)
            return self._compute(t, event, rec, row)

    def _compute(
        self, t: int, event: Mapping[str, Any], rec: Mapping[str, Any], row: Mapping[str, float]
    ) -> dict[str, float]:
        out = {name: row[name] for name in self.feature_set.row_features}
        keys: dict[tuple[str, ...], tuple | None] = {}
        for group, evaluators in self._evaluators:
            cols = group.query_cols
            # keyed from the record, whose personal values are pseudonyms like the stored ones
            key = keys[cols] if cols in keys else keys.setdefault(cols, self._key(rec, cols))
            if key is None:
                for name, _, _, _ in evaluators:
                    out[name] = _NAN
                continue
            log = self._logs[group.gid].get(key)
            for name, fn, col, fill in evaluators:
                v = fn(log, t, rec.get(col, _NAN) if col else _NAN)
                out[name] = fill if (fill is not None and v != v) else v
        return {name: out[name] for name in self._names}

    def score_and_update(self, event: Mapping[str, Any]) -> dict[str, float]:
        """``compute(event)`` then ``apply_transaction(event)``; returns the features."""
        prepared = self._txn_record(event)
        with self._lock:
            features = self.compute(event, prepared)
            self.apply_transaction(event, prepared)
        return features

    def apply_transaction(self, event: Mapping[str, Any], prepared: tuple | None = None) -> bool:
        """Add a transaction to the state (memory, then one sqlite transaction).

        Args:
            event: a transaction (contract columns of ``transactions``).
            prepared: ``prepare(event)``, when the caller has it.

        Returns:
            False when the transaction was already applied (nothing changes), else True.
        """
        with self._lock:
            return self._persist_now(self.stage_transaction(event, prepared))

    def apply_account_event(self, event: Mapping[str, Any]) -> bool:
        """Add an account event (contract columns of ``account_events``) to the state.

        Returns:
            False when the event (by ``event_id``) was already applied, or no feature of the set
            looks at its type, else True.
        """
        with self._lock:
            return self._persist_now(self.stage_account_event(event))

    def apply_label(self, label: Mapping[str, Any]) -> bool:
        """Record a label (contract columns of ``labels``) as known from its ``known_at``.

        Only bad transaction labels (``BAD_TRANSACTION_LABELS``) affect features; a transaction
        is bad from its earliest such label. Labels may arrive before their transaction.

        Returns:
            True when the label changed the state.
        """
        with self._lock:
            return self._persist_now(self.stage_label(label))

    # -- staged writes: memory now, sqlite later ------------------------------------------------
    #
    # A request that must be all or nothing across several stores (the scoring service: feature
    # state, customer history, decision log) applies its events to memory first (``stage_*``: the
    # next event sees them at once), commits its decision elsewhere, and only then writes them here
    # (``persist``). A crash before the commit leaves nothing on disk; one after it leaves events the
    # caller re-applies from its own outbox (``stage_*`` ignores those already applied, and
    # ``check_time=False`` because they were accepted when they arrived). Staged writes commute:
    # rows carry the sequence number given at staging, first-seen times are minima, the watermark
    # a maximum, so their order of persisting does not matter.

    def stage_transaction(
        self, event: Mapping[str, Any], prepared: tuple | None = None, *, check_time: bool = True
    ) -> StagedWrite | None:
        """Apply a transaction to memory and return its sqlite write (None: already applied).

        Raises:
            ValueError: older than the allowed lateness (unless ``check_time=False``), a second
                currency for a single-currency set, or an invalid event; nothing changes.
        """
        txn_id, t, rec, _ = prepared or self._txn_record(event)
        with self._lock:
            if check_time:
                self._check_time(t, f"transaction {txn_id}")
            self._check_currency(event)
            if txn_id in self._txns:
                return None
            return self._stage("txn", txn_id, t, rec, self._txn_groups, event, self._apply_txn_memory)

    def stage_account_event(self, event: Mapping[str, Any], *, check_time: bool = True) -> StagedWrite | None:
        """Apply an account event to memory and return its sqlite write (None: nothing to apply)."""
        event_id = event.get("event_id")
        event_id = str(uuid.uuid4()) if _isnull(event_id) else str(event_id)
        t = _event_time(event, "account_events", "occurred_at", f"account event {event_id}")
        rec = {c: (None if _isnull(event.get(c)) else event.get(c)) for c in (*self._ae_cols, "event_type")}
        self._pseudonymised(rec, self._pii_ae)
        groups = [g for g in self._ae_groups if g.event_type in (None, rec["event_type"])]
        with self._lock:
            if check_time:
                # every event is checked, even of a type no feature reads: the caller may keep it
                self._check_time(t, f"account event {event_id}")
            if not groups or event_id in self._acct:
                return None  # no feature of this set looks at such events, or already applied
            return self._stage("ae", event_id, t, rec, groups, None, self._apply_ae_memory)

    def stage_label(self, label: Mapping[str, Any]) -> StagedWrite | None:
        """Apply a label to memory and return its sqlite write (None: it changes nothing)."""
        if label.get("entity_type") != "transaction" or label.get("label") not in BAD_TRANSACTION_LABELS:
            return None
        if not self._fraud_groups:
            return None  # no feature of this set uses labels
        txn_id = str(label["entity_id"])
        known = _event_time(label, "labels", "known_at", f"label of transaction {txn_id}")
        with self._lock:
            old = self._bad.get(txn_id)
            if old is not None and old <= known:
                return None
            self._update_memory(lambda: self._apply_label_memory(txn_id, known), None, None)
            return StagedWrite(labels=[(txn_id, known)])

    def persist(self, writes: Iterable[StagedWrite | None]) -> None:
        """Write staged events to sqlite, all in one transaction.

        Raises:
            sqlite3.Error: the write failed; sqlite is unchanged and memory is AHEAD of it: the
                caller must ``reload()`` (or retry) once no other staged write is pending.
        """
        writes = [w for w in writes if w is not None]
        if not writes:
            return
        with self._lock:
            self._transaction(lambda: [self._write_staged(w) for w in writes])

    def reload(self) -> None:
        """Rebuild memory from sqlite, dropping staged events that were never persisted."""
        with self._lock:
            self._load()

    def _persist_now(self, staged: StagedWrite | None) -> bool:
        if staged is None:
            return False
        try:
            self.persist([staged])
        except BaseException:
            self._load()  # memory went ahead of sqlite: back to what is on disk
            raise
        return True

    def _stage(
        self, kind: str, event_id: str, t: int, rec: dict[str, Any], groups: list[_Group],
        event: Mapping[str, Any] | None, apply_memory: Callable[[str, int, Mapping[str, Any], int], None],
    ) -> StagedWrite:  # fmt: skip
        """Apply one event (``kind`` ``txn`` or ``ae``) to memory; return what sqlite must get."""
        seq = self._seq + 1
        first_rows = self._new_first_seen(groups, rec, t)
        currency = (
            event.get("currency")
            if self.feature_set.single_currency and event is not None and self._currency is None
            else None
        )
        self._seq = seq
        self._update_memory(lambda: apply_memory(event_id, t, rec, seq), t, event)
        return StagedWrite(
            events=[(seq, kind, event_id, t, _dumps(rec))], first_seen=first_rows, watermark=t, currency=currency
        )

    @property
    def empty(self) -> bool:
        """True while nothing was applied (what ``bulk_apply`` needs)."""
        with self._lock:
            return not (self._seq or self._watermark is not None or self._bad or any(self._logs.values()))

    def bulk_apply(self, events: Iterable[tuple[str, Mapping[str, Any]]]) -> dict[str, int]:
        """Seed an EMPTY store with a whole event log at once (e.g. ``event_log(tables)``).

        Leaves exactly the state that applying the events one by one (``apply_transaction``,
        ``apply_account_event``, ``apply_label``) leaves: the same memory (logs, bases, first
        seen values, fraud sets, watermark, what was pruned when) and the same sqlite rows, so a
        restart loads the same state too. About 8x faster on the demo year (940k events): row
        features are computed for all transactions at once, each entity log is built once from
        its events (folding what pruning would have folded), and sqlite is written in one
        transaction. Peak memory is about 0.7 GB above the event log on the demo data.

        All or nothing: the state is built aside and installed only after the one sqlite
        transaction committed. Any error (a bad event, a failed write, a crash) leaves the store
        empty, in memory and on disk; fix the cause and seed again. Unlike the one-by-one path,
        no event before a bad one is kept.

        Args:
            events: ``(kind, record)`` pairs as for ``replay``; transactions and account events
                in time order (``event_log`` sorts them), labels anywhere.

        Returns:
            Applied counts ``transactions``, ``account_events``, ``labels`` (duplicates and
            events no feature looks at are not counted, as with the one-by-one methods).

        Raises:
            ValueError: the store is not empty (apply further events one by one), the events
                are out of time order, or an event is invalid (as the one-by-one methods).
        """
        with self._lock:
            if not self.empty:
                raise ValueError(
                    f"bulk_apply seeds an empty store only, and {self.path} already holds state: "
                    "apply further events one by one (apply_transaction, ...) or seed a new file"
                )
            # Millions of small containers and none of them garbage: skip the collector's passes.
            collecting = gc.isenabled()
            gc.disable()
            try:
                bulk = _Bulk(self, events)
                self._transaction(bulk.write)
            finally:
                if collecting:
                    gc.enable()
            try:
                bulk.install()
            except BaseException:
                self._load()
                raise
            # Fold the large write-ahead log into the database file now rather than later.
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            return dict(bulk.counts)

    def replay(self, events: Iterable[tuple[str, Mapping[str, Any]]]) -> pd.DataFrame:
        """Apply an event log in order, scoring each transaction before applying it.

        Args:
            events: ``(kind, record)`` pairs, kind ``"transaction"``, ``"account_event"`` or
                ``"label"`` (e.g. from ``event_log``).

        Returns:
            One row per transaction, in log order: ``transaction_id`` then the features.
        """
        rows, ids = [], []
        for kind, rec in events:
            if kind == "transaction":
                rows.append(self.score_and_update(rec))
                ids.append(rec["transaction_id"])
            elif kind == "account_event":
                self.apply_account_event(rec)
            elif kind == "label":
                self.apply_label(rec)
            else:
                raise ValueError(f"unknown event kind {kind!r}")
        frame = pd.DataFrame(rows, columns=self.feature_set.feature_names, dtype=float)
        frame.insert(0, "transaction_id", ids)
        return frame

    # -- memory updates (only after the sqlite transaction committed) ---------------------------

    def _update_memory(
        self, update: Callable[[], None], t: int | None, event: Mapping[str, Any] | None
    ) -> None:
        try:
            update()
            if t is not None:
                if self._watermark is None or t > self._watermark:
                    self._watermark = t
                if self.feature_set.single_currency and event is not None and self._currency is None:
                    self._currency = event.get("currency")
        except BaseException:
            self._load()  # half an update: back to what sqlite holds
            raise
        self._maybe_prune()

    def _apply_txn_memory(self, txn_id: str, t: int, rec: Mapping[str, Any], seq: int) -> None:
        fraud_keys = []
        touched = []
        nums = {c: rec[c] for c in self._derived}
        for g in self._txn_groups:
            key = self._key(rec, g.source_cols)
            if key is None:
                continue
            logs = self._logs[g.gid]
            log = logs.get(key)
            if log is None:
                log = logs[key] = g.new_log(None)
            log.append(t, txn_id, nums, rec)
            touched.append((g.gid, key))
            if g.fraud:
                fraud_keys.append((g, key))
        self._txns[txn_id] = (t, fraud_keys)
        heapq.heappush(self._heap, (t, seq, "txn", txn_id, tuple(touched)))
        if txn_id in self._bad:
            self._apply_label_memory(txn_id, self._bad[txn_id])

    def _apply_ae_memory(self, event_id: str, t: int, rec: Mapping[str, Any], seq: int) -> None:
        touched = []
        for g in self._ae_groups:
            if g.event_type is not None and rec.get("event_type") != g.event_type:
                continue
            key = self._key(rec, g.source_cols)
            if key is None:
                continue
            logs = self._logs[g.gid]
            log = logs.get(key)
            if log is None:
                log = logs[key] = g.new_log(None)
            log.append(t, event_id, {}, rec)
            touched.append((g.gid, key))
        self._acct.add(event_id)
        heapq.heappush(self._heap, (t, seq, "ae", event_id, tuple(touched)))

    def _apply_label_memory(self, txn_id: str, known: int) -> None:
        self._bad[txn_id] = known
        info = self._txns.get(txn_id)
        if info is None:
            return
        t, fraud_keys = info
        for g, key in fraud_keys:
            log = self._logs[g.gid][key]
            for (a, b), fr in log.fraud.items():
                fr.set(txn_id, max(t + a, known + 1), t + b)

    # -- sqlite writes --------------------------------------------------------------------------

    def _new_first_seen(self, groups: list[_Group], rec: Mapping[str, Any], t: int) -> list[tuple]:
        rows = []
        for g in groups:
            if not g.first_seen:
                continue
            key = self._key(rec, g.source_cols)
            if key is None:
                continue
            log = self._logs[g.gid].get(key)
            for col in g.first_seen:
                v = rec.get(col)
                if _isnull(v):
                    continue
                if log is None or log.first[col].is_new(v, t):
                    rows.append((g.gid, _dumps(list(key)), col, _dumps(v), t))
        return rows

    def _write_first_seen(self, rows: list[tuple]) -> None:
        if rows:
            self._conn.executemany(
                "INSERT INTO first_seen VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT(gid, entity, col, value) DO UPDATE SET t = min(t, excluded.t)",
                rows,
            )

    def _write_staged(self, w: StagedWrite) -> None:
        if w.events:
            self._conn.executemany(
                "INSERT INTO events(seq, kind, event_id, occurred_at, payload) VALUES (?, ?, ?, ?, ?)", w.events
            )
        self._write_first_seen(w.first_seen)
        if w.watermark is not None:  # a maximum: staged writes may be persisted in any order
            self._conn.execute(
                "INSERT INTO meta VALUES ('watermark', ?) ON CONFLICT(key) DO UPDATE SET value = "
                "CASE WHEN CAST(excluded.value AS INTEGER) > CAST(value AS INTEGER) THEN excluded.value "
                "ELSE value END",
                (str(w.watermark),),
            )
        if w.currency is not None:
            self._conn.execute("INSERT OR IGNORE INTO meta VALUES ('currency', ?)", (str(w.currency),))
        if w.labels:  # a transaction is bad from its earliest label
            self._conn.executemany(
                "INSERT INTO bad_labels VALUES (?, ?) ON CONFLICT(transaction_id) "
                "DO UPDATE SET known_at = min(known_at, excluded.known_at)",
                w.labels,
            )

    # -- pruning --------------------------------------------------------------------------------

    def _maybe_prune(self) -> None:
        if self._watermark is None:
            return
        if self._pruned_at is not None and self._watermark - self._pruned_at < self.prune_every_us:
            return
        self._prune()

    def prune(self) -> int:
        """Fold events no window can reach any more into per-entity bases and delete them.

        Runs by itself every ``prune_every`` of event time; one sqlite transaction.

        Returns:
            The number of events pruned.
        """
        with self._lock:
            return self._prune()

    def _prune(self) -> int:
        if self._watermark is None:
            return 0
        earliest_query = self._watermark - self.lateness_us
        cutoff = earliest_query - self._reach  # e < cutoff: outside every window of every allowed query
        popped = []
        while self._heap and self._heap[0][0] < cutoff:
            popped.append(heapq.heappop(self._heap))
        touched: dict[tuple[str, tuple], _Log] = {}
        pruned_txns = []
        for _, _, kind, event_id, logs in popped:
            if kind == "txn":
                pruned_txns.append(event_id)
            for gid, key in logs:
                log = self._logs[gid].get(key)
                if log is not None:
                    touched[(gid, key)] = log
        bases = []
        for (gid, key), log in touched.items():
            k = bisect.bisect_left(log.times, cutoff)
            bases.append((gid, _dumps(list(key)), _dumps(log.base_after(k))))

        def write() -> None:
            self._conn.execute("DELETE FROM events WHERE occurred_at < ?", (cutoff,))
            self._conn.executemany(
                "DELETE FROM bad_labels WHERE transaction_id = ?", [(i,) for i in pruned_txns]
            )
            self._conn.executemany("INSERT OR REPLACE INTO bases VALUES (?, ?, ?)", bases)
            self._conn.execute("INSERT OR REPLACE INTO meta VALUES ('pruned_at', ?)", (str(self._watermark),))

        try:
            self._transaction(write)
        except BaseException:
            for item in popped:
                heapq.heappush(self._heap, item)
            raise
        for log in touched.values():
            log.prune(bisect.bisect_left(log.times, cutoff), earliest_query)
        for txn_id in pruned_txns:
            self._txns.pop(txn_id, None)
            self._bad.pop(txn_id, None)
        for _, _, kind, event_id, _ in popped:
            if kind == "ae":
                self._acct.discard(event_id)
        self._pruned_at = self._watermark
        return len(popped)


# --- Bulk seeding --------------------------------------------------------------------------------


def _clean(event: Mapping[str, Any], cols: Iterable[str]) -> dict[str, Any]:
    """``{c: event.get(c)}`` with nulls as None (the records the one-by-one path stores)."""
    out = {}
    for c in cols:
        v = event.get(c)
        out[c] = None if v.__class__ is not str and _isnull(v) else v
    return out


def _segments_state(
    seg: _Segments, items: list[tuple[int, int, Any]], a: int, b: int, prunes: list[tuple[int, int]]
) -> None:
    """Fill ``seg`` as ``add``/``prune`` one by one would leave it, from all of a log's events.

    ``items`` are ``(applied index, time, value)`` of the log's events in time order (values not
    null); ``prunes`` are ``(applied events before it, earliest query time)`` of the prunes that
    touched the log. A run (a value's merged segment) is dropped by a prune iff its end is at or
    before that prune's earliest query: ends only grow while a run is kept, the earliest query
    only grows, so a run is gone at the end iff the log's last prune after its creation drops it,
    and a run the next event could extend is gone iff the last prune before that event drops it.
    Starts come in time order and a prune drops as many of the oldest starts as it drops ends.
    """
    starts: list[int] = []
    ends: list[int] = []
    created: list[int] = []
    values: list[Any] = []
    last: dict[Any, int] = {}
    pj, n_prunes = 0, len(prunes)
    for idx, t, v in items:
        while pj < n_prunes and prunes[pj][0] <= idx:
            pj += 1
        start, end = t + a, t + b
        r = last.get(v)
        if r is not None:
            current = ends[r]
            dropped = pj and prunes[pj - 1][0] > created[r] and prunes[pj - 1][1] >= current
            if not dropped and start <= current:
                if end > current:
                    ends[r] = end
                continue
        last[v] = len(starts)
        starts.append(start)
        ends.append(end)
        created.append(idx)
        values.append(v)
    if n_prunes:
        boundary, before = prunes[-1]
        kept = [not (boundary > c and before >= e) for c, e in zip(created, ends, strict=True)]
    else:
        kept = [True] * len(starts)
    seg.starts = starts[len(starts) - sum(kept) :]
    seg.ends = sorted(e for e, k in zip(ends, kept, strict=True) if k)
    runs: dict[Any, list[int]] = {}
    for r, v in enumerate(values):  # creation order: each value's runs in time order
        if kept[r]:
            found = runs.get(v)
            if found is None:
                runs[v] = [starts[r], ends[r]]
            else:
                found += (starts[r], ends[r])
    seg.runs = runs
    seg.floor = prunes[-1][1] if n_prunes else None


class _Bulk:
    """The state an empty store reaches by applying an event log one event at a time, built at once.

    Three passes, none touching the store until ``write``/``install``: normalise every event as
    the one-by-one methods do (row features for all transactions at once); replay only the
    bookkeeping (duplicates, labels, watermark, which events each hourly prune removes) in
    stream order; then build each entity log once from all its events. Events are applied in
    time order, so pruning always removes the oldest applied events: a prefix of the applied
    list, and of every log.
    """

    def __init__(self, store: OnlineFeatureStore, events: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        self.store = store
        self.counts = {"transactions": 0, "account_events": 0, "labels": 0}
        self.pseudonyms: dict[Any, str] = {}  # personal values repeat: one call each
        self._normalise(events)
        self._control()
        self._build_logs()

    # -- pass 1: the records the one-by-one path would store ------------------------------------

    def _normalise(self, events: Iterable[tuple[str, Mapping[str, Any]]]) -> None:
        st = self.store
        stream: list[tuple[int, int]] = []  # (kind 0 txn / 1 account event / 2 label, index)
        txns: list[Mapping[str, Any]] = []
        aes: list[Mapping[str, Any]] = []
        labels: list[tuple[str, int]] = []
        ae_groups: dict[Any, list[_Group]] = {}
        self.ae_recs: list[tuple[str, dict[str, Any], list[_Group]]] = []
        ae_times: list[int] = []
        for kind, event in events:
            if kind == "transaction":
                stream.append((0, len(txns)))
                txns.append(event)
            elif kind == "account_event":
                t = _event_time(event, "account_events", "occurred_at", f"account event {event.get('event_id')}")
                etype = event.get("event_type")
                etype = None if _isnull(etype) else etype
                groups = ae_groups.get(etype)
                if groups is None:
                    groups = ae_groups[etype] = [g for g in st._ae_groups if g.event_type in (None, etype)]
                if groups:  # else no feature looks at such events: ignored before any check
                    stream.append((1, len(aes)))
                    aes.append(event)
                    ae_times.append(t)
                    self.ae_recs.append(("", {}, groups))
            elif kind == "label":
                if (
                    event.get("entity_type") != "transaction"
                    or event.get("label") not in BAD_TRANSACTION_LABELS
                    or not st._fraud_groups
                ):
                    continue
                stream.append((2, len(labels)))
                txn_id = str(event["entity_id"])
                labels.append((txn_id, _event_time(event, "labels", "known_at", f"label of transaction {txn_id}")))
            else:
                raise ValueError(f"unknown event kind {kind!r}")
        for i, event in enumerate(aes):
            event_id = event.get("event_id")
            event_id = str(uuid.uuid4()) if _isnull(event_id) else str(event_id)
            rec = st._pseudonymised(_clean(event, (*st._ae_cols, "event_type")), st._pii_ae, self.pseudonyms)
            self.ae_recs[i] = (event_id, rec, self.ae_recs[i][2])
        self.stream, self.txn_events, self.labels, self.ae_times = stream, txns, labels, ae_times
        self._normalise_transactions(txns)

    def _normalise_transactions(self, txns: list[Mapping[str, Any]]) -> None:
        st = self.store
        n = len(txns)
        ids = []
        for event in txns:
            txn_id = event.get("transaction_id")
            if _isnull(txn_id):
                raise ValueError("transaction_id must not be null")
            ids.append(str(txn_id))
        times = [
            _event_time(event, "transactions", "occurred_at", f"transaction {txn_id}")
            for event, txn_id in zip(txns, ids, strict=True)
        ]
        inputs: dict[str, Any] = {
            c: np.fromiter((event.get(c) for event in txns), dtype=object, count=n) for c in st._row_inputs
        }
        for c in ("amount", "unit_price", "quantity"):
            if c in inputs:
                inputs[c] = _floats(inputs[c], c, ids)
        inputs["occurred_at_us"] = np.asarray(times, dtype=np.int64)
        _check_numbers(ids, inputs)
        values = compute_row_features(st._row_names, inputs, st.reference) if n else {}
        derived = {c: col.tolist() for c, col in _check_derived(ids, values, st._derived).items()} if n else {}
        recs = []
        cols = st._txn_cols
        for i, event in enumerate(txns):
            rec = st._pseudonymised(_clean(event, cols), st._pii_txn, self.pseudonyms)
            for c, col in derived.items():
                rec[c] = col[i]
            recs.append(rec)
        self.txn_ids, self.txn_times, self.txn_recs = ids, times, recs

    # -- pass 2: bookkeeping in stream order ----------------------------------------------------

    def _control(self) -> None:
        st = self.store
        lateness, reach, every = st.lateness_us, st._reach, st.prune_every_us
        single_currency = st.feature_set.single_currency
        txn_ids, txn_times, txn_events = self.txn_ids, self.txn_times, self.txn_events
        ae_recs, ae_times, labels = self.ae_recs, self.ae_times, self.labels
        applied: list[tuple[int, int]] = []  # (kind, index) of applied events; seq = position + 1
        times: list[int] = []
        live_txns: dict[str, int] = {}
        live_acct: set[str] = set()
        bad: dict[str, int] = {}
        prunes: list[tuple[int, int, int]] = []  # (applied before it, earliest query, popped up to)
        watermark: int | None = None
        pruned_at: int | None = None
        currency: Any = None
        currency_meta: str | None = None
        head = 0
        counts = self.counts
        newest = None
        for kind, i in self.stream:
            if kind == 2:
                txn_id, known = labels[i]
                old = bad.get(txn_id)
                if old is None or known < old:
                    bad[txn_id] = known
                    counts["labels"] += 1
                continue  # labels never move the watermark, hence never prune
            if kind == 0:
                t = txn_times[i]
                what = f"transaction {txn_ids[i]}"
            else:
                t = ae_times[i]
                what = f"account event {ae_recs[i][0]}"
            if newest is not None and t < newest:
                raise ValueError(
                    f"bulk_apply needs transactions and account events in time order (event_log): {what} "
                    f"at {pd.Timestamp(t, unit='us', tz='UTC')} comes after one at "
                    f"{pd.Timestamp(newest, unit='us', tz='UTC')}"
                )
            newest = t
            if kind == 0:
                if single_currency:
                    cur = txn_events[i].get("currency")
                    if currency is not None and cur != currency:
                        raise ValueError(
                            f"{st.feature_set.name} is single-currency ({currency}), got {cur!r}"
                        )
                txn_id = txn_ids[i]
                if txn_id in live_txns:
                    continue
                live_txns[txn_id] = len(applied)
                counts["transactions"] += 1
                if single_currency and currency is None:
                    currency_meta = str(cur)
                    currency = cur
            else:
                event_id = ae_recs[i][0]
                if event_id in live_acct:
                    continue
                live_acct.add(event_id)
                counts["account_events"] += 1
            applied.append((kind, i))
            times.append(t)
            if watermark is None or t > watermark:
                watermark = t
            if pruned_at is not None and watermark - pruned_at < every:
                continue
            cutoff = watermark - lateness - reach
            while head < len(times) and times[head] < cutoff:
                k, j = applied[head]
                if k == 0:
                    live_txns.pop(txn_ids[j], None)
                    bad.pop(txn_ids[j], None)
                else:
                    live_acct.discard(ae_recs[j][0])
                head += 1
            prunes.append((len(applied), watermark - lateness, head))
            pruned_at = watermark
        self.applied, self.times, self.head = applied, times, head
        self.prunes, self.bad = prunes, bad
        self.live_acct = live_acct
        self.watermark, self.pruned_at = watermark, pruned_at
        self.currency, self.currency_meta = currency, currency_meta

    # -- pass 3: every entity log at once -------------------------------------------------------

    def _build_logs(self) -> None:
        st = self.store
        applied = self.applied
        txn_recs, txn_ids, ae_recs = self.txn_recs, self.txn_ids, self.ae_recs
        n = len(applied)
        # Popped ranges of the prunes that removed anything: which prune removed each event.
        prune_ends: list[int] = []
        prune_info: list[tuple[int, int]] = []
        popped_from = 0
        for boundary, before, upto in self.prunes:
            if upto > popped_from:
                prune_ends.append(upto)
                prune_info.append((boundary, before))
                popped_from = upto
        recs: list[dict[str, Any]] = []
        ids: list[str] = []
        for kind, i in applied:
            if kind == 0:
                recs.append(txn_recs[i])
                ids.append(txn_ids[i])
            else:
                recs.append(ae_recs[i][1])
                ids.append(ae_recs[i][0])
        self.recs, self.ids = recs, ids
        exact: dict[str, list[int]] = {}
        squares: dict[str, list[int]] = {}
        self.logs: dict[str, dict[tuple, _Log]] = {g.gid: {} for g in st._groups}
        self.keys: dict[str, list[tuple | None]] = {}
        for g in st._groups:
            cols = g.source_cols
            keys: list[tuple | None] = [None] * n
            members: dict[tuple, list[int]] = {}
            want = 0 if g.source == "transactions" else 1
            for idx, (kind, i) in enumerate(applied):
                if kind != want:
                    continue
                if kind == 1 and g not in ae_recs[i][2]:
                    continue
                rec = recs[idx]
                key = tuple([rec[c] for c in cols])
                if None in key:
                    continue
                keys[idx] = key
                found = members.get(key)
                if found is None:
                    members[key] = [idx]
                else:
                    found.append(idx)
            self.keys[g.gid] = keys
            for c, (sq, _) in g.numeric.items():
                if c not in exact:
                    exact[c] = [
                        _exact(rec[c]) if kind == 0 else 0
                        for (kind, _), rec in zip(applied, recs, strict=True)
                    ]
                if sq and c not in squares:
                    squares[c] = [x * x for x in exact[c]]
            logs = self.logs[g.gid]
            for key, idxs in members.items():
                logs[key] = self._log(g, idxs, exact, squares, prune_ends, prune_info)

    def _log(
        self,
        g: _Group,
        idxs: list[int],
        exact: dict[str, list[int]],
        squares: dict[str, list[int]],
        prune_ends: list[int],
        prune_info: list[tuple[int, int]],
    ) -> _Log:
        times, recs, ids = self.times, self.recs, self.ids
        r = bisect.bisect_left(idxs, self.head)  # the oldest r events were pruned
        kept = idxs[r:]
        log = g.new_log(None)
        log.times = [times[i] for i in kept]
        log.ids = [ids[i] for i in kept]
        if r:
            log.n0, log.last0 = r, times[idxs[r - 1]]
        for c, num in log.num.items():
            vals = [recs[i][c] for i in idxs]
            xs = exact[c]
            num.vals = vals[r:]
            num.p1 = list(itertools.accumulate([xs[i] for i in kept], initial=sum(xs[i] for i in idxs[:r])))
            if num.p2 is not None:
                x2 = squares[c]
                num.p2 = list(
                    itertools.accumulate([x2[i] for i in kept], initial=sum(x2[i] for i in idxs[:r]))
                )
            if num.pmax is not None:
                num.pmax = list(
                    itertools.accumulate(vals[r:], max, initial=functools.reduce(max, vals[:r], -_INF))
                )
                num.pmin = list(
                    itertools.accumulate(vals[r:], min, initial=functools.reduce(min, vals[:r], _INF))
                )
        for c, values in log.cat.items():
            values.extend(recs[i].get(c) for i in kept)
        if log.seg:
            prunes = []
            if r:
                hit = sorted({bisect.bisect_right(prune_ends, i) for i in idxs[:r]})
                prunes = [prune_info[j] for j in hit]
            for (c, a, b), seg in log.seg.items():
                items = [(i, times[i], v) for i in idxs if (v := recs[i].get(c)) is not None]
                _segments_state(seg, items, a, b, prunes)
        for c, fs in log.first.items():
            first = fs.first
            for i in idxs:
                v = recs[i].get(c)
                if v is not None and v not in first:
                    first[v] = times[i]
                    fs.times.append(times[i])
        if log.fraud:
            bad = self.bad
            marked = [(ids[i], times[i], bad[ids[i]]) for i in kept if ids[i] in bad]
            for (a, b), fr in log.fraud.items():
                for txn_id, t, known in marked:
                    start, end = max(t + a, known + 1), t + b
                    if start < end:
                        fr.entries[txn_id] = (start, end)
                fr.starts = sorted(s for s, _ in fr.entries.values())
                fr.ends = sorted(e for _, e in fr.entries.values())
        return log

    # -- the store ------------------------------------------------------------------------------

    def _kept(self) -> Iterator[int]:
        return iter(range(self.head, len(self.applied)))

    def write(self) -> None:
        """Every sqlite row the one-by-one path leaves (inside the caller's one transaction)."""
        conn = self.store._conn
        applied, times, ids, recs = self.applied, self.times, self.ids, self.recs
        conn.executemany(
            "INSERT INTO events(seq, kind, event_id, occurred_at, payload) VALUES (?, ?, ?, ?, ?)",
            (
                (idx + 1, "txn" if applied[idx][0] == 0 else "ae", ids[idx], times[idx], _dumps(recs[idx]))
                for idx in self._kept()
            ),
        )
        conn.executemany("INSERT INTO bad_labels VALUES (?, ?)", self.bad.items())
        bases, first_seen = [], []
        for gid, logs in self.logs.items():
            for key, log in logs.items():
                entity = _dumps(list(key))
                if log.n0:
                    bases.append((gid, entity, _dumps(log.base_after(0))))
                for col, fs in log.first.items():
                    first_seen.extend((gid, entity, col, _dumps(v), t) for v, t in fs.first.items())
        conn.executemany("INSERT INTO bases VALUES (?, ?, ?)", bases)
        conn.executemany("INSERT INTO first_seen VALUES (?, ?, ?, ?, ?)", first_seen)
        meta = []
        if self.watermark is not None:
            meta.append(("watermark", str(self.watermark)))
        if self.pruned_at is not None:
            meta.append(("pruned_at", str(self.pruned_at)))
        if self.currency_meta is not None:
            meta.append(("currency", self.currency_meta))
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", meta)

    def install(self) -> None:
        """Make the built state the store's memory state (after ``write`` committed)."""
        st = self.store
        applied, times, ids = self.applied, self.times, self.ids
        gids = [g.gid for g in st._groups]
        fraud_gids = [g for g in st._txn_groups if g.fraud]
        txns: dict[str, tuple[int, list[tuple[_Group, tuple]]]] = {}
        heap = []
        for idx in self._kept():
            touched = tuple((gid, k) for gid in gids if (k := self.keys[gid][idx]) is not None)
            if applied[idx][0] == 0:
                fraud_keys = [(g, k) for g in fraud_gids if (k := self.keys[g.gid][idx]) is not None]
                txns[ids[idx]] = (times[idx], fraud_keys)
                heap.append((times[idx], idx + 1, "txn", ids[idx], touched))
            else:
                heap.append((times[idx], idx + 1, "ae", ids[idx], touched))
        heap.sort()  # a sorted list is a heap
        st._logs, st._txns, st._heap = self.logs, txns, heap
        st._acct, st._bad = self.live_acct, self.bad
        st._watermark, st._pruned_at, st._seq = self.watermark, self.pruned_at, len(applied)
        if self.currency is not None:
            st._currency = self.currency


# --- Event logs ----------------------------------------------------------------------------------


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


__all__ = ["LateEventError", "OnlineFeatureStore", "event_log", "timestamp_us"]


def rekey_personal_values(path: str | Path, customer_id: str) -> int:
    """Cut the link between a customer and the personal values in a (closed) state file: erasure.

    The customer's own events (orders it bought, its account events) name its devices and IP
    addresses, as pseudonyms when the store has a pseudonymiser. Each such value is replaced,
    everywhere in the file (event rows, first-seen values, entity keys of the pruned bases,
    quarantined rows), by one new random token of the same shape: the stored aggregates stay as
    they were, but nothing in the state links to the old value any more (not the decision log's
    pseudonyms, not the history's). The price: a later order from the same device or address,
    by anyone, no longer finds that history (it starts a new key), so its device and IP features
    begin again. Memory is rebuilt from the file at the next start.

    Args:
        path: the store's sqlite file (the service must be stopped).
        customer_id: the customer whose values are re-keyed.

    Returns:
        How many distinct values were re-keyed.
    """
    import secrets

    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(
            "SELECT payload FROM events WHERE json_extract(payload, '$.buyer_id') = ? "
            "OR json_extract(payload, '$.customer_id') = ?",
            (customer_id, customer_id),
        ).fetchall()
        values = {
            json.loads(payload).get(c) for (payload,) in rows for c in _PII
        } - {None}
        for value in sorted(values):
            old, new = _dumps(value), _dumps(secrets.token_hex(16))  # as stored: JSON text
            for table, column in (("events", "payload"), ("first_seen", "value"), ("first_seen", "entity"),
                                  ("bases", "entity"), ("quarantine", "row")):  # fmt: skip
                conn.execute(
                    f"UPDATE {table} SET {column} = replace({column}, ?, ?) WHERE instr({column}, ?) > 0",
                    (old, new, old),
                )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    return len(values)
