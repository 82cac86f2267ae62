"""Seeding an empty online feature store from a whole history at once (``OnlineFeatureStore.bulk_apply``).

Skips the per-event work: row features for all transactions at once, each entity log built once
from its events (folding into bases exactly what the hourly pruning would have folded), and every
sqlite row written in one transaction at the end. The result is the state the one-by-one path
leaves, row for row; it is all or nothing (a failure leaves the store empty), and it refuses a
store that holds state. Apart from the store because it re-derives, in three passes over the
whole log, what the store's one-by-one methods do event by event.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.contracts import BAD_TRANSACTION_LABELS
from features.definitions import compute_row_features
from features.online.events import _check_derived, _check_numbers, _event_time, _floats, _isnull
from features.online.schema import _dumps
from features.online.state import _INF, _exact, _Group, _Log, _Segments

if TYPE_CHECKING:  # for annotations only: the store imports this module to seed itself
    from features.online.store import OnlineFeatureStore


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
