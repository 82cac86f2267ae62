"""Erasure in a closed online feature state file: re-keying the personal values a customer's events name.

Apart from the store: it edits the file of a stopped service in place (``kycrisk privacy erase``,
``serving.privacy``), and memory is rebuilt from it at the next start.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from pathlib import Path

from features.online.events import _PII
from features.online.schema import _dumps


def rekey_personal_values(path: str | Path, customer_id: str) -> int:
    """Cut the link between a customer and the personal values in a (closed) state file: erasure.

    The customer's own events (orders it bought, its account events) name its devices and IP
    addresses, as pseudonyms when the store has a pseudonymiser. Each such value is replaced,
    everywhere in the file (event rows, first-seen values, entity keys of the pruned bases,
    quarantined rows), by one new random token of the same shape: the stored aggregates stay as
    they were, but nothing in the state links to the old value any more (not the decision log's
    pseudonyms, not the history's). The price: a later order from the same device or address,
    by anyone, no longer finds that history (it starts a new key), so its device and IP features
    begin again. Memory is rebuilt from the file at the next start.

    Args:
        path: the store's sqlite file (the service must be stopped).
        customer_id: the customer whose values are re-keyed.

    Returns:
        How many distinct values were re-keyed.
    """
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        rows = conn.execute(
            "SELECT payload FROM events WHERE json_extract(payload, '$.buyer_id') = ? "
            "OR json_extract(payload, '$.customer_id') = ?",
            (customer_id, customer_id),
        ).fetchall()
        values = {
            json.loads(payload).get(c) for (payload,) in rows for c in _PII
        } - {None}
        for value in sorted(values):
            old, new = _dumps(value), _dumps(secrets.token_hex(16))  # as stored: JSON text
            for table, column in (("events", "payload"), ("first_seen", "value"), ("first_seen", "entity"),
                                  ("bases", "entity"), ("quarantine", "row")):  # fmt: skip
                conn.execute(
                    f"UPDATE {table} SET {column} = replace({column}, ?, ?) WHERE instr({column}, ?) > 0",
                    (old, new, old),
                )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    return len(values)
