"""Turn a finished run into the contract tables: ids, currency rounding, time order, string and time dtypes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from features import contracts
from features.synthetic.patterns import PATTERNS, STAGES
from features.synthetic.watchlist import Watchlist
from features.synthetic.world import NULL, World

# Currencies priced in whole units on the marketplace.
ZERO_DECIMAL = frozenset({"JPY", "KRW", "VND", "IDR"})


STR = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' default "str" dtype


def _str(values: np.ndarray | list) -> pd.api.extensions.ExtensionArray:
    """Plain Python strings (None for null) as pandas' default string dtype."""
    return pd.array(np.asarray(values, dtype=object), dtype="str")


def _arrow(values: pa.Array) -> pd.api.extensions.ExtensionArray:
    return pd.Series(values, dtype=STR).array


def _take(values: np.ndarray, index: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``values[index]`` as strings, null where ``index`` is NULL.

    Decoded from an Arrow dictionary array: a million rows take a fraction of a second, where
    going through Python string objects takes seconds.
    """
    index = np.asarray(index, dtype=np.int64)
    missing = index == NULL
    if len(values) == 0:
        return _arrow(pa.nulls(len(index), type=pa.large_string()))
    dictionary = pa.array(np.asarray(values, dtype=object), type=pa.large_string())
    indices = pa.array(np.where(missing, 0, index).astype(np.int32), mask=missing)
    return _arrow(pa.DictionaryArray.from_arrays(indices, dictionary).cast(pa.large_string()))


def _time(us: np.ndarray) -> pd.arrays.DatetimeArray:
    # NAT is int64's minimum, which is exactly numpy's NaT: nulls survive the view.
    return pd.array(np.asarray(us, dtype=np.int64).view("datetime64[us]")).tz_localize("UTC")


def _width(n: int, width: int) -> int:
    return max(width, len(str(max(n - 1, 0))))


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    """Ids ``prefix`` + zero-padded number for 0..n-1 as a Python object array (small tables)."""
    width = _width(n, width)
    return np.array([f"{prefix}{i:0{width}d}" for i in range(n)], dtype=object)


def _id_column(prefix: str, n: int, width: int) -> pd.api.extensions.ExtensionArray:
    """The same ids as ``_ids``, built in Arrow (for million-row tables)."""
    digits = pc.utf8_lpad(
        pa.array(np.arange(n, dtype=np.int64)).cast(pa.large_string()), _width(n, width), "0"
    )
    text = pa.scalar
    return _arrow(
        pc.binary_join_element_wise(text(prefix, pa.large_string()), digits, text("", pa.large_string()))
    )


def _id_of(prefix: str, positions: np.ndarray, n: int, width: int) -> np.ndarray:
    """Ids of selected rows (same format as ``_ids``), without building them all."""
    width = _width(n, width)
    return np.array([f"{prefix}{int(i):0{width}d}" for i in positions], dtype=object)


def _ip_country(country: np.ndarray, ip: np.ndarray) -> np.ndarray:
    return np.where(ip == NULL, NULL, country[np.maximum(ip, 0)]) if len(country) else np.full(len(ip), NULL)


def _frame(table: contracts.Table, columns: dict[str, object]) -> pd.DataFrame:
    missing = set(table.column_names) - set(columns)
    if missing:
        raise AssertionError(f"{table.name}: generator does not fill {sorted(missing)}")
    return pd.DataFrame({name: columns[name] for name in table.column_names})


def assemble(world: World, watchlist: Watchlist) -> dict[str, pd.DataFrame]:
    """Build the five contract tables and the ground-truth ``patterns`` table from ``world``."""
    rng, ref, pop, clock = world.rng, world.ref, world.pop, world.clock
    iso = np.asarray(ref.iso2, dtype=object)

    # --- customers: ids follow onboarding order, as a platform's sequence would
    order = np.lexsort((np.arange(pop.n), pop.onboarded))
    customer_id = np.empty(pop.n, dtype=object)
    customer_id[order] = _ids("C", pop.n, 7)
    customers = _frame(
        contracts.CUSTOMERS,
        {
            "customer_id": _str(customer_id[order]),
            "customer_type": _take(np.array(contracts.CUSTOMER_TYPES, dtype=object), pop.ctype[order]),
            "role": _take(np.array(contracts.CUSTOMER_ROLES, dtype=object), pop.role[order]),
            "full_name": _str(pop.full_name[order]),
            "birth_date": _time(pop.birth[order]),
            "email": _str(pop.email[order]),
            "email_first_seen_at": _time(pop.email_seen[order]),
            "phone": _str(pop.phone[order]),
            "address": _str(pop.address[order]),
            "nationality": _take(iso, pop.nat[order]),
            "residence_country": _take(iso, pop.res[order]),
            "document_type": _take(np.array(contracts.DOCUMENT_TYPES, dtype=object), pop.doc_type[order]),
            "document_number": _str(pop.doc_number[order]),
            "document_country": _take(iso, pop.doc_country[order]),
            "document_expiry": _time(pop.doc_expiry[order]),
            "business_registration_number": _str(pop.brn[order]),
            "business_registered_at": _time(pop.registered[order]),
            "industry": _take(np.array(contracts.INDUSTRIES, dtype=object), pop.industry[order]),
            # Nullable in the contract, hence pandas' nullable "boolean" (what features.io reads).
            "twofa_enabled": pd.array(pop.twofa[order].astype(bool), dtype="boolean"),
            "onboarded_at": _time(pop.onboarded[order]),
            "last_kyc_review_at": _time(pop.last_review[order]),
            "declared_monthly_volume_usd": pop.declared[order].astype(np.float64),
        },
    )

    # --- transactions: frozen accounts stop trading; amounts rounded per currency; time order
    tx = world.tx.concat()
    frozen = world.frozen_at
    keep = (tx["t"] < frozen[tx["buyer"]]) & (tx["t"] < frozen[tx["seller"]])
    tx = {k: v[keep] for k, v in tx.items()}
    currency = np.array(contracts.CURRENCIES, dtype=object)
    whole = np.isin(currency[tx["cur"]], list(ZERO_DECIMAL))
    unit = np.where(
        np.isnan(tx["unit_local"]), tx["unit_usd"] / ref.usd_per_unit[tx["cur"]], tx["unit_local"]
    )
    # Shop prices end in .99 more often than not in consumer retail.
    charm = np.isnan(tx["unit_local"]) & ~whole & (unit > 3) & (rng.random(len(unit)) < 0.35)
    unit = np.where(charm, np.ceil(unit) - 0.01, unit)
    unit = np.where(whole, np.maximum(np.round(unit), 1.0), np.maximum(np.round(unit, 2), 0.01))
    amount = np.where(whole, unit * tx["qty"], np.round(unit * tx["qty"], 2))
    t_order = np.lexsort((tx["uid"], tx["t"]))
    tx = {k: v[t_order] for k, v in tx.items()}
    unit, amount = unit[t_order], amount[t_order]
    n_tx = len(t_order)
    devices = world.devices.strings(rng)
    ips = world.ips.strings()
    ip_country = world.ips.countries()
    transactions = _frame(
        contracts.TRANSACTIONS,
        {
            "transaction_id": _id_column("T", n_tx, 9),
            "occurred_at": _time(tx["t"]),
            "buyer_id": _take(customer_id, tx["buyer"]),
            "seller_id": _take(customer_id, tx["seller"]),
            "amount": amount.astype(np.float64),
            "currency": _take(currency, tx["cur"]),
            "goods_category": _take(np.array(contracts.GOODS_CATEGORIES, dtype=object), tx["cat"]),
            "unit_price": unit.astype(np.float64),
            "quantity": tx["qty"].astype(np.int64),
            "payment_method": _take(np.array(contracts.PAYMENT_METHODS, dtype=object), tx["pay"]),
            "buyer_country": _take(iso, tx["ship"]),
            "seller_country": _take(iso, pop.res[tx["seller"]]),
            "device_id": _take(devices, tx["dev"]),
            "ip_address": _take(ips, tx["ip"]),
            "ip_country": _take(iso, _ip_country(ip_country, tx["ip"])),
        },
    )
    position = np.full(world.tx.count, NULL, dtype=np.int64)
    position[tx["uid"]] = np.arange(n_tx)

    # --- account events: nothing before onboarding, outside the period or after a freeze (a login a
    # few minutes before the first order of the period is moved to the period's start)
    ev = world.events.concat()
    ev_keep = ev["t"] < frozen[ev["customer"]]
    ev = {k: v[ev_keep] for k, v in ev.items()}
    ev["t"] = np.clip(ev["t"], np.maximum(pop.onboarded[ev["customer"]], clock.start), clock.end - 1)
    e_order = np.lexsort((ev["uid"], ev["t"]))
    ev = {k: v[e_order] for k, v in ev.items()}
    events = _frame(
        contracts.ACCOUNT_EVENTS,
        {
            "event_id": _id_column("E", len(e_order), 9),
            "customer_id": _take(customer_id, ev["customer"]),
            "occurred_at": _time(ev["t"]),
            "event_type": _take(np.array(contracts.EVENT_TYPES, dtype=object), ev["type"]),
            "device_id": _take(devices, ev["dev"]),
            "ip_address": _take(ips, ev["ip"]),
            "ip_country": _take(iso, _ip_country(ip_country, ev["ip"])),
        },
    )

    # --- watchlist
    wl = watchlist
    watch = _frame(
        contracts.WATCHLIST,
        {
            "entry_id": _str(_ids("W", len(wl.full_name), 6)),
            "list_type": _take(np.array(contracts.LIST_TYPES, dtype=object), wl.list_type),
            "full_name": _str(wl.full_name),
            "aliases": _str(wl.aliases),
            "birth_date": _time(wl.birth),
            "country": _take(iso, wl.country),
            "listed_at": _time(wl.listed_at),
        },
    )

    # --- labels: transaction labels follow their transaction (dropped with it when frozen away)
    lab = world.labels.concat()
    is_tx = lab["entity"] == 0
    tx_pos = np.where(is_tx, position[np.where(is_tx, lab["ref"], 0)], NULL)
    lab_keep = ~is_tx | (tx_pos != NULL)
    lab = {k: v[lab_keep] for k, v in lab.items()}
    tx_pos, is_tx = tx_pos[lab_keep], is_tx[lab_keep]
    entity_key = np.where(is_tx, tx_pos, lab["ref"])
    l_order = np.lexsort((lab["uid"], entity_key, lab["entity"], lab["known_at"]))
    lab = {k: v[l_order] for k, v in lab.items()}
    tx_pos, is_tx = tx_pos[l_order], is_tx[l_order]
    entity_id = np.where(is_tx, _id_of("T", tx_pos, n_tx, 9), customer_id[np.where(is_tx, 0, lab["ref"])])
    labels = _frame(
        contracts.LABELS_TABLE,
        {
            "label_id": _str(_ids("L", len(l_order), 8)),
            "entity_type": _take(np.array(contracts.LABEL_ENTITY_TYPES, dtype=object), np.where(is_tx, 0, 1)),
            "entity_id": _str(entity_id),
            "label": _take(np.array(contracts.LABELS, dtype=object), lab["label"]),
            "known_at": _time(lab["known_at"]),
            "source": _take(np.array(contracts.LABEL_SOURCES, dtype=object), lab["source"]),
        },
    )

    patterns = _patterns_table(world, tx, n_tx, customer_id, lab, is_tx, tx_pos)
    return {
        "customers": customers,
        "transactions": transactions,
        "account_events": events,
        "watchlist": watch,
        "labels": labels,
        "patterns": patterns,
    }


def _patterns_table(
    world: World,
    tx: dict[str, np.ndarray],
    n_tx: int,
    customer_id: np.ndarray,
    lab: dict[str, np.ndarray],
    is_tx: np.ndarray,
    tx_pos: np.ndarray,
) -> pd.DataFrame:
    """Ground truth: which transactions and customers each planted pattern produced, and their labels.

    Columns: ``entity_type``, ``entity_id``, ``pattern``, ``instance`` (e.g.
    ``account_takeover-0003``), ``stage`` (e.g. ``bust_out``, ``mule``), ``labelled`` (the entity
    got a label from this pattern) and ``label`` (that label, or null).
    """
    label_names = np.array(contracts.LABELS, dtype=object)
    # (entity type, position/customer, pattern) -> label of that pattern on that entity.
    found: dict[tuple[int, int, int], str] = {}
    for entity, pos, ref, pattern, label in zip(
        is_tx, tx_pos, lab["ref"], lab["pattern"], lab["label"], strict=True
    ):
        found[(0, int(pos), int(pattern)) if entity else (1, int(ref), int(pattern))] = label_names[label]

    rows: list[tuple] = []
    planted = np.flatnonzero(tx["pattern"] != NULL)
    for pos in planted:
        pattern = int(tx["pattern"][pos])
        rows.append(
            (
                0,
                pos,
                pattern,
                int(tx["instance"][pos]),
                int(tx["stage"][pos]),
                found.get((0, int(pos), pattern)),
            )
        )
    friendly = PATTERNS.index("friendly_fraud")
    for entity, pos, pattern, instance in zip(is_tx, tx_pos, lab["pattern"], lab["instance"], strict=True):
        if entity and pattern == friendly:
            rows.append(
                (
                    0,
                    int(pos),
                    friendly,
                    int(instance),
                    STAGES.index("friendly_chargeback"),
                    found[(0, int(pos), friendly)],
                )
            )
    mem = world.members.concat()
    for customer, pattern, instance, stage in zip(
        mem["customer"], mem["pattern"], mem["instance"], mem["stage"], strict=True
    ):
        rows.append(
            (
                1,
                int(customer),
                int(pattern),
                int(instance),
                int(stage),
                found.get((1, int(customer), int(pattern))),
            )
        )
    rows.sort(key=lambda r: (r[2], r[0], r[3], r[1]))
    return pd.DataFrame(
        {
            "entity_type": _str(["transaction" if r[0] == 0 else "customer" for r in rows]),
            "entity_id": _str(
                np.where(
                    np.array([r[0] == 0 for r in rows], dtype=bool),
                    _id_of("T", [r[1] if r[0] == 0 else 0 for r in rows], n_tx, 9),
                    customer_id[[r[1] if r[0] == 1 else 0 for r in rows]]
                    if rows
                    else np.zeros(0, dtype=object),
                )
            ),
            "pattern": _str([PATTERNS[r[2]] for r in rows]),
            "instance": _str([f"{PATTERNS[r[2]]}-{r[3]:04d}" for r in rows]),
            "stage": _str([STAGES[r[4]] if r[4] != NULL else None for r in rows]),
            "labelled": np.array([r[5] is not None for r in rows], dtype=bool),
            "label": _str([r[5] for r in rows]),
        }
    )
