"""Single-table checks: the pandera schema of each contract table, and its failures as problems.

Columns, types, nulls, keys, categories, ranges and upper bounds, country codes, plausible dates
and the character sets of identifiers and free text are checked per table, from
``features.contracts.TABLES`` alone; checks that need a second column or table are in
``features.validation.cross_table``. Pandera's failure cases are aggregated per (column,
check) into one ``Problem`` each, with the reason a person reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from functools import cache, partial
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow as pa_arrow
import pyarrow.compute as pa_compute

from features.contracts import (
    ID_PATTERN,
    MAX_ID_LENGTH,
    MAX_TEXT_LENGTH,
    TABLES,
    TEXT_PATTERN,
    TIME_DTYPE,
    Col,
    Table,
    contract_dtype,
)
from features.problems import EXPECTED_KIND, Problem, problem_at
from features.reference import iso_country_codes


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


def arrow_text(series: pd.Series) -> pa_arrow.ChunkedArray | pa_arrow.Array:
    return pa_arrow.array(series, type=pa_arrow.large_string(), from_pandas=True)


def _blank(arrow: pa_arrow.ChunkedArray | pa_arrow.Array) -> np.ndarray:
    """Empty or all-whitespace values (as ``str.strip() == ""``), without building stripped copies."""
    blank = pa_compute.or_(
        pa_compute.utf8_is_space(arrow), pa_compute.equal(pa_compute.binary_length(arrow), 0)
    )
    return np.asarray(pa_compute.fill_null(blank, False).to_numpy(zero_copy_only=False), dtype=bool)


def _not_blank(series: pd.Series) -> pd.Series:
    """A vectorised check: the value is not empty or whitespace only."""
    return pd.Series(~_blank(arrow_text(series)), index=series.index)


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
        arrow = arrow_text(series)
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
        arrow = arrow_text(series)
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


def schema_problems(
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
