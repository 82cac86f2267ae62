"""Rebuilding the online feature state's memory from its sqlite file, quarantining rows it cannot apply.

A stored row that cannot be applied when memory is rebuilt (not JSON, a measure missing or not
finite, a time out of the contract's range, any error while applying it) is moved to the
``quarantine`` table and logged, and the store starts without it. Apart from the store because
this is the one path that reads the file back (at start, after a failed write, on ``reload``)
and the one that must cope with anything the file holds.
"""

from __future__ import annotations

import json
import logging
import math
import time
from typing import Any

from features.online.events import _TIME_BOUNDS
from features.online.schema import _entity, _json_object, _meta_time, _sqlite_text
from features.online.state import _Group, _Log

# What _load rebuilds (and puts back when it fails).
_MEMORY = ("_logs", "_txns", "_acct", "_bad", "_heap", "_watermark", "_pruned_at", "_currency", "_seq")
# The package's logger, as before the split: logging set up for ``features.online`` applies.
_logger = logging.getLogger(__package__)


class _Recovery:
    """The rebuild of ``OnlineFeatureStore``'s memory from sqlite and the quarantine of what fails.

    A base class of the store, not used alone: it works on the store's connection, compiled groups
    and memory state, and applies rows through ``_Windows``.
    """

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
