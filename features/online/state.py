"""The online engine's in-memory windows: per-entity event logs, the kernels that evaluate features on them.

Per aggregation group (entity, source, event type) and entity key, the entity's recent events
(within the longest finite window plus the allowed lateness), in time order, with exact prefix
sums: every float is turned into an exact integer (a multiple of 2**-1074) so window sums, means
and variances are exact until the final, correctly rounded division. Windows are found by
bisection on the event times, so a query may come at any time the state still covers and the
answer never depends on the order queries arrive in. Older events are pruned lazily; what
"all"-history features need of them is folded into per-entity bases (count, sums, max/min, last
time), and first occurrences of values (distinct counts over all history) are kept for good.
Distinct counts over finite windows and fraud counts use the same "segments of query time"
formulation as the batch engine, on sorted lists. An event older than the newest of its log
(within the allowed lateness) is inserted in place: the prefix sums after it shift by its value
and its window merges into its value's runs, so a late event costs an append plus the few events
after it.

Apart from the store (``features.online.store``): nothing here touches sqlite; the store writes
events through to its file and calls ``_Windows`` to apply them to memory, and the bulk seeding
(``features.online.seeding``) builds the same logs at once.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable, Mapping
from typing import Any

from features.definitions import ENTITIES, US_PER_HOUR, Aggregation
from features.online.events import _isnull

_EXP = 1074  # every finite float64 is an integer multiple of 2**-1074
_NAN = float("nan")
_INF = float("inf")


def _exact(x: float) -> int:
    """``x * 2**1074`` as an exact integer."""
    num, den = x.as_integer_ratio()
    return num << (_EXP + 1 - den.bit_length())


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


# --- Applying events to the windows ----------------------------------------------------------------


class _Windows:
    """The in-memory part of ``OnlineFeatureStore``: features from its logs, events applied to them.

    A base class of the store, not used alone: it works on the store's compiled groups (``_groups``,
    ``_txn_groups``, ``_ae_groups``, ``_evaluators``, ``_derived``, ``_names``) and memory state
    (``_logs``, ``_txns``, ``_acct``, ``_bad``, ``_heap``), which ``OnlineFeatureStore`` sets up.
    """

    _logs: dict[str, dict[tuple, _Log]]

    @staticmethod
    def _key(event: Mapping[str, Any], cols: tuple[str, ...]) -> tuple | None:
        key = tuple(event.get(c) for c in cols)
        return None if any(_isnull(v) for v in key) else key

    def _entity_log(self, g: _Group, rec: Mapping[str, Any]) -> tuple[tuple, _Log] | None:
        """``(key, log)`` of the entity ``rec`` names in group ``g`` (a new, empty log when it has none),
        or None when a key column is null."""
        key = self._key(rec, g.source_cols)
        if key is None:
            return None
        logs = self._logs[g.gid]
        log = logs.get(key)
        if log is None:
            log = logs[key] = g.new_log(None)
        return key, log

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

    def _apply_txn_memory(self, txn_id: str, t: int, rec: Mapping[str, Any], seq: int) -> None:
        fraud_keys = []
        touched = []
        nums = {c: rec[c] for c in self._derived}
        for g in self._txn_groups:
            found = self._entity_log(g, rec)
            if found is None:
                continue
            key, log = found
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
            found = self._entity_log(g, rec)
            if found is None:
                continue
            key, log = found
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
