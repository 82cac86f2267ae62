"""Adapter from the Fraud Detection Handbook's simulated card transactions to the input contracts.

The benchmark (``/work/shared/benchmarks/fdh``, see its README) has one transaction table and
two optional profile tables. The mapping, so that the rest of the pipeline runs unchanged:

- card ``CUSTOMER_ID`` -> buyer customer ``C{id}`` (individual, role buyer); terminal
  ``TERMINAL_ID`` -> seller customer ``T{id}`` (business, role seller). Every identity,
  contact, document and business column is null ("not collected"): the data set has none.
- ``onboarded_at`` (and ``last_kyc_review_at``, since onboarding counts as a review) is the
  dataset's first day, 00:00 UTC: the simulation has no onboarding, and its customers and
  terminals all exist from the start.
- transaction ``transaction_id`` = ``str(TRANSACTION_ID)``; ``occurred_at`` = ``TX_DATETIME``
  taken as UTC (the simulator's clock has no zone); ``amount`` = ``unit_price`` =
  ``TX_AMOUNT`` in EUR; ``quantity`` 1; ``goods_category`` ``general``; ``payment_method``
  ``card``; countries, device and IP null. ``TX_TIME_SECONDS``/``TX_TIME_DAYS`` are dropped
  (they repeat ``TX_DATETIME``).
- ``TX_FRAUD == 1`` -> a ``fraud`` label about the transaction, ``known_at`` = ``occurred_at``
  + 7 days (the benchmark's label delay), source ``chargeback``.
- ``TX_FRAUD_SCENARIO`` is the simulator's ground truth, never a feature: it goes only to the
  ``patterns`` frame (``entity_type`` transaction, ``entity_id``, ``pattern``
  ``fdh_scenario_{n}``) for per-scenario evaluation.
- ``account_events`` and ``watchlist`` are empty tables with contract dtypes.
- Profile tables (``customer_profiles.parquet``, ``terminal_profiles.parquet``) contribute
  their ids only, so that cards and terminals without a transaction are customers too. Their
  other columns (grid coordinates, the simulator's mean/std amount and transactions per day)
  are the simulator's hidden parameters, not anything a marketplace would know or a customer
  declared: none is kept (and the benchmark's headline runs use the transactions alone).

Zero amounts: the simulator rounds small draws to 0.00 (32 of 1,303,778 rows). The contract
requires amounts > 0, and dropping rows would change the benchmark's row counts, so amounts in
``[0, min_amount)`` are raised to ``min_amount`` (0.01 EUR by default) and counted in a warning
of the validation report; negative amounts are left for validation to reject. With
``min_amount=None`` nothing is raised and validation reports the zeros as errors.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.contracts import TABLES, contract_dtype, empty_table
from features.problems import Dataset, Problem, problem_at

log = logging.getLogger(__name__)

TRANSACTIONS_FILE = "transactions.parquet"
CUSTOMER_PROFILES_FILE = "customer_profiles.parquet"
TERMINAL_PROFILES_FILE = "terminal_profiles.parquet"
TRANSACTION_COLUMNS = (
    "TRANSACTION_ID",
    "TX_DATETIME",
    "CUSTOMER_ID",
    "TERMINAL_ID",
    "TX_AMOUNT",
    "TX_FRAUD",
    "TX_FRAUD_SCENARIO",
)
LABEL_DELAY = pd.Timedelta(days=7)
CURRENCY = "EUR"
MIN_AMOUNT = 0.01
PATTERN_COLUMNS = ("entity_type", "entity_id", "pattern")


def _frame(name: str, n: int, values: dict[str, object]) -> pd.DataFrame:
    """A contract table of ``n`` rows: ``values`` where given, typed nulls elsewhere."""
    columns = {}
    for col in TABLES[name].columns:
        value = values.get(col.name)
        dtype = contract_dtype(col)
        if isinstance(value, pd.Series):
            columns[col.name] = value.reset_index(drop=True).astype(dtype)
        elif value is not None:
            columns[col.name] = pd.Series(value, index=pd.RangeIndex(n), dtype=dtype)
        else:
            columns[col.name] = pd.Series(
                np.nan if dtype == "float64" else pd.NA, index=pd.RangeIndex(n), dtype=dtype
            )
    return pd.DataFrame(columns, index=pd.RangeIndex(n))


def _ids(prefix: str, *id_columns: pd.Series | None) -> pd.Series:
    ids = pd.concat([c for c in id_columns if c is not None], ignore_index=True)
    ids = pd.Series(np.unique(ids.to_numpy(dtype=np.int64)))
    return prefix + ids.astype("str")


def adapt_fdh(
    transactions: pd.DataFrame,
    customer_profiles: pd.DataFrame | None = None,
    terminal_profiles: pd.DataFrame | None = None,
    *,
    min_amount: float | None = MIN_AMOUNT,
    file: str | None = TRANSACTIONS_FILE,
) -> tuple[dict[str, pd.DataFrame], list[Problem]]:
    """Map FDH frames onto the contract tables (plus ``patterns``); see the module docstring.

    Args:
        transactions: the FDH transaction table (``TRANSACTION_ID``, ``TX_DATETIME``,
            ``CUSTOMER_ID``, ``TERMINAL_ID``, ``TX_AMOUNT``, ``TX_FRAUD``, optionally
            ``TX_FRAUD_SCENARIO``; other columns are ignored).
        customer_profiles: optional FDH customer profiles (only ``CUSTOMER_ID`` is used).
        terminal_profiles: optional FDH terminal profiles (only ``TERMINAL_ID`` is used).
        min_amount: amounts in ``[0, min_amount)`` are raised to it and counted; ``None``
            keeps them (validation then rejects them).
        file: file name quoted in the problems.

    Returns:
        The tables ``customers``, ``transactions``, ``account_events``, ``watchlist``,
        ``labels`` (contract columns and dtypes) and ``patterns`` (``entity_type``,
        ``entity_id``, ``pattern``), in the input's row order; and the adjustments made, as
        warnings.

    Raises:
        ValueError: when a required FDH column is missing or the table is empty.
    """
    required = [c for c in TRANSACTION_COLUMNS if c != "TX_FRAUD_SCENARIO"]
    missing = [c for c in required if c not in transactions.columns]
    if missing:
        raise ValueError(f"FDH transactions lack column(s) {', '.join(missing)}")
    if len(transactions) == 0:
        raise ValueError("FDH transactions table is empty")
    raw = transactions.reset_index(drop=True)
    problems: list[Problem] = []

    occurred_at = pd.to_datetime(raw["TX_DATETIME"], utc=True).astype(
        contract_dtype(TABLES["transactions"].column("occurred_at"))
    )
    first_day = occurred_at.min().floor("D")
    transaction_id = raw["TRANSACTION_ID"].astype("int64").astype("str")
    amount = raw["TX_AMOUNT"].astype("float64")
    if min_amount is not None:
        raised = ((amount >= 0) & (amount < min_amount)).to_numpy()
        if raised.any():
            amount = amount.where(~raised, min_amount)

    tx = _frame(
        "transactions",
        len(raw),
        {
            "transaction_id": transaction_id,
            "occurred_at": occurred_at,
            "buyer_id": "C" + raw["CUSTOMER_ID"].astype("int64").astype("str"),
            "seller_id": "T" + raw["TERMINAL_ID"].astype("int64").astype("str"),
            "amount": amount,
            "currency": CURRENCY,
            "goods_category": "general",
            "unit_price": amount,
            "quantity": 1,
            "payment_method": "card",
        },
    )
    if min_amount is not None and raised.any():
        positions = np.flatnonzero(raised)
        problems.append(
            problem_at(
                TABLES["transactions"],
                tx,
                "amount",
                positions,
                f"amount below {min_amount:g} raised to {min_amount:g} by the fdh adapter "
                "(the simulator rounds small amounts to 0; rows kept so the benchmark's counts hold; "
                "unit_price likewise)",
                "adjusted_value",
                values=raw["TX_AMOUNT"].iloc[positions[:5]],
                severity="warning",
                file=file,
            )
        )

    buyers = _ids(
        "C", raw["CUSTOMER_ID"], None if customer_profiles is None else customer_profiles["CUSTOMER_ID"]
    )
    sellers = _ids(
        "T", raw["TERMINAL_ID"], None if terminal_profiles is None else terminal_profiles["TERMINAL_ID"]
    )
    customers = _frame(
        "customers",
        len(buyers) + len(sellers),
        {
            "customer_id": pd.concat([buyers, sellers], ignore_index=True),
            "customer_type": pd.Series(["individual"] * len(buyers) + ["business"] * len(sellers)),
            "role": pd.Series(["buyer"] * len(buyers) + ["seller"] * len(sellers)),
            "onboarded_at": first_day,
            "last_kyc_review_at": first_day,
        },
    )

    fraud = (raw["TX_FRAUD"].astype("int64") == 1).to_numpy()
    labels = _frame(
        "labels",
        int(fraud.sum()),
        {
            "label_id": "fdh-" + transaction_id[fraud],
            "entity_type": "transaction",
            "entity_id": transaction_id[fraud],
            "label": "fraud",
            # The benchmark's protocol: a fraud becomes known 7 days after it happened.
            "known_at": occurred_at[fraud] + LABEL_DELAY,
            "source": "chargeback",
        },
    )

    if "TX_FRAUD_SCENARIO" in raw.columns:
        scenario = raw["TX_FRAUD_SCENARIO"].astype("int64")
        planted = (scenario != 0).to_numpy()
        patterns = pd.DataFrame(
            {
                "entity_type": pd.Series(["transaction"] * int(planted.sum()), dtype="str"),
                "entity_id": transaction_id[planted].reset_index(drop=True),
                "pattern": ("fdh_scenario_" + scenario[planted].astype("str")).reset_index(drop=True),
            }
        )
    else:
        patterns = pd.DataFrame({c: pd.Series([], dtype="str") for c in PATTERN_COLUMNS})

    tables = {
        "customers": customers,
        "transactions": tx,
        "account_events": empty_table("account_events"),
        "watchlist": empty_table("watchlist"),
        "labels": labels,
        "patterns": patterns,
    }
    return tables, problems


def _read(file: Path, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Read the wanted columns of an FDH parquet file (ValueError naming the file if impossible)."""
    try:
        schema = pq.read_schema(file)
        wanted = None if columns is None else [c for c in columns if c in schema.names]
        return pq.read_table(file, columns=wanted).to_pandas()
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"cannot read {file.name}: {exc}") from exc


