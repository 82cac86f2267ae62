"""Batch engine: every feature of a feature set for every transaction, point in time, vectorised.

``compute_features`` evaluates the definitions of ``features.definitions`` over whole tables
with numpy, never looping over rows. The common trick: within a group of aggregations (one
entity index), events are sorted by (entity code, time) and every window question becomes "how
many events of entity ``c`` have a (shifted) time ``<= x``", answered by ``np.searchsorted`` on
one sorted composite int64 key ``code * span + time`` (times are first divided by the coarsest
unit that divides every timestamp and window, and clipped to the range the queries can tell
apart; when even that does not fit in int64, times are replaced by their rank among the query
thresholds). An event at ``e`` belongs to the window of a row at ``t`` iff ``e + a <= t < e + b``
(``Aggregation.offsets``), so a window is the index range ``[lo, hi)`` of the sorted events:

- counts are ``hi - lo``; sums come from float64 prefix sums made exact to rounding with
  Knuth's error-free two-sum (the rounding error of every step is recovered and accumulated in a
  second prefix sum), so window sums are accurate to ~1e-16 relative whatever the magnitude of
  the running total;
- max/min use a sparse table whose levels stop at the longest window (in rows), queries
  answered level by level so only two levels are alive at a time;
- std uses Chan et al.'s pairwise combination of (count, mean, M2) over the aligned power-of-two
  blocks covering the window (a segment tree walked bottom-up, vectorised over all rows), which
  is exact for constant windows and stable otherwise;
- nunique: the occurrences of each (entity, value) are merged into segments of query time where
  the value is in the window (consecutive occurrences closer than the window overlap), so the
  distinct count at ``t`` is ``#{segment starts <= t} - #{segment ends <= t}``; ``"all"`` keeps
  the first occurrence only;
- fraud counts: a bad transaction contributes from ``max(e + a, known_at + 1)`` to ``e + b``,
  again two sorted-array counts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.contracts import BAD_TRANSACTION_LABELS
from features.definitions import (
    ENTITIES,
    ROW_FEATURES,
    US_PER_HOUR,
    Aggregation,
    FeatureSet,
    Reference,
    compute_row_features,
    get_feature_set,
    row_feature_inputs,
)

_INT_LIMIT = 2**62
_FAR = 2**60  # stands for +infinity ("all" windows); clipped into the key range


def timestamps_us(values: Any) -> np.ndarray:
    """Convert timestamps (tz-aware, or naive meaning UTC) to int64 microseconds since the epoch."""
    s = pd.Series(values) if not isinstance(values, pd.Series) else values
    if not pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = pd.to_datetime(s, utc=True)
    if getattr(s.dt, "tz", None) is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    arr = s.to_numpy()
    if np.isnat(arr).any():
        raise ValueError("timestamps must not be null")
    return arr.astype("datetime64[us]").astype(np.int64)


def _time_unit(arrays: list[np.ndarray], spans: list[int]) -> int:
    """Coarsest of 1 min, 1 s, 1 ms, 1 us dividing every timestamp and window length."""
    for unit in (60_000_000, 1_000_000, 1_000):
        if all(s % unit == 0 for s in spans) and all(not (a % unit).any() for a in arrays if len(a)):
            return unit
    return 1


# --- Exact-to-rounding window sums -------------------------------------------------------------


class _PrefixSum:
    """Prefix sums of a float64 array, exact to rounding.

    Knuth's two-sum recovers the rounding error of every step of ``np.cumsum`` exactly; the
    errors get their own prefix sum. Both are packed into one complex array (real: running sum,
    imaginary: running error) so a window costs two gathers.
    """

    def __init__(self, x: np.ndarray) -> None:
        self.p = np.zeros(len(x) + 1, dtype=np.complex128)
        if not len(x):
            return
        s = np.cumsum(x)
        prev = np.empty_like(s)
        prev[0] = 0.0
        prev[1:] = s[:-1]
        bp = s - prev
        err = (prev - (s - bp)) + (x - bp)  # s + err == prev + x exactly
        self.p.real[1:] = s
        self.p.imag[1:] = np.cumsum(err)

    def window(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        d = self.p[hi] - self.p[lo]
        return d.real + d.imag


def _floor_log2(n: np.ndarray) -> np.ndarray:
    """floor(log2(n)) for positive integers below 2**53, from the float64 exponent bits."""
    return (n.astype(np.float64).view(np.int64) >> 52) - 1023


def _range_extremes(x: np.ndarray, ranges: list[tuple[np.ndarray, np.ndarray]], op: str) -> list[np.ndarray]:
    """max (or min) of ``x[lo:hi]`` for every (lo, hi) of every range list (NaN when empty).

    A sparse table: level j holds the extreme of ``x[i : i + 2**j]``, and a window of length n
    is covered by two (overlapping) blocks of level floor(log2 n). Levels are built one at a
    time, shared by all range lists, and dropped once used.
    """
    fn = np.maximum if op == "max" else np.minimum
    plans = []
    top = -1
    for lo, hi in ranges:
        idx = np.flatnonzero(hi > lo)
        k = _floor_log2(hi[idx] - lo[idx]) if len(idx) else np.zeros(0, np.int64)
        plans.append((np.full(len(lo), np.nan), idx, k))
        if len(k):
            top = max(top, int(k.max()))
    level = x
    for j in range(top + 1):
        for (out, idx, k), (lo, hi) in zip(plans, ranges, strict=True):
            sel = idx[k == j]
            if len(sel):
                out[sel] = fn(level[lo[sel]], level[hi[sel] - (1 << j)])
        if j < top:
            step = 1 << j
            level = fn(level[:-step], level[step:])
    return [out for out, _, _ in plans]


def _range_variances(
    x: np.ndarray, ranges: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]
) -> list[np.ndarray]:
    """Sample variance (ddof=1) of ``x[lo:hi]`` (plus ``extra`` when given) for every query.

    The window is cut into aligned power-of-two blocks (a segment tree walked bottom-up, all
    queries at once, level by level); each block's (mean, M2) is built pairwise (Chan et al.)
    and contributes its sums of ``(x - c)`` and ``(x - c)**2`` around a shift ``c`` taken from the
    window itself, so the final ``(S2 - S1**2 / n) / (n - 1)`` loses at most a factor ~n of
    precision, and a constant window gives exactly 0. NaN below two values.
    """
    states = []
    for lo, hi, extra in ranges:
        n = (hi - lo) + (0 if extra is None else 1)
        act = np.flatnonzero(n >= 2)
        c = x[lo[act]] if extra is None else extra[act]
        states.append(
            [
                act,
                lo[act].copy(),
                hi[act].copy(),
                c,
                np.arange(len(act)),
                np.zeros(len(act)),
                np.zeros(len(act)),
                n,
            ]
        )
    mean, m2, size = x, None, 1
    while any(len(st[4]) for st in states):
        for st in states:
            _, lv, rv, c, ids, s1, s2, _ = st
            if not len(ids):
                continue
            for side in (0, 1):
                if side == 0:
                    m = (lv & 1) == 1
                    node = lv[m]
                    lv[m] += 1
                else:
                    m = (rv & 1) == 1
                    rv[m] -= 1
                    node = rv[m]
                if not len(node):
                    continue
                q = ids[m]
                d = mean[node] - c[q]
                s1[q] += size * d
                s2[q] += size * d * d if m2 is None else m2[node] + size * d * d
            lv >>= 1
            rv >>= 1
            keep = lv < rv
            st[1], st[2], st[4] = lv[keep], rv[keep], ids[keep]
        if any(len(st[4]) for st in states):
            half = len(mean) // 2
            a, b = mean[0 : 2 * half : 2], mean[1 : 2 * half : 2]
            d = b - a
            m2 = (
                d * d * (size / 2)
                if m2 is None
                else m2[0 : 2 * half : 2] + m2[1 : 2 * half : 2] + d * d * (size / 2)
            )
            mean = (a + b) / 2
            size *= 2
    out = []
    for act, _, _, _, _, s1, s2, n in states:
        var = np.full(len(n), np.nan)
        k = n[act].astype(float)
        var[act] = np.maximum(s2 - s1 * s1 / k, 0.0) / (k - 1)
        out.append(var)
    return out


# --- Keys ----------------------------------------------------------------------------------------


def _factorize(values: Any) -> tuple[np.ndarray, int]:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64), len(uniques)


def _combine_codes(parts: list[tuple[np.ndarray, int]]) -> tuple[np.ndarray, int]:
    """Dense codes of a multi-column key from per-column codes (-1 where any part is null)."""
    codes, n = parts[0]
    if len(parts) == 1:
        return codes, n
    null = codes < 0
    combined = codes.copy()
    for c, k in parts[1:]:
        null |= c < 0
        combined = combined * k + c
    combined[null] = -1
    dense, n = _factorize(combined)
    dense[null] = -1
    return dense, n


def _run_starts(sorted_keys: np.ndarray) -> np.ndarray:
    """For each position of a sorted array, the first position holding the same key."""
    m = len(sorted_keys)
    new = np.empty(m, dtype=bool)
    if m:
        new[0] = True
        new[1:] = sorted_keys[1:] != sorted_keys[:-1]
    return np.maximum.accumulate(np.where(new, np.arange(m), 0)) if m else np.zeros(0, np.int64)


def _sort_by_code(codes: np.ndarray) -> np.ndarray:
    """Stable order of ``codes`` (input order breaks ties), dropping null codes."""
    n = len(codes)
    keep = np.flatnonzero(codes >= 0)
    if not len(keep):
        return keep
    composite = codes[keep] * n + keep
    composite.sort()
    return composite % n


class _Keys:
    """Composite int64 keys (entity code, time) that order pairs and compare times within a code.

    Query thresholds (``t - shift``) lie inside ``[lo, hi]``; element times are clipped into it,
    which keeps every comparison with a threshold. When ``codes * span`` would overflow, times
    are replaced by their rank among all thresholds (``#{thresholds < x}``), which also keeps
    every ``element <= threshold`` comparison.
    """

    def __init__(self, n_codes: int, query_t: np.ndarray, shifts: list[int]) -> None:
        self.rank = None
        if len(query_t):
            lo = int(query_t.min()) - max(shifts) - 1
            hi = int(query_t.max()) - min(shifts) + 1
        else:
            lo, hi = 0, 1
        self.lo, self.hi = lo, hi
        self.span = hi - lo + 1
        if max(n_codes, 1) * self.span >= _INT_LIMIT:
            thresholds = np.unique(np.concatenate([query_t - s for s in set(shifts)]))
            self.rank = thresholds
            self.span = len(thresholds) + 1

    def element(self, codes: np.ndarray, x: np.ndarray) -> np.ndarray:
        if self.rank is None:
            x = np.minimum(np.maximum(x, self.lo), self.hi)
            return codes * self.span + (x - self.lo)
        return codes * self.span + np.searchsorted(self.rank, x, side="left")

    def threshold(self, codes: np.ndarray, x: np.ndarray) -> np.ndarray:
        if self.rank is None:
            return codes * self.span + (x - self.lo)
        return codes * self.span + np.searchsorted(self.rank, x, side="left")

    def start(self, codes: np.ndarray) -> np.ndarray:
        """Key below every key of ``codes`` (for 'how many elements have a smaller code')."""
        return codes * self.span


def _count_le(sorted_keys: np.ndarray, keys: np.ndarray) -> np.ndarray:
    return np.searchsorted(sorted_keys, keys, side="right")


# --- Inputs --------------------------------------------------------------------------------------


class _Stream:
    """One input table in time order: scaled times, columns and cached factorizations."""

    def __init__(
        self, frame: pd.DataFrame, order: np.ndarray, t: np.ndarray, extra: dict[str, np.ndarray]
    ) -> None:
        self.frame, self.order, self.t, self.extra = frame, order, t, extra
        self._codes: dict[str, tuple[np.ndarray, int]] = {}

    def subset(self, mask: np.ndarray) -> _Stream:
        """The rows (in time order) where ``mask`` (time order) holds; shares the code cache."""
        sub = _Stream(self.frame, self.order[mask], self.t[mask], self.extra)
        sub._codes = self._codes
        return sub

    def series(self, col: str) -> Any:
        """Column ``col`` in original order (keeps extension dtypes for fast factorizing)."""
        if col in self.extra:
            return self.extra[col]
        return self.frame[col].reset_index(drop=True)

    def codes(self, col: str) -> tuple[np.ndarray, int]:
        """Factorized ``col`` in original order (cached: one factorization per column)."""
        if col not in self._codes:
            self._codes[col] = _factorize(self.series(col))
        return self._codes[col]

    def numeric(self, col: str) -> np.ndarray:
        """Float column in time order."""
        if col in self.extra:
            values = self.extra[col]
        else:
            values = self.frame[col].to_numpy(dtype=float, na_value=np.nan)
        return np.asarray(values, dtype=float)[self.order]


def _tables(data: Any, account_events: Any, labels: Any) -> tuple[pd.DataFrame, Any, Any]:
    if isinstance(data, pd.DataFrame):
        return data, account_events, labels
    tables = getattr(data, "tables", data)
    if not isinstance(tables, Mapping) or "transactions" not in tables:
        raise TypeError("data must be a transactions DataFrame or a mapping with a 'transactions' table")
    ae = account_events if account_events is not None else tables.get("account_events")
    lb = labels if labels is not None else tables.get("labels")
    return tables["transactions"], ae, lb


def _bad_known_at(transaction_ids: pd.Series, labels: pd.DataFrame) -> np.ndarray:
    """Per transaction (original order), the earliest known_at (us) of a bad label, or int64 max."""
    out = np.full(len(transaction_ids), np.iinfo(np.int64).max, dtype=np.int64)
    if labels is None or not len(labels):
        return out
    bad = labels[(labels["entity_type"] == "transaction") & labels["label"].isin(BAD_TRANSACTION_LABELS)]
    if not len(bad):
        return out
    known = timestamps_us(bad["known_at"])
    ids = pd.Index(transaction_ids)
    if not ids.is_unique:
        raise ValueError("transaction_id must be unique to attach labels")
    ent = bad["entity_id"]
    if ids.dtype.kind != pd.Index(ent).dtype.kind:
        ids, ent = ids.astype(str), ent.astype(str)
    pos = ids.get_indexer(ent)
    ok = pos >= 0
    np.minimum.at(out, pos[ok], known[ok])
    return out


# --- The engine ----------------------------------------------------------------------------------


def compute_features(
    data: Any,
    feature_set: str | FeatureSet = "fraud_v1",
    *,
    account_events: pd.DataFrame | None = None,
    labels: pd.DataFrame | None = None,
    fx_rates: Any = None,
    goods_categories: Any = None,
) -> pd.DataFrame:
    """Compute a feature set for every transaction, point in time.

    Each row sees only events strictly before its own ``occurred_at`` (and labels known
    strictly before it), as defined in ``features.definitions``; the input order of rows never
    matters, ties included.

    Args:
        data: the ``transactions`` DataFrame, or a mapping of tables (``transactions`` and, when
            the set needs them, ``account_events`` and ``labels``), e.g. the output of
            ``features.adapters.fdh.load_fdh`` or of ``features.synthetic.generate``.
        feature_set: a registered set name (``"fraud_v1"``, ``"fdh_baseline"``, ``"fdh_v1"``)
            or a ``FeatureSet``.
        account_events: account events table (overrides the one in ``data``).
        labels: labels table (overrides the one in ``data``).
        fx_rates: ``currency, usd_per_unit`` table or mapping; default the committed reference.
        goods_categories: ``category, reference_unit_price_usd`` table or mapping; default the
            committed reference.

    Returns:
        One row per transaction, in the input order (default RangeIndex): ``transaction_id``,
        then one float64 column per feature in ``FeatureSet.feature_names`` order (row-level
        features, then aggregations named ``{entity}_{measure}_{op}_{window}...``; see
        ``describe_feature_set`` for their meaning).

    Raises:
        ValueError: when a table the set needs is missing, a timestamp is null, a currency has
            no rate, a numeric measure is null, or a single-currency set sees several currencies.
    """
    fs = get_feature_set(feature_set)
    txn, ae, lb = _tables(data, account_events, labels)
    if "account_events" in fs.sources and ae is None:
        raise ValueError(f"{fs.name} needs the account_events table (an empty one is fine)")
    if "labels" in fs.sources and lb is None:
        raise ValueError(f"{fs.name} needs the labels table (an empty one is fine)")
    if fs.single_currency and len(txn) and txn["currency"].nunique(dropna=False) > 1:
        raise ValueError(
            f"{fs.name} aggregates amounts in their own currency: all transactions must share one"
        )
    reference = Reference(fx_rates, goods_categories)
    n = len(txn)
    t_us = timestamps_us(txn["occurred_at"])

    # Row-level features and derived measure columns (amount_usd), original order.
    measure_cols = {a.column for a in fs.aggregations if a.source == "transactions" and a.column}
    derived = [c for c in measure_cols if c in ROW_FEATURES]
    names = list(dict.fromkeys([*fs.row_features, *derived]))
    inputs = {c: txn[c].to_numpy() for c in row_feature_inputs(names) if c != "occurred_at_us"}
    inputs["occurred_at_us"] = t_us
    row = compute_row_features(names, inputs, reference) if n else {k: np.zeros(0) for k in names}

    # Scale all times to the coarsest exact unit.
    ae_t = (
        timestamps_us(ae["occurred_at"])
        if "account_events" in fs.sources and len(ae)
        else np.zeros(0, np.int64)
    )
    known = _bad_known_at(txn["transaction_id"], lb) if "labels" in fs.sources else None
    spans = [s for a in fs.aggregations for s in (a.window_us or 0, a.delay_us)]
    known_finite = known[known != np.iinfo(np.int64).max] if known is not None else np.zeros(0, np.int64)
    unit = _time_unit([t_us, ae_t, known_finite], spans)

    order = np.argsort(t_us, kind="stable")
    txn_stream = _Stream(txn, order, t_us[order] // unit, row)
    ae_stream = None
    if "account_events" in fs.sources:
        ae_order = np.argsort(ae_t, kind="stable")
        ae_stream = _Stream(ae, ae_order, ae_t[ae_order] // unit, {})
    known_scaled = None
    if known is not None:
        finite = known != np.iinfo(np.int64).max
        known_scaled = np.where(finite, known // unit, _FAR)[order]

    out: dict[str, np.ndarray] = {name: np.asarray(row[name], dtype=float) for name in fs.row_features}
    groups: dict[tuple, list[Aggregation]] = {}
    for agg in fs.aggregations:
        groups.setdefault(agg.group, []).append(agg)
    for (entity, source, event_type), aggs in groups.items():
        stream = txn_stream if source == "transactions" else ae_stream
        assert stream is not None
        if event_type is not None:
            stream = stream.subset((stream.frame["event_type"].to_numpy() == event_type)[stream.order])
        results = _Group(entity, source, aggs, txn_stream, stream, known_scaled, unit).run()
        for agg in aggs:
            dest, values = results[agg.name]
            col = np.empty(n) if len(dest) == n else np.full(n, np.nan)  # rows without a key: NaN
            col[dest] = values
            if agg.fill is not None:
                col[dest[np.isnan(values)]] = agg.fill
            out[agg.name] = col

    frame = pd.DataFrame({"transaction_id": txn["transaction_id"].reset_index(drop=True)})
    features = pd.DataFrame({name: out[name] for name in fs.feature_names}, index=frame.index)
    return pd.concat([frame, features], axis=1)


class _Group:
    """All aggregations of one (entity, source, event type): one shared sorted index.

    Queries are the transactions sorted by (entity code, time); the source is the stream's
    events sorted the same way (for a transactions source, the very same rows).
    """

    def __init__(
        self,
        entity: str,
        source: str,
        aggs: list[Aggregation],
        txn: _Stream,
        src: _Stream,
        known: np.ndarray | None,
        unit: int,
    ) -> None:
        self.aggs, self.unit, self.known, self.txn, self.src = aggs, unit, known, txn, src
        self.self_join = source == "transactions"
        q_cols = ENTITIES[entity]["transactions"]
        if self.self_join:
            codes, n_codes = _combine_codes([txn.codes(c) for c in q_cols])
            qc_time = codes[txn.order]
        else:
            parts_q, parts_s = [], []
            for qcol, scol in zip(q_cols, ENTITIES[entity][source], strict=True):
                s_values = src.frame[scol].reset_index(drop=True).iloc[src.order].reset_index(drop=True)
                joint = pd.concat([txn.series(qcol), s_values], ignore_index=True)
                c, k = _factorize(joint)
                parts_q.append((c[: len(txn.order)], k))
                parts_s.append((c[len(txn.order) :], k))
            both, n_codes = _combine_codes(
                [(np.concatenate([q[0], s_[0]]), q[1]) for q, s_ in zip(parts_q, parts_s, strict=True)]
            )
            qc_time = both[: len(txn.order)][txn.order]
            sc = both[len(txn.order) :]  # already in the source's time order
        qperm = _sort_by_code(qc_time)
        self.q_pos = qperm  # time-order positions of the queries
        self.dest = txn.order[qperm]  # their original row positions
        self.qc = qc_time[qperm]
        self.qt = txn.t[qperm]
        if self.self_join:
            self.sc, self.st, self.s_pos = self.qc, self.qt, self.q_pos
        else:
            sperm = _sort_by_code(sc)
            self.sc, self.st, self.s_pos = sc[sperm], src.t[sperm], sperm
        shifts = [0]
        for a in aggs:
            lo_off, hi_off = self.offsets(a)
            shifts.append(lo_off)
            if hi_off is not None:
                shifts.append(hi_off)
        self.keys = _Keys(n_codes, self.qt, shifts)
        self.skey = self.keys.element(self.sc, self.st)
        self._cache: dict[Any, Any] = {}

    # -- shared pieces --------------------------------------------------------------------------

    def offsets(self, agg: Aggregation) -> tuple[int, int | None]:
        a, b = agg.offsets(self.unit)
        return a // self.unit, (None if b is None else b // self.unit)

    def cached(self, key: Any, make: Any) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def upper(self, a: int) -> np.ndarray:
        """Per query, one past the last source event with ``e + a <= t``."""

        def make() -> np.ndarray:
            if self.self_join and a == 1:
                return _run_starts(self.skey)  # events strictly before t: up to the tie run
            return _count_le(self.skey, self.keys.threshold(self.qc, self.qt - a))

        return self.cached(("upper", a), make)

    def lower(self, b: int | None) -> np.ndarray:
        """Per query, the first source event with ``t < e + b`` (the entity's first for "all")."""

        def make() -> np.ndarray:
            if b is None:
                if self.self_join:
                    return _run_starts(self.sc)
                return np.searchsorted(self.skey, self.keys.start(self.qc), side="left")
            return _count_le(self.skey, self.keys.threshold(self.qc, self.qt - b))

        return self.cached(("lower", b), make)

    def ranges(self, agg: Aggregation) -> tuple[np.ndarray, np.ndarray]:
        a, b = self.offsets(agg)
        return self.lower(b), self.upper(a)

    def source_values(self, col: str) -> np.ndarray:
        def make() -> np.ndarray:
            values = self.src.numeric(col)[self.s_pos]
            if np.isnan(values).any():
                raise ValueError(f"numeric measure {col} has null values")
            return values

        return self.cached(("values", col), make)

    def current_values(self, col: str) -> np.ndarray:
        return self.cached(("current", col), lambda: self.txn.numeric(col)[self.q_pos])

    def window_sum(self, agg: Aggregation) -> np.ndarray:
        col = agg.column
        prefix = self.cached(("prefix", col), lambda: _PrefixSum(self.source_values(col)))
        return self.cached(("sum", col, self.offsets(agg)), lambda: prefix.window(*self.ranges(agg)))

    # -- evaluation -----------------------------------------------------------------------------

    def run(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        self._batched_ranges()
        return {agg.name: (self.dest, self.evaluate(agg)) for agg in self.aggs}

    def _batched_ranges(self) -> None:
        """max/min/std of all windows at once: they share the sparse-table / tree levels."""
        wanted: dict[tuple[str, str], list[Aggregation]] = {}
        for agg in self.aggs:
            if agg.op in ("max", "min", "std"):
                wanted.setdefault((agg.column, agg.op), []).append(agg)
        for (col, op), aggs in wanted.items():
            x = self.source_values(col)
            if op == "std":
                reqs = [
                    (*self.ranges(a), self.current_values(col) if a.include_current else None) for a in aggs
                ]
                results = _range_variances(x, reqs)
            else:
                results = _range_extremes(x, [self.ranges(a) for a in aggs], op)
            for agg, res in zip(aggs, results, strict=True):
                self._cache[("batched", agg.name)] = res

    def evaluate(self, agg: Aggregation) -> np.ndarray:
        a, b = self.offsets(agg)
        op = agg.op
        if op == "nunique":
            return self.nunique(agg, a, b)
        lo, hi = self.ranges(agg)
        if op in ("fraud_count", "fraud_rate"):
            bad = self.fraud_count(a, b)
            if op == "fraud_count":
                return bad
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(hi > lo, bad / np.maximum(hi - lo, 1), np.nan)
        count = (hi - lo).astype(float)
        cur = agg.include_current
        if op == "count":
            return count + 1.0 if cur else count
        if op == "since_last":
            if not len(self.st):
                return np.full(len(self.qt), np.nan)
            last = np.where(hi > lo, self.st[np.maximum(hi - 1, 0)], 0)
            return np.where(hi > lo, (self.qt - last) * (self.unit / US_PER_HOUR), np.nan)
        col = agg.column
        assert col is not None
        if op in ("sum", "mean", "ratio"):
            total = self.window_sum(agg)
            if cur:
                total, count = total + self.current_values(col), count + 1.0
            if op == "sum":
                return total
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(count > 0, total / np.maximum(count, 1.0), np.nan)
                if op == "mean":
                    return mean
                return np.where(mean != 0, self.current_values(col) / mean, np.nan)
        res = self._cache.pop(("batched", agg.name))
        if op in ("max", "min"):
            if cur:
                res = (np.fmax if op == "max" else np.fmin)(res, self.current_values(col))
            return res
        if op == "std":
            return np.sqrt(res)
        raise AssertionError(op)

    def nunique(self, agg: Aggregation, a: int, b: int | None) -> np.ndarray:
        col = agg.column
        assert col is not None
        m = len(self.sc)
        if self.self_join:
            vcodes_all, n_values = self.src.codes(col)
            vcodes = vcodes_all[self.src.order[self.s_pos]]
        else:
            values = self.src.frame[col].reset_index(drop=True).iloc[self.src.order[self.s_pos]]
            vcodes, n_values = _factorize(values.reset_index(drop=True))
        keep = np.flatnonzero(vcodes >= 0)
        # Sort the occurrences by (entity, value); positions (time order within an entity) break ties.
        pair = self.sc[keep] * max(n_values, 1) + vcodes[keep]
        if (int(self.sc.max()) + 1 if m else 1) * max(n_values, 1) * max(m, 1) >= _INT_LIMIT:
            pair, _ = _factorize(pair)
        composite = pair * m + keep
        composite.sort()
        occ = composite % m
        pair_sorted = composite // m
        code, e = self.sc[occ], self.st[occ]
        first = np.ones(len(occ), dtype=bool)
        first[1:] = pair_sorted[1:] != pair_sorted[:-1]
        start_t = e + a
        qk = self.cached("query_keys", lambda: self.keys.threshold(self.qc, self.qt))
        if b is None:
            starts = np.sort(self.keys.element(code[first], start_t[first]))
            return (_count_le(starts, qk) - np.searchsorted(starts, self.keys.start(self.qc))).astype(float)
        end_t = e + b
        new_seg = first.copy()
        new_seg[1:] |= start_t[1:] > end_t[:-1]  # a gap: the value left the window in between
        last = np.empty_like(new_seg)
        last[:-1] = new_seg[1:]
        if len(last):
            last[-1] = True
        starts = np.sort(self.keys.element(code[new_seg], start_t[new_seg]))
        ends = np.sort(self.keys.element(code[last], end_t[last]))
        return (_count_le(starts, qk) - _count_le(ends, qk)).astype(float)

    def fraud_count(self, a: int, b: int | None) -> np.ndarray:
        def make() -> np.ndarray:
            assert self.known is not None and b is not None
            k = self.known[self.s_pos]
            bad = np.flatnonzero(k < _FAR)
            e, code = self.st[bad], self.sc[bad]
            start = np.maximum(e + a, k[bad] + 1)  # in the window and its label known strictly before t
            end = e + b
            ok = start < end
            starts = np.sort(self.keys.element(code[ok], start[ok]))
            ends = np.sort(self.keys.element(code[ok], end[ok]))
            qk = self.cached("query_keys", lambda: self.keys.threshold(self.qc, self.qt))
            return (_count_le(starts, qk) - _count_le(ends, qk)).astype(float)

        return self.cached(("fraud", a, b), make)


__all__ = ["compute_features", "timestamps_us"]
