"""Cross-table checks: references between tables, time order, and checks across columns of a row.

Plain pandas and pyarrow over tables that passed (or partly passed) their single-table checks
(``features.validation.single_table``): only columns of the right type (``Context.usable``)
are looked at, so that a wrong type is reported once, as a wrong type. Covers the references
declared in the contracts (``Col.foreign_key``) and the labels' references by ``entity_type``,
labels known before what they are about (leakage), trading before onboarding, reviews before
onboarding, birth after onboarding and amounts that do not convert to a finite USD value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache

import numpy as np
import pandas as pd
import pyarrow as pa_arrow
import pyarrow.compute as pa_compute

from features.contracts import TABLES
from features.problems import MAX_EXAMPLES, Problem, format_value, problem_at
from features.reference import load_reference
from features.validation.single_table import arrow_text


@dataclass
class Context:
    """Tables (with RangeIndex), their usable columns and file names, for cross-table checks."""

    tables: dict[str, pd.DataFrame]
    usable: dict[str, set[str]]
    files: dict[str, str]

    lookups: dict[tuple[str, str, str, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def has(self, table: str, *columns: str) -> bool:
        return table in self.tables and all(c in self.usable.get(table, set()) for c in columns)

    def lookup(
        self, table: str, column: str, target: str, target_column: str
    ) -> tuple[np.ndarray, np.ndarray]:
        """``_lookup`` of ``table.column`` in ``target.target_column``, computed once per pair."""
        key = (table, column, target, target_column)
        if key not in self.lookups:
            self.lookups[key] = _lookup(self.tables[target][target_column], self.tables[table][column])
        return self.lookups[key]


def _lookup(parent_keys: pd.Series, child_keys: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Find ``child_keys`` among ``parent_keys``: found mask and (first) parent position per child row.

    Arrow's hash lookup is ten times faster than a pandas Index on a million text keys.
    """
    parent = pa_arrow.array(parent_keys, type=pa_arrow.large_string())
    child = pa_arrow.array(child_keys, type=pa_arrow.large_string())
    positions = pa_compute.fill_null(pa_compute.index_in(child, value_set=parent), -1).to_numpy()
    found = positions >= 0
    return found, np.where(found, positions, 0)


def _utc_naive(times: pd.Series) -> np.ndarray:
    """UTC times as a numpy datetime64 array (NaT compares False with everything)."""
    return times.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()


def _dangling(
    ctx: Context,
    table: str,
    column: str,
    target: str,
    target_column: str,
    *,
    rows: np.ndarray | None = None,
    what: str | None = None,
) -> list[Problem]:
    if not ctx.has(table, column) or not ctx.has(target, target_column):
        return []
    df = ctx.tables[table]
    keys = df[column]
    candidate = keys.notna().to_numpy()
    if rows is not None:
        candidate = candidate & rows
    found, _ = ctx.lookup(table, column, target, target_column)
    bad = np.flatnonzero(candidate & ~found)
    if len(bad) == 0:
        return []
    what = what or f"{target}.{target_column}"
    n_distinct = keys.iloc[bad].nunique()
    reason = f"dangling reference: not a known {what} ({n_distinct:,} distinct unknown id{'s' * (n_distinct != 1)})"
    return [
        problem_at(
            TABLES[table],
            df,
            column,
            bad,
            reason,
            "dangling_reference",
            file=ctx.files.get(table),
            usable=ctx.usable[table],
        )
    ]


def _time_order(
    ctx: Context,
    table: str,
    time_column: str,
    ref_column: str,
    target: str,
    target_time: str,
    reason: str,
    *,
    rows: np.ndarray | None = None,
    severity: str = "error",
    check: str = "time_order",
) -> list[Problem]:
    """Rows of ``table`` whose ``time_column`` is before ``target_time`` of the row they refer to."""
    target_key = TABLES[target].key[0]
    if not ctx.has(table, time_column, ref_column) or not ctx.has(target, target_key, target_time):
        return []
    df, parent_df = ctx.tables[table], ctx.tables[target]
    found, positions = ctx.lookup(table, ref_column, target, target_key)
    own = _utc_naive(df[time_column])
    parent = (
        _utc_naive(parent_df[target_time])[positions]
        if len(parent_df)
        else np.full(len(df), np.datetime64("NaT"))
    )
    before = found & (own < parent)
    if rows is not None:
        before = before & rows
    bad = np.flatnonzero(before)
    if len(bad) == 0:
        return []
    values = [
        f"{format_value(pd.Timestamp(own[i], tz='UTC'))} < {format_value(pd.Timestamp(parent[i], tz='UTC'))}"
        for i in bad[:MAX_EXAMPLES]
    ]
    return [
        problem_at(
            TABLES[table],
            df,
            time_column,
            bad,
            reason,
            check,
            values=values,
            severity=severity,
            file=ctx.files.get(table),
            usable=ctx.usable[table],
            formatted=True,
        )
    ]


@cache
def _usd_per_unit() -> dict[str, float]:
    rates = load_reference("fx_rates")
    return {str(c): float(r) for c, r in zip(rates["currency"], rates["usd_per_unit"], strict=True)}


