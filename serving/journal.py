"""Idempotency keys and the outbox of the scoring service, kept in the decision log's database.

Why: a request touches three stores (the online feature state, the customer history and, for
onboardings, the profile store) besides the decision log, each its own sqlite file; sqlite cannot
commit across files atomically in WAL mode. So the decision log's transaction is the one commit
point of a request, and this journal rides in it (``DecisionLog.append_receipt(..., journal=...)``):

- ``idempotency``: one row per request id (``order:<transaction_id>``, ``account_event:<event_id>``,
  ``label:<label_id>``, ``onboard:<customer_id>``) with a keyed digest of the request body, a short
  keyed digest per field (to name the fields a conflicting retry changed without storing their
  values), the decision ids the request produced, and when. A retry with the same body gets the
  original answer; another body with the same id is a conflict (HTTP 409).
- ``outbox``: what the request must still do to the other stores (its events, or its profile),
  sealed with the state key (it holds personal data, e.g. a device id or a profile). After the
  commit the Scorer applies it to the stores (each ignores what it already holds) and marks it
  done; the rows marked done are deleted in the next journal write (no extra fsync per
  request). At start-up, ``pending`` lists what a crash interrupted: the Scorer applies it again
  before serving, so every request is in every store or in none.

The digests are HMAC-SHA256 under the pseudonym salt: equal bodies give equal digests, and the
table reveals nothing about the values (a plain hash of a phone number could be reversed by
enumeration).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import sqlite3
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from serving.decision_log import DecisionLog
from serving.decision_log.canonical import decode_json, encode_json

log = logging.getLogger(__name__)

__all__ = ["Cipher", "Claim", "Journal", "JournalEntry", "body_digests", "changed_fields"]

FIELD_DIGEST_HEX = 16  # per-field digests only tell "same or changed"; 64 bits is plenty

_DDL = (
    "CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, digest TEXT NOT NULL, "
    "fields TEXT NOT NULL, decision_ids TEXT NOT NULL, created_at TEXT NOT NULL, response TEXT)",
    "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at TEXT NOT NULL, "
    "payload BLOB NOT NULL)",
    # outbox rows that could not be applied (cannot be opened, or a store refuses them): kept for
    # people to look at, never retried, so that one bad row cannot stop every start
    "CREATE TABLE IF NOT EXISTS outbox_quarantine (id INTEGER PRIMARY KEY, created_at TEXT NOT NULL, "
    "payload BLOB NOT NULL, reason TEXT NOT NULL, quarantined_at TEXT NOT NULL)",
)


class Cipher(Protocol):
    """Authenticated encryption of state values under the state key (``serving.profiles.ProfileCipher``),
    each bound to its place ``(kind, owner, number)`` so that it cannot be moved to another row."""

    def seal(self, kind: str, customer_id: str, version: int, value: Any) -> bytes: ...

    def open(self, kind: str, customer_id: str, version: int, blob: Any) -> Any: ...


class JournalEntry(NamedTuple):
    """One request id: its body digests and the decisions it produced.

    Attributes:
        key: ``<kind>:<id>``, e.g. ``order:T-1``.
        digest: keyed digest of the whole body.
        fields: keyed short digest per top-level field.
        decision_ids: the decisions of the request (empty for events).
    """

    key: str
    digest: str
    fields: dict[str, str]
    decision_ids: tuple[str, ...] = ()


class Claim(NamedTuple):
    """The outcome of ``Journal.claim`` for one request id."""

    outcome: str  # new, done, wait or conflict
    entry: JournalEntry | None = None
    event: threading.Event | None = None
    fields: list[str] | None = None


def body_digests(body: Mapping[str, Any], salt: bytes) -> tuple[str, dict[str, str]]:
    """Keyed digests of a request body (as validated, JSON-ready: ``model_dump(mode="json")``) and of
    each of its fields; the body's digest covers every field's full digest, in name order."""
    dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode
    # hmac.digest: the one-shot C path (about 1 µs; an hmac.new object costs several)
    full = {k: hmac.digest(salt, dumps(v).encode("utf-8"), "sha256") for k, v in body.items()}
    whole = hmac.new(salt, b"".join(k.encode("utf-8") + b"\0" + full[k] for k in sorted(full)), hashlib.sha256)
    return whole.hexdigest(), {k: d.hex()[:FIELD_DIGEST_HEX] for k, d in full.items()}


def changed_fields(old: JournalEntry, fields: Mapping[str, str]) -> list[str]:
    """The fields whose digest differs between a stored entry and a retry (sorted)."""
    return sorted(k for k in set(old.fields) | set(fields) if old.fields.get(k) != fields.get(k))


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class Journal:
    """The idempotency table and outbox in a decision log's file (see the module docstring).

    Args:
        log: the decision log whose transactions carry the journal.
        cipher: seals outbox payloads (they hold personal data).
        salt: key of the body digests (the pseudonym salt).
    """

    def __init__(self, log: DecisionLog, *, cipher: Cipher, salt: bytes):
        self.log = log
        self.cipher = cipher
        self.salt = salt
        self._done: list[int] = []
        self._done_lock = threading.Lock()
        self._flight: dict[str, tuple[JournalEntry, threading.Event]] = {}
        self._flight_lock = threading.Lock()
        log.append_many([], journal=lambda conn, rows: [conn.execute(s) for s in _DDL])
        path = Path(log.path).resolve()
        self._reader = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
        self._reader_lock = threading.Lock()

    def close(self) -> None:
        self._reader.close()

    # -- reading --

    def lookup(self, keys: list[str]) -> dict[str, JournalEntry]:
        """The stored entries of those keys that have one."""
        found: dict[str, JournalEntry] = {}
        with self._reader_lock:
            for i in range(0, len(keys), 500):  # sqlite's parameter limit
                part = keys[i : i + 500]
                rows = self._reader.execute(
                    f"SELECT key, digest, fields, decision_ids FROM idempotency WHERE key IN "
                    f"({','.join('?' * len(part))})",
                    part,
                ).fetchall()
                for key, digest, fields, ids in rows:
                    found[key] = JournalEntry(key, digest, json.loads(fields), tuple(json.loads(ids)))
        return found

    def pending(self) -> list[tuple[int, Any]]:
        """``(outbox id, effects)`` a crash left unapplied, oldest first; rows that cannot be opened
        are quarantined (``quarantine``) instead."""
        with self._reader_lock:
            rows = self._reader.execute("SELECT id, payload FROM outbox ORDER BY id").fetchall()
        out = []
        for i, payload in rows:
            try:
                out.append((i, self._open(i, payload)))
            except Exception as exc:
                self.quarantine(i, f"cannot be opened: {exc}")
        return out

    def quarantine(self, outbox_id: int, reason: str) -> None:
        """Move an outbox row aside with the reason (logged; no values): it is never applied."""
        log.warning("outbox row %d quarantined: %s", outbox_id, reason)

        def move(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO outbox_quarantine SELECT id, created_at, payload, ?, ? FROM outbox "
                "WHERE id = ?",
                (reason, _now(), outbox_id),
            )
            conn.execute("DELETE FROM outbox WHERE id = ?", (outbox_id,))

        self.log.append_many([], journal=move)

    def quarantined(self) -> list[tuple[int, str]]:
        """``(outbox id, reason)`` of the quarantined rows."""
        with self._reader_lock:
            return self._reader.execute("SELECT id, reason FROM outbox_quarantine ORDER BY id").fetchall()

    # -- writing (inside the decision log's transaction) --

    def writer(
        self,
        entries: list[tuple[JournalEntry, int | None]],
        effects: Any,
        receipt: list[int],
        response: Mapping[str, Any] | None = None,
    ) -> Any:
        """The ``journal`` write of one request for ``DecisionLog`` appends.

        Args:
            entries: each entry with the index (in the appended rows) of its decision, or None.
            effects: what the stores must get (JSON-able with ``encode_json``), sealed in the outbox.
            receipt: receives the outbox id once written.
            response: the answer to give a retry, when the decision log alone cannot rebuild it
                (onboarding: the profile version); no personal data.
        """
        with self._done_lock:
            # outbox rows already applied: deleted in this transaction. Should it fail, they stay
            # until the next start re-applies them, which the stores ignore (they hold them).
            done, self._done = self._done, []

        def write(conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
            now = _now()
            extra = None if response is None else encode_json(dict(response))
            conn.executemany(
                # REPLACE: an onboarding key holds the customer's latest profile (a changed profile
                # is an update, not a conflict); other keys are new here (``claim`` made sure)
                "INSERT OR REPLACE INTO idempotency VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        e.key,
                        e.digest,
                        json.dumps(e.fields, sort_keys=True),
                        json.dumps([rows[i]["decision_id"]] if i is not None else list(e.decision_ids)),
                        now,
                        extra,
                    )
                    for e, i in entries
                ],
            )
            cur = conn.execute("INSERT INTO outbox (created_at, payload) VALUES (?, x'')", (now,))
            outbox_id = int(cur.lastrowid)
            # sealed with its own id as associated data, so a payload cannot be moved to another row
            conn.execute(
                "UPDATE outbox SET payload = ? WHERE id = ?", (self._seal(outbox_id, effects), outbox_id)
            )
            if done:
                conn.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in done])
            receipt[:] = [outbox_id]

        return write

    # -- requests in flight --

    def claim(self, items: list[tuple[JournalEntry, bool]]) -> list[Claim]:
        """Claim request ids before applying them: one outcome per item, in order.

        Args:
            items: each entry with whether another body under the same key is a conflict (orders,
                events) or a new version (onboarding).

        Returns:
            Per item a ``Claim``: ``new`` (now in flight: the caller must ``release`` it, after
            its commit or on failure), ``done`` (an earlier identical request: ``entry`` holds it),
            ``wait`` (an identical request is in flight: wait on ``event``, then claim again), or
            ``conflict`` (``fields`` names what changed). When any item is not ``new``, nothing is
            claimed.
        """
        keys = [e.key for e, _ in items]
        with self._flight_lock:
            stored = self.lookup(keys)
            out = []
            for entry, strict in items:
                flying = self._flight.get(entry.key)
                old = flying[0] if flying is not None else stored.get(entry.key)
                if old is None or (not strict and old.digest != entry.digest and flying is None):
                    out.append(Claim("new"))
                elif old.digest != entry.digest:
                    out.append(Claim("conflict", fields=changed_fields(old, entry.fields)))
                elif flying is not None:
                    out.append(Claim("wait", event=flying[1]))
                else:
                    out.append(Claim("done", entry=old))
            if all(c.outcome == "new" for c in out):
                for entry, _ in items:
                    self._flight[entry.key] = (entry, threading.Event())
        return out

    def release(self, keys: list[str]) -> None:
        """End the claims of ``keys`` (committed, or failed): waiting retries look again."""
        with self._flight_lock:
            for key in keys:
                flying = self._flight.pop(key, None)
                if flying is not None:
                    flying[1].set()

    def response(self, key: str) -> dict[str, Any] | None:
        """The stored answer of a key (see ``writer``), or None."""
        with self._reader_lock:
            row = self._reader.execute("SELECT response FROM idempotency WHERE key = ?", (key,)).fetchone()
        return None if row is None or row[0] is None else decode_json(row[0])

    def mark_done(self, outbox_id: int) -> None:
        """The stores have the effects of ``outbox_id``: delete it with the next journal write."""
        with self._done_lock:
            self._done.append(outbox_id)

    def flush_done(self) -> None:
        """Delete the outbox rows marked done now (recovery, shutdown)."""
        with self._done_lock:
            done, self._done = self._done, []
        if done:
            self.log.append_many(
                [],
                journal=lambda conn, rows: conn.executemany(
                    "DELETE FROM outbox WHERE id = ?", [(i,) for i in done]
                ),
            )

    # -- sealing --

    def _seal(self, outbox_id: int, effects: Any) -> bytes:
        return self.cipher.seal("outbox", "", outbox_id, effects)

    def _open(self, outbox_id: int, payload: bytes) -> Any:
        return self.cipher.open("outbox", "", outbox_id, payload)
