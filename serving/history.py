"""The customer history store: the raw contract rows a customer's behaviour is computed from, in sqlite.

The risk-tier model scores a customer snapshot from the customer's behaviour before ``as_of``
(``features.customer.customer_behaviour``), which reads raw rows, not running aggregates: the
customer's orders in either role, orders and account events on the devices the customer used,
labels of those orders and of the customer and the customers linked to it. ``CustomerHistory``
keeps those rows (sqlite in WAL mode, ``synchronous=NORMAL``, indexed by buyer, seller, customer,
device and labelled entity) and hands one customer's rows to ``customer_behaviour``:
``rows_for`` returns exactly what ``features.customer.customer_rows`` selects from the full
tables, so the online behaviour row equals the batch row.

Personal data. The store keeps only the contract columns ``customer_behaviour`` reads (plus each
row's id, for idempotent adds), with the contract's values:

- ``transactions``: ``transaction_id``, ``occurred_at``, ``buyer_id``, ``seller_id``, ``amount``,
  ``currency``, ``goods_category``, ``unit_price``, ``buyer_country``, ``seller_country``,
  ``device_id``, ``ip_country``;
- ``account_events``: ``event_id``, ``customer_id``, ``occurred_at``, ``event_type``,
  ``device_id``;
- ``labels``: ``label_id``, ``entity_type``, ``entity_id``, ``label``, ``known_at``.

The only personal column among them is ``device_id`` (a pseudonymous device fingerprint, marked
``pii`` in ``features.contracts``): the device links between customers need it. IP addresses,
payment methods, quantities and label sources are not stored; profiles (names, phones, addresses,
e-mails) stay in the profile store and are passed to ``rows_for`` by the caller. Times are stored
as integer microseconds since the epoch (UTC).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.customer import profile_links
from features.online import timestamp_us

__all__ = ["ACCOUNT_EVENT_COLUMNS", "LABEL_COLUMNS", "TRANSACTION_COLUMNS", "CustomerHistory"]

# (column, sqlite type) of each table; the first column is the id that makes adds idempotent.
TRANSACTION_COLUMNS = (
    ("transaction_id", "TEXT PRIMARY KEY"),
    ("occurred_at", "INTEGER NOT NULL"),
    ("buyer_id", "TEXT NOT NULL"),
    ("seller_id", "TEXT NOT NULL"),
    ("amount", "REAL"),
    ("currency", "TEXT"),
    ("goods_category", "TEXT"),
    ("unit_price", "REAL"),
    ("buyer_country", "TEXT"),
    ("seller_country", "TEXT"),
    ("device_id", "TEXT"),
    ("ip_country", "TEXT"),
)
ACCOUNT_EVENT_COLUMNS = (
    ("event_id", "TEXT PRIMARY KEY"),
    ("customer_id", "TEXT NOT NULL"),
    ("occurred_at", "INTEGER NOT NULL"),
    ("event_type", "TEXT"),
    ("device_id", "TEXT"),
)
LABEL_COLUMNS = (
    ("label_id", "TEXT PRIMARY KEY"),
    ("entity_type", "TEXT NOT NULL"),
    ("entity_id", "TEXT NOT NULL"),
    ("label", "TEXT"),
    ("known_at", "INTEGER NOT NULL"),
)
_TABLES = {
    "transactions": TRANSACTION_COLUMNS,
    "account_events": ACCOUNT_EVENT_COLUMNS,
    "labels": LABEL_COLUMNS,
}
_TIMES = {"occurred_at", "known_at"}
_FLOATS = {"amount", "unit_price"}
_INDEXES = (
    ("transactions", "buyer_id"),
    ("transactions", "seller_id"),
    ("transactions", "device_id"),
    ("account_events", "customer_id"),
    ("account_events", "device_id"),
    ("labels", "entity_id, entity_type"),
)


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and value != value


def _text(value: Any) -> str | None:
    return None if _missing(value) else str(value)


def _real(value: Any) -> float | None:
    return None if _missing(value) else float(value)


def _column_values(frame: pd.DataFrame, name: str) -> list[Any]:
    """One column of a contract frame as sqlite values (None for missing)."""
    if name not in frame.columns:
        return [None] * len(frame)
    series = frame[name]
    if name in _TIMES:
        if not pd.api.types.is_datetime64_any_dtype(series.dtype):
            series = pd.to_datetime(series, utc=True, format="ISO8601")
        elif series.dt.tz is not None:
            series = series.dt.tz_convert("UTC").dt.tz_localize(None)
        values = series.to_numpy(dtype="datetime64[us]")
        if np.isnat(values).any():
            raise ValueError(f"{name} has null timestamps")
        return values.astype(np.int64).tolist()
    if name in _FLOATS:
        arr = series.to_numpy(dtype=np.float64, na_value=np.nan)
        return [None if v != v else v for v in arr.tolist()]
    text = series.astype("str")
    return text.astype(object).where(text.notna(), None).tolist()


def connect_wal(path: str) -> sqlite3.Connection:
    """An autocommit sqlite connection in WAL mode with ``synchronous=NORMAL``, shareable across threads.

    ``NORMAL`` in WAL mode keeps the database consistent on a crash; a power loss may lose the last
    commits. The state stores use it; the decision log needs ``FULL`` and opens its own.
    """
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class CustomerHistory:
    """Raw transactions, account events and labels in sqlite, read back per customer (see the module docstring).

    Args:
        path: the sqlite file (created when missing).
    """

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._lock = threading.RLock()
        self._conn = connect_wal(self.path)
        for table, columns in _TABLES.items():
            spec = ", ".join(f"{name} {kind}" for name, kind in columns)
            self._conn.execute(f"CREATE TABLE IF NOT EXISTS {table} ({spec})")
        for table, column in _INDEXES:
            name = f"{table}_{column.split(',')[0]}"
            self._conn.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({column})")

    # -- writing -------------------------------------------------------------------------------

    def _rows(self, table: str, rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> list[tuple]:
        columns = _TABLES[table]
        if isinstance(rows, pd.DataFrame):
            missing = [name for name, kind in columns if "NOT NULL" in kind or "PRIMARY" in kind]
            missing = [c for c in missing if c not in rows.columns]
            if missing:
                raise ValueError(f"{table} rows lack columns {missing}")
            return list(zip(*(_column_values(rows, name) for name, _ in columns), strict=True))
        out = []
        for row in rows:
            values = []
            for name, _ in columns:
                value = row.get(name)
                if name in _TIMES:
                    value = timestamp_us(value)
                elif name in _FLOATS:
                    value = _real(value)
                else:
                    value = _text(value)
                values.append(value)
            out.append(tuple(values))
        return out

    def _add(self, table: str, rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> int:
        staged = self._rows(table, rows)
        if not staged:
            return 0
        marks = ", ".join("?" * len(_TABLES[table]))
        with self._lock:
            before = self._conn.total_changes
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                # idempotent by id: a row seen before (a retried request, a replayed seed) is ignored
                self._conn.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", staged)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            return self._conn.total_changes - before

    def add_transactions(self, rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> int:
        """Add ``transactions`` rows (contract mappings, or a contract frame: the fast bulk path).

        Returns:
            The number of rows added (rows whose ``transaction_id`` is already stored are ignored).

        Raises:
            ValueError: a row without a time or a required column.
        """
        return self._add("transactions", rows)

    def add_account_events(self, rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> int:
        """Add ``account_events`` rows (idempotent by ``event_id``); returns the number added."""
        return self._add("account_events", rows)

    def add_labels(self, rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> int:
        """Add ``labels`` rows (idempotent by ``label_id``); returns the number added."""
        return self._add("labels", rows)

    def counts(self) -> dict[str, int]:
        """Rows stored per table."""
        with self._lock:
            return {t: self._conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in _TABLES}

    # -- reading -------------------------------------------------------------------------------

    def _select(self, table: str, where: str, params: tuple, order: str) -> pd.DataFrame:
        names = [name for name, _ in _TABLES[table]]
        cursor = self._conn.execute(
            f"SELECT {', '.join(names)} FROM {table} WHERE {where} ORDER BY {order}", params
        )
        return self._frame(table, cursor.fetchall())

    @staticmethod
    def _frame(table: str, rows: list[tuple]) -> pd.DataFrame:
        columns = _TABLES[table]
        data = list(zip(*rows, strict=True)) if rows else [()] * len(columns)
        out = {}
        for (name, _), values in zip(columns, data, strict=True):
            if name in _TIMES:
                stamps = np.asarray(values, dtype=np.int64).astype("datetime64[us]")
                out[name] = pd.DatetimeIndex(stamps).tz_localize("UTC")
            elif name in _FLOATS:
                out[name] = np.asarray([np.nan if v is None else v for v in values], dtype=np.float64)
            else:
                out[name] = pd.array(values, dtype="str")
        return pd.DataFrame(out)

    def rows_for(self, customer_id: str, customers: pd.DataFrame) -> dict[str, pd.DataFrame]:
        """The rows one customer's behaviour depends on (``features.customer.customer_rows``, from the store).

        Args:
            customer_id: the customer.
            customers: the ``customers`` table (at least ``customer_id`` and the link columns
                ``phone``, ``address``, ``email``): the profile links and the profiles returned.

        Returns:
            ``transactions``: the customer's orders in either role plus every order on a device
            the customer used (as buyer or in an account event); ``account_events``: the customer's
            events plus every event on those devices; ``labels``: labels of those orders and of the
            customer and every linked customer; ``customers``: the rows of ``customers`` of the
            customer and everyone sharing a device, phone, address or e-mail with it. Columns: the
            stored ones (module docstring), times as ``datetime64[us, UTC]``, ids and categories as
            text; rows sorted by time then id.
        """
        cid = str(customer_id)
        with self._lock:
            devices = [
                d
                for (d,) in self._conn.execute(
                    "SELECT device_id FROM transactions WHERE buyer_id = ? AND device_id IS NOT NULL "
                    "UNION SELECT device_id FROM account_events WHERE customer_id = ? AND device_id IS NOT NULL",
                    (cid, cid),
                )
            ]
            on_devices = json.dumps(devices)
            transactions = self._select(
                "transactions",
                "rowid IN (SELECT rowid FROM transactions WHERE buyer_id = ? "
                "UNION SELECT rowid FROM transactions WHERE seller_id = ? "
                "UNION SELECT rowid FROM transactions WHERE device_id IN (SELECT value FROM json_each(?)))",
                (cid, cid, on_devices),
                "occurred_at, transaction_id",
            )
            events = self._select(
                "account_events",
                "rowid IN (SELECT rowid FROM account_events WHERE customer_id = ? "
                "UNION SELECT rowid FROM account_events WHERE device_id IN (SELECT value FROM json_each(?)))",
                (cid, on_devices),
                "occurred_at, event_id",
            )
            mine = set(devices)
            linked = set(transactions.loc[transactions["device_id"].isin(mine).to_numpy(), "buyer_id"])
            linked |= set(events.loc[events["device_id"].isin(mine).to_numpy(), "customer_id"])
            ids = customers["customer_id"].astype("str")
            profile_keep = profile_links(cid, customers)
            linked |= set(ids[profile_keep])
            linked.add(cid)
            labels = self._select(
                "labels",
                "rowid IN (SELECT rowid FROM labels WHERE entity_type = 'transaction' AND entity_id IN "
                "(SELECT value FROM json_each(?)) UNION SELECT rowid FROM labels WHERE entity_type = "
                "'customer' AND entity_id IN (SELECT value FROM json_each(?)))",
                (json.dumps(list(transactions["transaction_id"])), json.dumps(sorted(linked))),
                "known_at, label_id",
            )
        return {
            "transactions": transactions,
            "account_events": events,
            "labels": labels,
            "customers": customers[ids.isin(linked).to_numpy()],
        }

    def close(self) -> None:
        """Close the sqlite file (everything added is already committed)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> CustomerHistory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
