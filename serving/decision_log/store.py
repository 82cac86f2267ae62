"""The decision log itself: ``DecisionLog``, appending decisions to its sqlite file and reading them back.

Appends (one by one, grouped across threads, or many in one transaction, each with an optional
journal write in the same transaction), anchoring the head on time, reading records; the record
format, anchors and verification live in their own modules beside it (see ``serving.decision_log``).

Durability and concurrency
    WAL journal with ``synchronous=FULL``: each append is one ``BEGIN IMMEDIATE`` transaction
    that fsyncs the WAL before it returns, so a decision the platform has been told about
    survives a crash or power loss. ``NORMAL`` skips that fsync (the database stays consistent,
    but the last decisions can vanish on power loss: a decision answered but never logged), which
    an audit log must not allow. The price is one fsync per commit: 0.1-0.2 ms on this machine's
    disk when idle, about 4 ms when other work keeps it busy; the rest of an append (validation,
    minimisation, exact JSON, hashing, the insert) is about 0.13 ms.
    ``BEGIN IMMEDIATE`` takes sqlite's write lock before the tail is read, so two processes never
    chain onto the same record; it is retried with short sleeps (sqlite's own busy handler backs
    off to 100 ms sleeps and starves one writer). A lock serialises the threads of one process
    over its one connection. ``group_commit=True`` commits the appends of concurrent threads in
    one transaction (one fsync) without weakening durability: every caller still returns only
    after its record is on disk (measured with 8 threads: 2,500 -> 3,600 appends/s on an idle
    disk, 490 -> 1,800 on a busy one). Processes cannot share a group commit; at high rates give each worker
    process its own log file (each its own chain, anchored separately).
"""

from __future__ import annotations

import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, NamedTuple

from serving.decision_log.anchors import (
    ANCHORS_ENV,
    DEFAULT_ANCHOR_EVERY,
    Anchor,
    AnchorsArg,
    _anchors_path,
    _append_line,
)
from serving.decision_log.canonical import encode_json
from serving.decision_log.keys import KEY_ENV, SALT_ENV, _secret, secret_from_env
from serving.decision_log.personal import DEFAULT_PII_FIELDS, _raw_pii, minimise_request
from serving.decision_log.records import (
    _HASHED,
    FORMAT_VERSION,
    DecisionInput,
    DecisionRecord,
    _canonical,
    _digest,
    _key_id,
    _utc_now,
    genesis_hash,
    new_decision_id,
)
from serving.decision_log.schema import _COLUMNS, _INSERT, _SCHEMA, _SEAL_META, _SELECT, _connect, _meta
from serving.decision_log.verify import VerifyReport, _header_problem, verify_path

_SYNCHRONOUS = ("FULL", "EXTRA", "NORMAL")

# The package's logger, as before the split: logging set up for ``serving.decision_log`` applies.
_log = logging.getLogger(__package__)


class DuplicateDecisionError(ValueError):
    """A decision id that is already in the log."""


class Receipt(NamedTuple):
    """Where an appended decision went: its ``seq``, ``decision_id``, ``created_at`` and ``hash``."""

    seq: int
    decision_id: str
    created_at: str
    hash: str


class _Prepared:
    """A validated, minimised and encoded decision waiting for its seq, time and hashes."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, Any]):
        self.fields = fields


# Extra writes run inside an append's transaction, given the connection and the rows just
# inserted (all or nothing with them): the Scorer's idempotency keys and outbox (serving.journal).
JournalWrite = Callable[[sqlite3.Connection, list[dict[str, Any]]], None]


class _Slot:
    """One thread's decision in a group commit."""

    __slots__ = ("prepared", "journal", "done", "row", "error")

    def __init__(self, prepared: _Prepared, journal: JournalWrite | None = None):
        self.prepared = prepared
        self.journal = journal
        self.done = False
        self.row: dict[str, Any] | None = None  # the stored row
        self.error: BaseException | None = None


def _begin_immediate(conn: sqlite3.Connection, timeout: float) -> None:
    """``BEGIN IMMEDIATE``, retried every 50-1000 µs (with jitter) until ``timeout`` seconds.

    sqlite's own busy handler backs off to sleeps of 100 ms, so under contention between
    processes one writer starves the other (measured with two processes appending: worst wait
    0.9-2.7 s); short sleeps keep waits near the other writer's transaction time (worst 39 ms).
    """
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + timeout
        delay = 50e-6
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 1e-3)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")