def read_fdh(path: Path, *, min_amount: float | None = MIN_AMOUNT) -> Dataset:
    """Read and adapt the FDH folder; reading failures become problems, not exceptions.

    Args:
        path: folder holding ``transactions.parquet`` and optionally the two profile files.
        min_amount: see ``adapt_fdh``.

    Returns:
        A ``features.problems.Dataset`` (format ``"fdh"``) with the adapted tables and problems.
    """
    path = Path(path)
    dataset = Dataset(source=str(path), source_format="fdh")
    tx_file = path / TRANSACTIONS_FILE
    if not tx_file.is_file():
        dataset.problems.append(
            Problem("transactions", None, f"missing {TRANSACTIONS_FILE} in {path}", check="missing_table")
        )
        dataset.unavailable |= {"transactions", "customers"}
        return dataset
    try:
        raw = _read(tx_file, TRANSACTION_COLUMNS)
        profiles = {}
        for key, name, id_column in (
            ("customer_profiles", CUSTOMER_PROFILES_FILE, "CUSTOMER_ID"),
            ("terminal_profiles", TERMINAL_PROFILES_FILE, "TERMINAL_ID"),
        ):
            file = path / name
            if file.is_file():
                frame = _read(file, (id_column,))
                if id_column not in frame.columns:
                    raise ValueError(f"{name} lacks column {id_column}")
                profiles[key] = frame
        tables, problems = adapt_fdh(raw, **profiles, min_amount=min_amount)
    except (ValueError, TypeError, OverflowError) as exc:
        dataset.problems.append(
            Problem(
                "transactions",
                None,
                f"cannot adapt the FDH data: {exc}",
                check="unreadable_file",
                file=TRANSACTIONS_FILE,
            )
        )
        dataset.unavailable |= {"transactions", "customers"}
        return dataset
    dataset.tables = tables
    dataset.problems = problems
    dataset.files = {
        "transactions": TRANSACTIONS_FILE,
        "labels": TRANSACTIONS_FILE,
        "patterns": TRANSACTIONS_FILE,
    }
    return dataset


