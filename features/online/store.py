"""``OnlineFeatureStore``: the online engine's API, its sqlite persistence, staged writes and pruning.

State lives in memory (dicts and lists keyed by entity, ``features.online.state``) and is written
through to sqlite (WAL mode) in one sqlite transaction per applied event: a failure leaves both
sqlite and memory as before the event, and a restart rebuilds the same memory state from sqlite
(``features.online.recovery``). Pruning runs as its own transaction. With ``synchronous=NORMAL`` a
committed event survives a crash of the process; a power loss may lose the last few committed
events, but never half of one. With ``pseudonymise`` the personal columns (device ids, IPs) are
kept, keyed and compared only as pseudonyms.
"""

from __future__ import annotations

import bisect
import dataclasses
import gc
import heapq
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contracts import BAD_TRANSACTION_LABELS
from features.definitions import (
    ROW_FEATURES,
    Aggregation,
    FeatureSet,
    Reference,
    compute_row_features,
    get_feature_set,
    parse_duration,
    row_feature_inputs,
)
from features.online.events import (
    _PII,
    _check_derived,
    _check_numbers,
    _event_time,
    _floats,
    _isnull,
    _pseudonym_fingerprint,
    timestamp_us,
)
from features.online.recovery import _Recovery
from features.online.schema import _DDL, _SCHEMA_VERSION, _dumps
from features.online.seeding import _Bulk
from features.online.state import _evaluator, _Group, _Log, _Windows


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


class OnlineFeatureStore(_Windows, _Recovery):
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
