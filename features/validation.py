"""Checks that input tables meet the data contracts, and the report that names every problem found.

Single-table checks (columns, types, nulls, keys, categories, ranges and upper bounds, country
codes, plausible dates, the character sets of identifiers and free text) are pandera schemas
built from ``features.contracts.TABLES``; checks across columns and tables (references, time
order, birth before onboarding, amounts that convert to a finite USD value, required tables
that hold rows) are plain pandas. The bounds are the ones the service checks on requests
(``features.contracts``), so that a value a data file may hold is one a request may send, and
the seeding path (``load_valid_dataset``) can never load a value the engines cannot represent.
Failures are aggregated per (table, column, reason) with a row count and a few examples, so a
file with 100,000 bad rows gives one line, not 100,000. Nothing is dropped: the report counts
every row it complains about.

Row numbers in a report count data rows from 1 as a person sees them in the file (the header is
not a row: in a CSV file, row ``n`` is on line ``n + 1`` unless a quoted value spans lines).
Example values of personal-data columns (``Col.pii``) are never printed.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pa_compute

from features.contracts import (
    AUXILIARY_TABLES,
    ID_PATTERN,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    REQUIRED_TABLES,
    TABLES,
    TEXT_PATTERN,
    TIME_DTYPE,
    Col,
    Table,
    contract_dtype,
)
from features.problems import (
    EXPECTED_KIND,
    MAX_EXAMPLES,
    SEVERITIES,
    Dataset,
    Problem,
    Report,
    format_value,
    problem_at,
)
from features.reference import iso_country_codes, load_reference

# --- Single-table checks: pandera schemas built from the contracts -----------------------------


def contract_pandas_dtype(col: Col) -> Any:
    """The pandera/pandas dtype a validated column must have, by contract kind.

    ``int`` is checked as ``Int64``, which accepts ``int64`` too (readers give ``int64`` unless
    the column holds nulls); ``bool`` is the nullable ``boolean``; times are microsecond UTC.
    """
    return {
        "str": str,
        "category": str,
        "country": str,
        "float": "float64",
        "int": "Int64",
        "bool": "boolean",
        "timestamp": TIME_DTYPE,
        "date": TIME_DTYPE,
    }[col.kind]


def _time_bound(text: str) -> pd.Timestamp:
    return pd.Timestamp.now(tz="UTC") if text == "now" else pd.Timestamp(text, tz="UTC")


def _allowed_text(allowed: tuple[str, ...]) -> str:
    shown = ", ".join(allowed) if len(allowed) <= 10 else ", ".join(allowed[:10]) + ", ..."
    return f"not an allowed value (allowed: {shown}; see data/README.md)"


def _bound_text(value: float) -> str:
    """A bound as people read it: ``1,000,000`` and ``1,000,000,000,000``, not ``1e+06``."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"


def _re2(pattern: str) -> str:
    """A contract pattern in RE2 syntax (pyarrow's engine), which writes ``\\uXXXX`` as ``\\x{XXXX}``."""
    return re.sub(r"\\u([0-9A-Fa-f]{4})", r"\\x{\1}", pattern)


def _arrow_text(series: pd.Series) -> pa_arrow.ChunkedArray | pa_arrow.Array:
    return pa_arrow.array(series, type=pa_arrow.large_string(), from_pandas=True)


def _blank(arrow: pa_arrow.ChunkedArray | pa_arrow.Array) -> np.ndarray:
    """Empty or all-whitespace values (as ``str.strip() == ""``), without building stripped copies."""
    blank = pa_compute.or_(
        pa_compute.utf8_is_space(arrow), pa_compute.equal(pa_compute.binary_length(arrow), 0)
    )
    return np.asarray(pa_compute.fill_null(blank, False).to_numpy(zero_copy_only=False), dtype=bool)


def _not_blank(series: pd.Series) -> pd.Series:
    """A vectorised check: the value is not empty or whitespace only."""
    return pd.Series(~_blank(_arrow_text(series)), index=series.index)


def _fullmatch(pattern: str, *, allow_blank: bool = False, repeated: bool = False) -> Callable:
    """A vectorised check: each value matches ``pattern`` (anchored by ``^...$``); nulls pass.

    pandas' ``.str.fullmatch`` would fall back to Python's ``re`` for the ``\\u`` escapes of
    ``TEXT_PATTERN`` (five times slower on a million rows); pyarrow runs the RE2 form natively.

    Args:
        pattern: a contract pattern (Python ``re`` syntax, as the request schemas use it).
        allow_blank: blank values pass: they are reported once, as blank identifiers.
        repeated: values repeat (references, device ids): match the distinct values only, which
            costs a hash pass instead of a regex pass per row.
    """
    re2 = _re2(pattern)

    def check(series: pd.Series) -> pd.Series:
        arrow = _arrow_text(series)
        values = pa_compute.unique(arrow) if repeated else arrow
        matched = pa_compute.fill_null(pa_compute.match_substring_regex(values, re2), True)
        if repeated:
            if pa_compute.all(matched).as_py():
                return pd.Series(True, index=series.index)
            failed = pa_compute.filter(values, pa_compute.invert(matched))
            matched = pa_compute.invert(pa_compute.is_in(arrow, value_set=failed))
        ok = np.asarray(matched.to_numpy(zero_copy_only=False), dtype=bool)
        if allow_blank and not ok.all():
            ok |= _blank(arrow)
        return pd.Series(ok, index=series.index)

    return check


