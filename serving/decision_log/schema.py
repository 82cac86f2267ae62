"""The decision log's sqlite file: its tables and triggers, how it is opened, how its header is read.

Shared by the store (which creates and writes the file) and the verifier (which only reads it), so
that neither depends on the other for the file's layout.

Triggers refuse ``UPDATE`` and ``DELETE`` on both tables; that stops accidents, while the chain
and the anchors catch someone who drops the triggers.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS decisions (
        seq INTEGER PRIMARY KEY,
        decision_id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        created_at TEXT NOT NULL,
        request TEXT NOT NULL,
        features TEXT NOT NULL,
        models TEXT NOT NULL,
        feature_set TEXT NOT NULL,
        policy_version TEXT NOT NULL,
        score REAL,
        tier TEXT NOT NULL,
        action TEXT NOT NULL,
        reasons TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    )""",
    # Stops accidents; someone who drops the triggers is caught by the chain.
    """CREATE TRIGGER IF NOT EXISTS decisions_no_update BEFORE UPDATE ON decisions
    BEGIN SELECT RAISE(ABORT, 'the decision log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS decisions_no_delete BEFORE DELETE ON decisions
    BEGIN SELECT RAISE(ABORT, 'the decision log is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS meta_no_update BEFORE UPDATE ON meta
    BEGIN SELECT RAISE(ABORT, 'the decision log header is written once'); END""",
    """CREATE TRIGGER IF NOT EXISTS meta_no_delete BEFORE DELETE ON meta
    BEGIN SELECT RAISE(ABORT, 'the decision log header is written once'); END""",
)
# Created right after the header rows are inserted, in the same transaction: no row can follow them.
_SEAL_META = """CREATE TRIGGER IF NOT EXISTS meta_no_insert BEFORE INSERT ON meta
    BEGIN SELECT RAISE(ABORT, 'the decision log header is written once'); END"""
_COLUMNS = (
    "seq",
    "decision_id",
    "kind",
    "created_at",
    "request",
    "features",
    "models",
    "feature_set",
    "policy_version",
    "score",
    "tier",
    "action",
    "reasons",
    "prev_hash",
    "hash",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM decisions"
_INSERT = f"INSERT INTO decisions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"


def _connect(path: Path, *, read_only: bool, timeout: float) -> sqlite3.Connection:
    if read_only:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=timeout)
    else:
        conn = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA trusted_schema = OFF")
    return conn


def _meta(conn: sqlite3.Connection) -> dict[str, str]:
    try:
        return dict(conn.execute("SELECT name, value FROM meta"))
    except sqlite3.DatabaseError:  # no meta table, or not an sqlite file at all
        return {}
