"""The online feature state's sqlite file: its tables, and how records, entity keys and times are stored.

Shared by the store (writes through), the rebuild of memory (reads back), the bulk seeding (writes
all rows at once) and the erasure (re-keys stored values), so that they agree on one encoding.
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np

from features.online.events import _TIME_BOUNDS

_SCHEMA_VERSION = "1"

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