def _at_most_chars(limit: int) -> Callable:
    """A vectorised check: each text has at most ``limit`` characters; nulls pass."""

    def check(series: pd.Series) -> pd.Series:
        arrow = _arrow_text(series)
        # A character takes at least one byte: counting characters is needed only past the limit.
        lengths = pa_compute.binary_length(arrow)
        if len(arrow) == 0 or (pa_compute.max(lengths).as_py() or 0) <= limit:
            return pd.Series(True, index=series.index)
        chars = pa_compute.fill_null(pa_compute.utf8_length(arrow), 0).to_numpy(zero_copy_only=False)
        return pd.Series(np.asarray(chars) <= limit, index=series.index)

    return check


IDENTIFIER_REASON = (
    f"not a valid identifier: 1-{MAX_ID_LENGTH} characters of A-Z a-z 0-9 _ . : @ # / + = -, "
    "starting with a letter or digit (no spaces, control characters, escapes or bidi overrides)"
)
TEXT_REASON = "control character or bidirectional override in text (not allowed)"


def _column_checks(table: Table, col: Col) -> tuple[list[pa.Check], dict[str, str]]:
    """The pandera checks of one contract column and the reason for each check name."""
    checks: list[pa.Check] = []
    reasons: dict[str, str] = {}

    def add(name: str, reason: str, fn, *, ignore_na: bool = True) -> None:
        checks.append(pa.Check(fn, name=name, ignore_na=ignore_na))
        reasons[name] = reason

    if col.kind == "category" and col.allowed is not None:
        allowed = list(col.allowed)
        add("allowed_values", _allowed_text(col.allowed), lambda s: s.isin(allowed))
    if col.kind == "country":
        codes = sorted(iso_country_codes())
        add("country_code", "not an ISO 3166-1 alpha-2 country code", lambda s: s.isin(codes))
    # The text checks pass nulls themselves (ignore_na=False): pandera would first copy the column
    # without its nulls, which costs more than the check on a million rows.
    if col.kind == "str" and (col.name in table.key or col.foreign_key or col.name.endswith("_id")):
        add("blank_id", "blank identifier", _not_blank, ignore_na=False)
    repeated = col.name not in table.key
    if col.kind == "str" and col.identifier:
        check = _fullmatch(ID_PATTERN, allow_blank=True, repeated=repeated)
        add("bad_identifier", IDENTIFIER_REASON, check, ignore_na=False)
    elif col.kind == "str":
        # Free text may be any script, but never something that hides from the person reading it.
        add("bad_text", TEXT_REASON, _fullmatch(TEXT_PATTERN, repeated=repeated), ignore_na=False)
        reason = f"too long: more than {MAX_TEXT_LENGTH} characters"
        add("text_too_long", reason, _at_most_chars(MAX_TEXT_LENGTH), ignore_na=False)
    if col.kind in ("float", "int"):
        if col.kind == "float":
            add("finite", "not a finite number (inf)", lambda s: np.isfinite(s))
        if col.min_value is not None:
            low = col.min_value
            if col.min_exclusive:
                add("min_value", f"out of range: must be > {low:g}", lambda s: s > low)
            else:
                add("min_value", f"out of range: must be >= {low:g}", lambda s: s >= low)
        if col.max_value is not None:
            high = col.max_value
            # An infinity is reported once, as not finite.
            add(
                "max_value",
                f"out of range: must be <= {_bound_text(high)}",
                lambda s: (s <= high) | ~np.isfinite(s.astype("float64")),
            )
    if col.kind in ("timestamp", "date"):
        low_text, high_text = col.time_range
        low = pd.Timestamp(low_text, tz="UTC")
        add("too_early", f"implausibly early: before {low_text}", lambda s: s >= low)
        if high_text == "now":
            add("in_future", "in the future", lambda s: s <= _time_bound("now"))
        else:
            high = pd.Timestamp(high_text, tz="UTC")
            add("too_late", f"implausibly late: on or after {high_text}", lambda s: s < high)
        if col.kind == "date":
            add(
                "time_of_day",
                "a date must be a UTC midnight (it has a time of day)",
                lambda s: s == s.dt.floor("D"),
            )
    return checks, reasons


