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

The only personal column among them is ``device_id`` (a device fingerprint, marked ``pii`` in
``features.contracts``): the device links between customers need its equality, not its value. So
every add path (``add_transactions``, ``add_account_events``, the bulk frames of seeding) stores the
keyed pseudonym the store is given (``serving.privacy.Pseudonymiser``: HMAC-SHA256 under the
pseudonym salt), never the raw id; ``rows_for`` returns those pseudonyms. Equal ids give equal
pseudonyms and different ids different ones, so the links, distinct counts and every behaviour
feature are exactly those of the raw ids (``tests/serving/test_onboarding.py`` compares the risk
model's P(bad) with the batch path's). A store opened without a pseudonymiser keeps ids as given:
for tables whose ids are already pseudonymous (the tests comparing rows with the batch tables).
IP addresses, payment methods, quantities and label sources are not stored; profiles (names,
phones, addresses, e-mails) stay in the encrypted profile store and are passed to ``rows_for`` by
the caller. Times are stored as integer microseconds since the epoch (UTC).

Erasure (``serving.privacy.erase_customer``) replaces the device pseudonyms of a customer's own rows
(orders as buyer, account events) with random values (``erase_devices``), so that those rows no
longer link the person to devices or other customers; the rows themselves stay, since the
counterparties' behaviour (an order is also its seller's history) and the labels depend on them.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
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
        pseudonymise: the keyed pseudonym applied to every ``device_id`` before it is stored
            (``serving.privacy.Pseudonymiser``); ``None`` keeps ids as given (see the module docstring).
    """

    def __init__(self, path: str | Path, pseudonymise: Callable[[str], str] | None = None):
        self.path = str(path)
        self.pseudonymise = pseudonymise
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
        staged = self._values(table, rows)
        device = next((i for i, (name, _) in enumerate(_TABLES[table]) if name == "device_id"), None)
        if device is None or self.pseudonymise is None or not staged:
            return staged
        # one pseudonym per distinct device (a seed repeats each device many times)
        known = {d: None if d is None else self.pseudonymise(d) for d in {row[device] for row in staged}}
        return [(*row[:device], known[row[device]], *row[device + 1 :]) for row in staged]

    @staticmethod
    def _values(table: str, rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> list[tuple]:
        """Rows as the sqlite values of ``table``'s columns (times in microseconds, None for missing)."""
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

    def erase_devices(self, customer_id: str) -> dict[str, int]:
        """Replace the device pseudonyms of a customer's own rows with random values (one per row).

        The customer's orders as buyer (the device is the buyer's) and its account events keep
        every other column: the counterparties' behaviour and the labels depend on them. A fresh
        random value per row, so the rows link neither to each other nor to any other customer on
        the same device. Deleted values are overwritten in the file (``secure_delete``) and the
        write-ahead log is truncated, so the replaced pseudonyms are not left on disk.

        Returns:
            Rows changed per table (``transactions``, ``account_events``).
        """
        cid = str(customer_id)
        targets = (("transactions", "transaction_id", "buyer_id"), ("account_events", "event_id", "customer_id"))
        changed: dict[str, int] = {}
        with self._lock:
            self._conn.execute("PRAGMA secure_delete=ON")
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for table, key, owner in targets:
                    ids = [
                        r[0]
                        for r in self._conn.execute(
                            f"SELECT {key} FROM {table} WHERE {owner} = ? AND device_id IS NOT NULL "
                            "AND device_id NOT LIKE 'erased-%'",
                            (cid,),
                        )
                    ]
                    self._conn.executemany(
                        f"UPDATE {table} SET device_id = ? WHERE {key} = ?",
                        [(f"erased-{secrets.token_hex(16)}", i) for i in ids],
                    )
                    changed[table] = len(ids)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return changed

    def customer_rows(self, customer_id: str) -> dict[str, list[dict[str, Any]]]:
        """What the store holds about one customer (a privacy export), as JSON-ready rows.

        Returns:
            ``transactions``: orders where the customer is buyer or seller; ``account_events``:
            the customer's events; ``labels``: labels about the customer or those orders. Columns
            as stored (module docstring; ``device_id`` is a pseudonym), times as ISO 8601 UTC.
        """
        cid = str(customer_id)
        with self._lock:
            found = {
                "transactions": self._select(
                    "transactions", "buyer_id = ? OR seller_id = ?", (cid, cid), "occurred_at, transaction_id"
                ),
                "account_events": self._select("account_events", "customer_id = ?", (cid,), "occurred_at, event_id"),
            }
            orders = json.dumps(list(found["transactions"]["transaction_id"]))
            found["labels"] = self._select(
                "labels",
                "(entity_type = 'customer' AND entity_id = ?) OR (entity_type = 'transaction' AND entity_id IN "
                "(SELECT value FROM json_each(?)))",
                (cid, orders),
                "known_at, label_id",
            )
        out = {}
        for table, frame in found.items():
            rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
            for row in rows:
                for name in _TIMES & set(row):
                    row[name] = row[name].isoformat()
            out[table] = rows
        return out

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