def _rows_problem(
    ctx: Context, table: str, column: str, bad: np.ndarray, reason: str, check: str
) -> list[Problem]:
    """The problem of the rows of ``table`` where ``bad`` holds (none when it holds nowhere)."""
    positions = np.flatnonzero(bad)
    if len(positions) == 0:
        return []
    df = ctx.tables[table]
    file, usable = ctx.files.get(table), ctx.usable[table]
    return [problem_at(TABLES[table], df, column, positions, reason, check, file=file, usable=usable)]


def _row_problems(ctx: Context) -> list[Problem]:
    """Checks between columns of one row: birth before onboarding, a finite amount in USD."""
    problems: list[Problem] = []
    if ctx.has("customers", "birth_date", "onboarded_at"):
        customers = ctx.tables["customers"]
        born_later = (customers["birth_date"] > customers["onboarded_at"]).to_numpy(
            dtype=bool, na_value=False
        )
        reason = "born after being onboarded (birth_date > onboarded_at)"
        problems += _rows_problem(ctx, "customers", "birth_date", born_later, reason, "born_after_onboarding")
    if ctx.has("transactions", "amount", "currency"):
        # The bound on amounts (MAX_AMOUNT) is chosen so that this never fails with the committed
        # rates; it guards the state against a rate table that changes under it (amount_usd = inf
        # would poison every sum the online engine keeps).
        tx = ctx.tables["transactions"]
        known = _usd_per_unit()
        codes = pa_compute.index_in(arrow_text(tx["currency"]), value_set=pa_arrow.array(list(known)))
        codes = pa_compute.fill_null(codes, len(known)).to_numpy(zero_copy_only=False)
        # Unknown currencies (reported as not allowed) get NaN, so they are not checked twice.
        rates = np.append(np.array(list(known.values()), dtype="float64"), np.nan)[codes]
        amounts = tx["amount"].to_numpy(dtype="float64", na_value=np.nan)
        with np.errstate(over="ignore", invalid="ignore"):
            usd = amounts * rates
        overflow = np.isfinite(amounts) & np.isfinite(rates) & ~np.isfinite(usd)
        reason = "amount does not convert to a finite USD value (amount x usd_per_unit of currency)"
        problems += _rows_problem(ctx, "transactions", "amount", overflow, reason, "usd_not_finite")
    return problems


def cross_table_problems(ctx: Context) -> list[Problem]:
    problems: list[Problem] = _row_problems(ctx)
    # References declared in the contracts (Col.foreign_key).
    for name, table in TABLES.items():
        for col in table.columns:
            if col.foreign_key:
                target, target_column = col.foreign_key.split(".")
                problems += _dangling(ctx, name, col.name, target, target_column)

    # Labels point at a transaction or a customer, by entity_type.
    if ctx.has("labels", "entity_type", "entity_id"):
        labels = ctx.tables["labels"]
        is_tx = (labels["entity_type"] == "transaction").to_numpy(dtype=bool, na_value=False)
        is_cu = (labels["entity_type"] == "customer").to_numpy(dtype=bool, na_value=False)
        problems += _dangling(
            ctx, "labels", "entity_id", "transactions", "transaction_id", rows=is_tx, what="transaction_id"
        )
        problems += _dangling(
            ctx, "labels", "entity_id", "customers", "customer_id", rows=is_cu, what="customer_id"
        )
        # A label cannot be known before what it is about happened: it would leak the future.
        problems += _time_order(
            ctx,
            "labels",
            "known_at",
            "entity_id",
            "transactions",
            "occurred_at",
            "label known before its transaction happened (known_at < occurred_at)",
            rows=is_tx,
            check="label_before_event",
        )
        problems += _time_order(
            ctx,
            "labels",
            "known_at",
            "entity_id",
            "customers",
            "onboarded_at",
            "label known before the customer was onboarded (known_at < onboarded_at)",
            rows=is_cu,
            check="label_before_event",
        )

    # Onboarding counts as a KYC review, so the last review cannot precede it.
    if ctx.has("customers", "onboarded_at", "last_kyc_review_at"):
        customers = ctx.tables["customers"]
        onboarded, reviewed = customers["onboarded_at"], customers["last_kyc_review_at"]
        bad = np.flatnonzero((reviewed < onboarded).to_numpy(dtype=bool, na_value=False))
        if len(bad):
            values = [
                f"{format_value(reviewed.iloc[i])} < {format_value(onboarded.iloc[i])}"
                for i in bad[:MAX_EXAMPLES]
            ]
            problems.append(
                problem_at(
                    TABLES["customers"],
                    customers,
                    "last_kyc_review_at",
                    bad,
                    "last KYC review before onboarding (last_kyc_review_at < onboarded_at)",
                    "time_order",
                    values=values,
                    file=ctx.files.get("customers"),
                    usable=ctx.usable["customers"],
                    formatted=True,
                )
            )

    # Nobody trades before being onboarded; account events before onboarding (sign-up logins)
    # are plausible, so they are only a warning.
    for column in ("buyer_id", "seller_id"):
        problems += _time_order(
            ctx,
            "transactions",
            "occurred_at",
            column,
            "customers",
            "onboarded_at",
            f"transaction before the {column.removesuffix('_id')} was onboarded (occurred_at < onboarded_at of {column})",
        )
    problems += _time_order(
        ctx,
        "account_events",
        "occurred_at",
        "customer_id",
        "customers",
        "onboarded_at",
        "account event before the customer was onboarded (occurred_at < onboarded_at)",
        severity="warning",
    )
    return problems