@cache
def table_schema(name: str) -> tuple[pa.DataFrameSchema, dict[tuple[str, str], str]]:
    """Build the pandera schema of contract table ``name`` (cached).

    Returns:
        The schema (not strict: unknown columns are reported separately, never dropped) and a
        map from (column, check name) to the reason printed in reports.
    """
    table = TABLES[name]
    columns: dict[str, pa.Column] = {}
    reasons: dict[tuple[str, str], str] = {}
    single_key = table.key[0] if len(table.key) == 1 else None
    for col in table.columns:
        checks, col_reasons = _column_checks(table, col)
        reasons.update({(col.name, check): reason for check, reason in col_reasons.items()})
        columns[col.name] = pa.Column(
            contract_pandas_dtype(col),
            checks=checks,
            nullable=col.nullable,
            required=col.required,
            unique=col.name == single_key,
            name=col.name,
        )
    schema = pa.DataFrameSchema(
        columns,
        strict=False,
        coerce=False,
        unique=list(table.key) if single_key is None else None,
        name=name,
    )
    return schema, reasons


def _schema_problems(
    table: Table,
    df: pd.DataFrame,
    *,
    file: str | None,
    already_reported: Mapping[str, np.ndarray],
) -> tuple[list[Problem], set[str]]:
    """Run the table's pandera schema; return aggregated problems and the usable columns.

    ``already_reported`` maps a column to positions whose value a reader could not convert and
    has reported as a wrong type: those positions now hold nulls and are not re-reported.
    """
    schema, reasons = table_schema(table.name)
    usable = set(df.columns)
    try:
        schema.validate(df, lazy=True)
        return [], usable
    except pa.errors.SchemaErrors as exc:
        failures = exc.failure_cases
    failures = failures.assign(
        column=failures["column"].astype(object),
        check=failures["check"].astype(str),
    )
    problems: list[Problem] = []
    missing = failures["check"] == "column_in_dataframe"
    for name in failures.loc[missing, "failure_case"]:
        problems.append(
            Problem(table.name, str(name), "missing required column", check="missing_column", file=file)
        )
        usable.discard(str(name))
    failures = failures[~missing]
    wrong_type = failures["check"].str.startswith("dtype(")
    bad_type_cols = set(failures.loc[wrong_type, "column"])
    usable -= bad_type_cols
    # A check on a column of the wrong type fails for that reason only; do not pile on.
    failures = failures[wrong_type | ~failures["column"].isin(bad_type_cols)]

    for (column, check), group in failures.groupby(["column", "check"], sort=False, dropna=False):
        problem = _failure_problem(table, df, column, check, group, reasons, usable, file, already_reported)
        if problem is not None:
            problems.append(problem)
    return problems, usable


def _failure_problem(
    table: Table,
    df: pd.DataFrame,
    column: Any,
    check: str,
    group: pd.DataFrame,
    reasons: Mapping[tuple[str, str], str],
    usable: set[str],
    file: str | None,
    already_reported: Mapping[str, np.ndarray],
) -> Problem | None:
    """The problem of one (column, check) group of pandera's failure cases (``None``: already said)."""
    positions = np.sort(group["index"].dropna().to_numpy(dtype=np.int64))
    at = partial(problem_at, table, df, column, file=file, usable=usable)
    known = column in table.column_names
    reason = reasons.get((column, check)) if known else None
    if known and check.startswith("dtype("):
        col = table.column(column)
        reason = (
            f"wrong type: expected {EXPECTED_KIND[col.kind]} ({contract_dtype(col)}), found {df[column].dtype} "
            "(features.io.conform_table converts compatible types)"
        )
        if len(positions) == 0:  # the whole column has the wrong dtype
            return Problem(table.name, column, reason, rows=len(df), check="wrong_type", file=file)
        return at(positions, reason, "wrong_type", values=group["failure_case"])
    if known and check == "not_nullable":
        skip = already_reported.get(column)
        if skip is not None and len(skip):
            positions = positions[~np.isin(positions, skip)]
            if len(positions) == 0:
                return None
        return at(positions, "missing value (null) in a required field", "null", values=())
    if known and check in ("field_uniqueness", "multiple_fields_uniqueness"):
        n_keys = group["failure_case"].astype(str).nunique()
        reason = f"duplicate key: {n_keys:,} key value{'s' * (n_keys != 1)} used by more than one row"
        return at(positions, reason, "duplicate_key")
    if reason is None or len(positions) == 0:
        # Table-wide failures (e.g. a composite key), a check that could not run (an exception on
        # odd values) or anything unforeseen: say it verbatim.
        text = "; ".join(str(v) for v in group["failure_case"].head(3))
        where = column if known else None
        return Problem(
            table.name, where, f"check {check} failed: {text}", rows=len(group), check=check, file=file
        )
    return at(positions, reason, check)