def _tail(conn: sqlite3.Connection, genesis: str) -> tuple[int, str]:
    row = conn.execute("SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1").fetchone()
    return (0, genesis) if row is None else (row[0], row[1])



class DecisionLog:
    """An append-only, hash-chained decision log in one sqlite file (see ``serving.decision_log``).

    Args:
        path: the sqlite file; its folder is created.
        key: HMAC key (at least 16 bytes) for a keyed chain, or ``None`` for plain SHA-256. A log
            is keyed or not from its first open; a wrong key is refused.
        salt: the secret pseudonym salt used to minimise requests; without it a request that
            still holds personal data is refused.
        pii_fields: keys of personal data in requests (``DEFAULT_PII_FIELDS`` when ``None``).
        synchronous: ``FULL`` (default: every append is on disk when it returns), ``EXTRA``, or
            ``NORMAL`` (faster, but the last appends can be lost on power loss).
        group_commit: commit the appends of concurrent threads together (same durability, fewer
            fsyncs).
        timeout: seconds to wait for another process's write lock before failing.
        anchors: the anchors file (outside the log's folder, which must exist) the head is appended
            to on open, every ``anchor_every`` records, on ``anchor()`` and on ``close()``; ``None``
            writes no anchors.
        anchor_every: records appended between two anchors (at least 1).

    Raises:
        ValueError: a bad option, a wrong key, a log of another format or with an altered header,
            or an anchors file inside the log's folder.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        key: bytes | str | None = None,
        salt: bytes | str | None = None,
        pii_fields: Iterable[str] | None = None,
        synchronous: Literal["FULL", "EXTRA", "NORMAL"] = "FULL",
        group_commit: bool = False,
        timeout: float = 30.0,
        anchors: str | Path | None = None,
        anchor_every: int = DEFAULT_ANCHOR_EVERY,
    ):
        if synchronous not in _SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {_SYNCHRONOUS}")
        if isinstance(anchor_every, bool) or not isinstance(anchor_every, int) or anchor_every < 1:
            raise ValueError(f"anchor_every must be a whole number >= 1, got {anchor_every!r}")
        self.path = Path(path)
        self.anchors = None if anchors is None else _anchors_path(anchors, self.path)
        self.anchor_every = anchor_every
        self.key = None if key is None else _secret(key, "key")
        self.salt = None if salt is None else _secret(salt, "salt")
        self.pii_fields = DEFAULT_PII_FIELDS if pii_fields is None else frozenset(pii_fields)
        self.synchronous = synchronous
        self.group_commit = group_commit
        self.timeout = timeout
        self._pid = -1
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._keyed_log = False
        self._meta: dict[str, str] = {}
        self._genesis = ""
        # Anchoring state: a counter bumped after each commit (outside the write lock) and a lock
        # that keeps the anchors file's lines whole and in order within this process.
        self._anchor_lock = threading.Lock()
        self._anchor_write_lock = threading.Lock()
        self._since_anchor = 0
        self.last_anchor: Anchor | None = None
        self.anchor_error: BaseException | None = None  # the last periodic anchor that failed
        with self._lock:
            self._connection()

    @classmethod
    def from_env(cls, path: str | Path, **kwargs: Any) -> DecisionLog:
        """Open a log with the key from ``KYCRISK_DECISION_LOG_KEY``, salt from ``KYCRISK_PII_SALT``
        and anchors file from ``KYCRISK_ANCHORS`` (each unless given in ``kwargs``)."""
        kwargs.setdefault("key", secret_from_env(KEY_ENV))
        kwargs.setdefault("salt", secret_from_env(SALT_ENV))
        kwargs.setdefault("anchors", os.environ.get(ANCHORS_ENV) or None)
        return cls(path, **kwargs)

    # -- connection --

    def _connection(self) -> sqlite3.Connection:
        """The writer connection, opened (and the schema created) on first use in each process."""
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        # A connection must not cross fork(): a child abandons the parent's and opens its own.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = _connect(self.path, read_only=False, timeout=self.timeout)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous}")
            _begin_immediate(conn, self.timeout)  # two processes opening a new file create it once
            self._create_schema(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            raise
        self._conn, self._pid = conn, os.getpid()
        if self.anchors is not None:
            # every writer's first head is anchored: a baseline, and seq 0 records a new log's identity
            with self._anchor_lock:
                self._since_anchor = 0
            self._write_anchor(*_tail(conn, self._genesis), "open")
        return conn

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        # executescript would COMMIT the open transaction; run the statements one by one inside it
        for statement in _SCHEMA:
            conn.execute(statement)
        meta = _meta(conn)
        if not meta:
            chain = "hmac-sha256" if self.key is not None else "sha256"
            rows = {
                "format_version": FORMAT_VERSION,
                "chain": chain,
                "created_at": _utc_now(),
                "log_id": os.urandom(16).hex(),
            }
            if self.key is not None:
                rows["key_id"] = _key_id(self.key)
            conn.executemany("INSERT INTO meta (name, value) VALUES (?, ?)", rows.items())
            meta = rows
        conn.execute(_SEAL_META)
        problem = _header_problem(meta)
        if problem is not None:
            raise ValueError(f"{self.path}: {problem.detail}")
        self._meta, self._genesis = meta, genesis_hash(meta)
        self._keyed_log = meta.get("chain") == "hmac-sha256"
        if self.key is not None:
            if not self._keyed_log:
                raise ValueError(f"{self.path} is an unkeyed log: open it without a key")
            if meta.get("key_id") != _key_id(self.key):
                raise ValueError(f"{self.path}: the key does not match the log's key id {meta.get('key_id')}")

    def close(self) -> None:
        """Anchor the head (event ``close``), then close the writer connection (a later call
        reopens it, anchoring again).

        The ``close`` anchor is written even when the head was just anchored: it says that this
        writer stopped there, so a record found after it was appended by something else.

        Raises:
            OSError: the closing anchor could not be written (the connection is closed anyway).
        """
        try:
            if self.anchors is not None and self._conn is not None and self._pid == os.getpid():
                self._anchor_now("close")
        finally:
            with self._lock:
                if self._conn is not None and self._pid == os.getpid():
                    self._conn.close()
                self._conn = None

    # -- anchors --

    @property
    def log_id(self) -> str:
        """The random id in the log's header: which file this is."""
        return self._meta["log_id"]

    @property
    def genesis(self) -> str:
        """The log's genesis hash: the first record's ``prev_hash`` (see ``genesis_hash``)."""
        return self._genesis

    def _write_anchor(self, seq: int, hash_: str, event: str) -> Anchor:
        assert self.anchors is not None
        meta = self._meta
        anchor = Anchor(
            seq=seq, hash=hash_, log_id=meta["log_id"], chain=meta["chain"], key_id=meta.get("key_id"),
            format_version=meta["format_version"], log_created_at=meta["created_at"], created_at=_utc_now(),
            event=event, log=str(self.path.resolve()),
        )  # fmt: skip
        with self._anchor_write_lock:
            _append_line(self.anchors, anchor.to_line())
            self.last_anchor = anchor
        return anchor

    def _anchor_now(self, event: str) -> Anchor:
        with self._anchor_lock:
            self._since_anchor = 0
        return self._write_anchor(*self.head(), event)

    def anchor(self) -> Anchor:
        """Append the current head to the anchors file now (and restart the ``anchor_every`` count).

        Returns:
            The anchor written.

        Raises:
            ValueError: the log was opened without an anchors file.
            OSError: the anchors file could not be written.
        """
        if self.anchors is None:
            raise ValueError(f"{self.path}: opened without an anchors file (anchors=..., {ANCHORS_ENV})")
        return self._anchor_now("manual")

    def _committed(self, seq: int, hash_: str, count: int) -> None:
        """Count records just committed; anchor the last of them once ``anchor_every`` have gone by.

        Runs after the commit, outside the write lock: the caller's decision is on disk whatever
        happens here. A failed anchor is logged and kept in ``anchor_error`` rather than raised, so
        that a full or unwritable anchors disk does not turn logged decisions into errors; the next
        attempt comes ``anchor_every`` records later, and ``close()`` raises.
        """
        if self.anchors is None:
            return
        with self._anchor_lock:
            self._since_anchor += count
            if self._since_anchor < self.anchor_every:
                return
            self._since_anchor = 0
        try:
            self._write_anchor(seq, hash_, "every")
        except OSError as exc:
            self.anchor_error = exc
            _log.error("decision log %s: could not write an anchor to %s: %s", self.path, self.anchors, exc)

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing --

    def _prepare(self, fields: DecisionInput | Mapping[str, Any]) -> _Prepared:
        """Validate, minimise and encode one decision (outside the write lock)."""
        inp = fields if isinstance(fields, DecisionInput) else DecisionInput.model_validate(fields)
        request = inp.request
        if self.salt is not None:
            request = minimise_request(request, self.pii_fields, salt=self.salt)
        leaks = _raw_pii(request, self.pii_fields, "request")
        if leaks:
            raise ValueError(f"the request holds raw personal data at {leaks}: give the log a salt")
        leaks = [f"features.{k}" for k in inp.features if k in self.pii_fields]
        leaks += _raw_pii(
            {k: v for k, v in inp.features.items() if isinstance(v, str)}, frozenset(), "features"
        )
        if leaks:
            raise ValueError(
                f"the features hold raw personal data at {leaks}: log the model input after the "
                "steps that consume personal data (the derived numbers)"
            )
        encoded = {
            "decision_id": inp.decision_id or new_decision_id(),
            "kind": inp.kind,
            "request": encode_json(request),
            "features": encode_json(inp.features),
            "models": encode_json(inp.models),
            "feature_set": inp.feature_set,
            "policy_version": inp.policy_version,
            "score": inp.score,
            "tier": inp.tier,
            "action": inp.action,
            "reasons": encode_json(inp.reasons),
        }
        try:  # lone surrogates pass json but not UTF-8: refuse them before they reach the chain
            "".join(v for v in encoded.values() if isinstance(v, str)).encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"the decision holds text that is not valid Unicode: {exc}") from None
        return _Prepared(encoded)

    def _write(
        self, batch: list[_Prepared], journals: list[tuple[JournalWrite, slice]] = ()
    ) -> list[dict[str, Any]]:
        """Append prepared decisions in one transaction; the caller holds ``self._lock``.

        ``journals`` are extra writes for the same transaction, each given the rows of its slice
        of ``batch`` (see ``JournalWrite``).

        Returns the stored rows (JSON fields as stored text): decoding them into records is left
        to the callers, outside the lock.
        """
        if self._keyed_log and self.key is None:
            raise ValueError(f"{self.path} is a keyed log: open it with its key to append")
        conn = self._connection()
        _begin_immediate(conn, self.timeout)  # the write lock first, then the tail: no two writers fork
        try:
            tail = conn.execute("SELECT seq, hash FROM decisions ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = tail if tail is not None else (0, self._genesis)
            rows = []
            for item in batch:
                seq += 1
                values = dict(item.fields, seq=seq, created_at=_utc_now(), prev_hash=prev)
                values["hash"] = prev = _digest(_canonical(tuple(values[f] for f in _HASHED)), self.key)
                rows.append(values)
            conn.executemany(_INSERT, [tuple(r[c] for c in _COLUMNS) for r in rows])
            for write, part in journals:
                write(conn, rows[part])
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.IntegrityError) and "decision_id" in str(exc):
                raise DuplicateDecisionError(f"a decision id is already in the log: {exc}") from exc
            raise
        return rows

    def _append_row(
        self, fields: DecisionInput | Mapping[str, Any], journal: JournalWrite | None = None
    ) -> dict[str, Any]:
        prepared = self._prepare(fields)
        if self.group_commit:
            row = self._append_grouped(prepared, journal)
        else:
            with self._lock:
                row = self._write([prepared], [(journal, slice(0, 1))] if journal else [])[0]
        self._committed(row["seq"], row["hash"], 1)
        return row

    def append_receipt(
        self, fields: DecisionInput | Mapping[str, Any], *, journal: JournalWrite | None = None
    ) -> Receipt:
        """``append``, returning only where the decision went (no decoding of the stored record).

        For the serving path, which answers from the decision it just made: the same checks,
        chaining and durability as ``append``. ``journal`` runs in the same transaction.
        """
        row = self._append_row(fields, journal)
        return Receipt(row["seq"], row["decision_id"], row["created_at"], row["hash"])

    def append(self, fields: DecisionInput | Mapping[str, Any]) -> DecisionRecord:
        """Append one decision as one transaction, chained to the current tail.

        Args:
            fields: a ``DecisionInput`` or a mapping with its fields.

        Returns:
            The stored record (with seq, decision id, created_at and hashes).

        Raises:
            pydantic.ValidationError: a field is missing or invalid.
            ValueError: raw personal data in the request (no salt) or the features.
            DuplicateDecisionError: the caller's decision id is already in the log.
        """
        return DecisionRecord._from_row(self._append_row(fields), trusted=True)

    def _append_grouped(self, prepared: _Prepared, journal: JournalWrite | None = None) -> dict[str, Any]:
        slot = _Slot(prepared, journal)
        with self._queue_lock:
            self._queue.append(slot)
        with self._lock:
            # The thread that gets the lock first writes everything queued meanwhile (its own slot
            # included); the others find their slot done when they get the lock in turn.
            if not slot.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                journals = [(s.journal, slice(i, i + 1)) for i, s in enumerate(batch) if s.journal]
                try:
                    rows = self._write([s.prepared for s in batch], journals)
                except Exception:
                    # one bad decision (a duplicate id) must not fail the others: retry one by one
                    for s in batch:
                        try:
                            one = [(s.journal, slice(0, 1))] if s.journal else []
                            s.row = self._write([s.prepared], one)[0]
                        except Exception as exc:
                            s.error = exc
                        s.done = True
                else:
                    for s, row in zip(batch, rows, strict=True):
                        s.row, s.done = row, True
        if slot.error is not None:
            raise slot.error
        assert slot.row is not None
        return slot.row

    def append_many(
        self, records: Iterable[DecisionInput | Mapping[str, Any]], *, journal: JournalWrite | None = None
    ) -> list[DecisionRecord]:
        """Append several decisions in one transaction (batch scoring): all or none.

        Args:
            records: ``DecisionInput`` objects or mappings (none: only ``journal`` is written).
            journal: extra writes for the same transaction, given all the inserted rows.

        Returns:
            The stored records, in order.
        """
        prepared = [self._prepare(r) for r in records]
        if not prepared and journal is None:
            return []
        with self._lock:
            rows = self._write(prepared, [(journal, slice(0, len(prepared)))] if journal else [])
        if rows:
            self._committed(rows[-1]["seq"], rows[-1]["hash"], len(rows))
        return [DecisionRecord._from_row(r, trusted=True) for r in rows]


    # -- reading --

    def get(self, decision_id: str) -> DecisionRecord | None:
        """The record of a decision id, or ``None`` when the log has no such decision."""
        with self._lock:
            conn = self._connection()
            conn.row_factory = sqlite3.Row
            try:
                row = conn.execute(f"{_SELECT} WHERE decision_id = ?", (decision_id,)).fetchone()
            finally:
                conn.row_factory = None
        return None if row is None else DecisionRecord._from_row(row)

    def head(self) -> tuple[int, str]:
        """``(seq, hash)`` of the last record (``(0, genesis)`` when empty): what an anchor records."""
        with self._lock:
            return _tail(self._connection(), self._genesis)

    def __len__(self) -> int:
        with self._lock:
            return self._connection().execute("SELECT count(*) FROM decisions").fetchone()[0]

    def iter_records(
        self, start_seq: int = 1, end_seq: int | None = None, *, batch_size: int = 1000
    ) -> Iterator[DecisionRecord]:
        """Stream records in seq order from one consistent snapshot, without blocking writers.

        Args:
            start_seq: the first seq to return.
            end_seq: the last seq to return (inclusive), or ``None`` for the end.
            batch_size: rows fetched per round trip.

        Yields:
            ``DecisionRecord`` objects.
        """
        with self._lock:
            self._connection()  # the file and schema exist
        conn = _connect(self.path, read_only=True, timeout=self.timeout)
        conn.row_factory = sqlite3.Row
        try:
            cursor = conn.execute(
                f"{_SELECT} WHERE seq >= ? AND seq <= ? ORDER BY seq",
                (start_seq, end_seq if end_seq is not None else 2**63 - 1),
            )
            while rows := cursor.fetchmany(batch_size):
                for row in rows:
                    yield DecisionRecord._from_row(row)
        finally:
            conn.close()

    def verify(
        self,
        *,
        anchors: AnchorsArg | None = None,
        expect_keyed: bool = False,
        max_problems: int = 10,
    ) -> VerifyReport:
        """Check the whole chain and anchors (by default this log's anchors file); see ``verify_path``."""
        with self._lock:
            self._connection()
        if anchors is None:
            anchors = self.anchors if self.anchors is not None else ()
        return verify_path(
            self.path, key=self.key, anchors=anchors, expect_keyed=expect_keyed, max_problems=max_problems
        )