def load_fdh(path: Path, *, min_amount: float | None = MIN_AMOUNT) -> dict[str, pd.DataFrame]:
    """Read the FDH folder and map it onto the contract tables (see the module docstring).

    Args:
        path: folder holding ``transactions.parquet`` and optionally ``customer_profiles.parquet``
            and ``terminal_profiles.parquet``.
        min_amount: see ``adapt_fdh``.

    Returns:
        ``customers``, ``transactions``, ``account_events``, ``watchlist``, ``labels`` with
        contract dtypes, and ``patterns`` (never a feature). Adjustments are logged as warnings;
        ``features.io.validate_dir(path, source="fdh")`` reports them with counts.

    Raises:
        FileNotFoundError: when ``transactions.parquet`` is missing.
        ValueError: when a file cannot be read or lacks a required column.
    """
    path = Path(path)
    tx_file = path / TRANSACTIONS_FILE
    if not tx_file.is_file():
        raise FileNotFoundError(f"{tx_file} not found")
    dataset = read_fdh(path, min_amount=min_amount)
    errors = [p for p in dataset.problems if p.severity == "error"]
    if errors:
        raise ValueError("; ".join(p.reason for p in errors))
    for problem in dataset.problems:
        log.warning("%s", problem.to_text())
    return dataset.tables