# --- Cross-table checks: plain pandas -----------------------------------------------------------


@dataclass
class _Context:
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
    ctx: _Context,
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
    ctx: _Context,
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
    ctx: _Context, table: str, column: str, bad: np.ndarray, reason: str, check: str
) -> list[Problem]:
    """The problem of the rows of ``table`` where ``bad`` holds (none when it holds nowhere)."""
    positions = np.flatnonzero(bad)
    if len(positions) == 0:
        return []
    df = ctx.tables[table]
    file, usable = ctx.files.get(table), ctx.usable[table]
    return [problem_at(TABLES[table], df, column, positions, reason, check, file=file, usable=usable)]


def _row_problems(ctx: _Context) -> list[Problem]:
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
        codes = pa_compute.index_in(_arrow_text(tx["currency"]), value_set=pa_arrow.array(list(known)))
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


def _cross_table_problems(ctx: _Context) -> list[Problem]:
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


# --- Entry points -------------------------------------------------------------------------------


def _sort_problems(problems: list[Problem]) -> list[Problem]:
    table_order = {name: i for i, name in enumerate(TABLES)}
    return sorted(
        problems,
        key=lambda p: (SEVERITIES.index(p.severity), table_order.get(p.table, len(table_order))),
    )


def _validate(
    tables: Mapping[str, pd.DataFrame],
    *,
    read_problems: Iterable[Problem] = (),
    files: Mapping[str, str] | None = None,
    unavailable: Iterable[str] = (),
    already_reported: Mapping[tuple[str, str], np.ndarray] | None = None,
    source: str | None = None,
    source_format: str = "kycrisk",
) -> Report:
    files = dict(files or {})
    already_reported = already_reported or {}
    unavailable = set(unavailable)
    problems = list(read_problems)
    frames: dict[str, pd.DataFrame] = {}
    usable: dict[str, set[str]] = {}
    row_counts: dict[str, int] = {}

    for name in REQUIRED_TABLES:
        if name not in tables and name not in unavailable:
            problems.append(Problem(name, None, "missing required table", check="missing_table"))

    for name, df in tables.items():
        row_counts[name] = len(df)
        if name not in TABLES:
            if name not in AUXILIARY_TABLES:
                problems.append(
                    Problem(
                        name,
                        None,
                        "not a contract table: not validated",
                        severity="warning",
                        check="unknown_table",
                    )
                )
            continue
        table = TABLES[name]
        # Row numbers are positions: never trust (or change) the caller's index.
        df = df.reset_index(drop=True)
        frames[name] = df
        file = files.get(name)
        for column in df.columns:
            if column not in table.column_names:
                problems.append(
                    Problem(
                        name,
                        str(column),
                        "unknown column, not in the contract: kept as is, not validated",
                        severity="warning",
                        check="unknown_column",
                        file=file,
                    )
                )
        if name in REQUIRED_TABLES and len(df) == 0:
            # A header-only file reads as a valid empty frame; a data set without customers or
            # transactions is still no data set (training and seeding would start from nothing).
            problems.append(
                Problem(
                    name, None, "has no rows: a required table must hold data", check="empty_table", file=file
                )
            )
        reported = {col: pos for (tab, col), pos in already_reported.items() if tab == name}
        table_problems, usable[name] = _schema_problems(table, df, file=file, already_reported=reported)
        problems += table_problems

    problems += _cross_table_problems(_Context(frames, usable, files))
    return Report(_sort_problems(problems), row_counts, source=source, source_format=source_format)


def validate_tables(tables: Mapping[str, pd.DataFrame]) -> Report:
    """Validate in-memory tables against the data contracts.

    Single-table checks use the pandera schemas of ``table_schema``; cross-table checks look
    at references between tables and at the order of their times. Columns must already have
    the contract dtypes (``features.io.conform_table`` converts compatible ones). Absent
    optional tables are skipped; the input frames are not modified.

    Args:
        tables: contract table name -> DataFrame; ``patterns`` may ride along unvalidated.

    Returns:
        The report (``report.ok`` is False when any error was found).
    """
    return _validate(tables)


def validate_dataset(dataset: Dataset) -> Report:
    """Validate a dataset read by ``features.io.read_dataset``, including its read problems."""
    return _validate(
        dataset.tables,
        read_problems=dataset.problems,
        files=dataset.files,
        unavailable=dataset.unavailable,
        already_reported=dataset.unconverted,
        source=dataset.source,
        source_format=dataset.source_format,
    )
