"""What readers, adapters and validation say about input data: problems, datasets and reports.

One kind of failure in one table (and column) is a ``Problem`` with a count and a few examples;
a reader or adapter returns a ``Dataset`` (tables plus the problems met reading them); validation
returns a ``Report``. These types and the way a problem is formatted sit below the readers
(``features.io``), the adapters (``features.adapters``) and the checks (``features.validation``),
which all build problems, so that none of them imports another to do so.

Row numbers in a problem count data rows from 1 as a person sees them in the file (the header is
not a row: in a CSV file, row ``n`` is on line ``n + 1`` unless a quoted value spans lines).
Example values of personal-data columns (``Col.pii``) are never printed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.contracts import Table

SEVERITIES = ("error", "warning", "info")
MAX_EXAMPLES = 5
# How each contract kind is said in reports ("expected a whole number").
EXPECTED_KIND = {
    "str": "text",
    "category": "text",
    "country": "text",
    "float": "a number",
    "int": "a whole number",
    "bool": "a boolean (true/false/1/0)",
    "timestamp": "an ISO 8601 timestamp",
    "date": "an ISO 8601 date",
}


# --- Problems and reports ---------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """One kind of failure in one table (and column), with a count and a few examples.

    Attributes:
        table: contract table name (e.g. ``"transactions"``).
        column: column concerned, or ``None`` when it is about the whole table or file.
        reason: what is wrong, in words (e.g. ``"must be > 0"``).
        rows: number of rows concerned; ``None`` when it is about the table, file or column
            as a whole (a missing column, an unreadable file).
        example_rows: up to five row numbers (1-based data rows, as in the file).
        example_keys: the key values of those rows, when the table has a usable key.
        example_values: the offending values of those rows (never shown for personal data).
        severity: ``"error"`` (the data is invalid), ``"warning"`` (suspicious, or adjusted
            by an adapter; the data stays usable) or ``"info"``.
        check: short machine-readable code, e.g. ``"wrong_type"``, ``"dangling_reference"``.
        file: file name the table came from, when read from a folder.
    """

    table: str
    column: str | None
    reason: str
    rows: int | None = None
    example_rows: tuple[int, ...] = ()
    example_keys: tuple[str, ...] = ()
    example_values: tuple[str, ...] = ()
    severity: str = "error"
    check: str = ""
    file: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "severity": self.severity,
            "table": self.table,
            "column": self.column,
            "check": self.check,
            "reason": self.reason,
            "rows": self.rows,
            "example_rows": list(self.example_rows),
            "example_keys": list(self.example_keys),
            "example_values": list(self.example_values),
            "file": self.file,
        }

    def to_text(self, table_rows: int | None = None) -> str:
        """One line: severity, table.column, how many rows, reason, examples and file."""
        where = self.table if self.column is None else f"{self.table}.{self.column}"
        parts = [f"{self.severity.upper():<7} {where}:"]
        if self.rows is not None:
            of = f" of {table_rows:,}" if table_rows is not None else ""
            parts.append(f"{self.rows:,}{of} row{'' if self.rows == 1 and not of else 's'}:")
        parts.append(self.reason)
        details = []
        if self.example_rows:
            more = ", ..." if self.rows is not None and self.rows > len(self.example_rows) else ""
            details.append("rows " + ", ".join(str(r) for r in self.example_rows) + more)
        if self.example_keys:
            details.append("keys " + ", ".join(self.example_keys))
        if self.example_values:
            details.append("values " + ", ".join(self.example_values))
        line = " ".join(parts)
        if details:
            line += " (" + "; ".join(details) + ")"
        if self.file:
            line += f" [{self.file}]"
        return line


@dataclass
class Report:
    """The outcome of validating a dataset: every problem found and the rows per table.

    Attributes:
        problems: all problems, errors first.
        row_counts: rows read per table (tables that could not be read are absent).
        source: the folder validated, or ``None`` for in-memory tables.
        source_format: the input layout (``"kycrisk"`` or an adapter name such as ``"fdh"``).
    """

    problems: list[Problem] = field(default_factory=list)
    row_counts: dict[str, int] = field(default_factory=dict)
    source: str | None = None
    source_format: str = "kycrisk"

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings and infos do not make data invalid)."""
        return not self.errors

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def summary(self) -> str:
        """One line: valid or invalid, counts of errors and warnings, and rows per table."""
        n_err, n_warn = len(self.errors), len(self.warnings)
        tables = ", ".join(f"{name} {count:,}" for name, count in self.row_counts.items())
        verdict = "VALID" if self.ok else "INVALID"
        return (
            f"{verdict}: {n_err} error{'s' * (n_err != 1)}, "
            f"{n_warn} warning{'s' * (n_warn != 1)}; rows read: {tables or 'none'}"
        )

    def to_text(self) -> str:
        """Human report: a header, one line per problem (table, column, rows, reason), a summary."""
        where = self.source if self.source is not None else "in-memory tables"
        lines = [f"Validation of {where} (format {self.source_format}) against the data contracts"]
        if any(p.example_rows for p in self.problems):
            csv_note = (
                "; in a CSV file row n is on line n + 1"
                if any((p.file or "").endswith(".csv") for p in self.problems)
                else ""
            )
            lines.append(f"(rows are data rows numbered from 1{csv_note})")
        lines += [p.to_text(self.row_counts.get(p.table)) for p in self.problems]
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "source_format": self.source_format,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "row_counts": dict(self.row_counts),
            "problems": [p.to_dict() for p in self.problems],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


class InvalidDataError(ValueError):
    """Raised by ``load_valid_dataset`` when the data breaks the contracts; ``.report`` says how."""

    def __init__(self, report: Report):
        super().__init__(report.to_text())
        self.report = report


@dataclass
class Dataset:
    """Tables read from a folder, and what the reader found wrong with the files.

    Unpacks as ``tables, problems = read_dataset(path)``.

    Attributes:
        tables: table name -> DataFrame (contract dtypes; ``patterns`` when present).
        problems: problems met while reading (unreadable files, wrong types, missing tables).
        files: table name -> file name it was read from.
        unavailable: tables that could not be read or were missing (already reported).
        unconverted: (table, column) -> 0-based positions whose value could not be converted
            to the column's type (now null, already reported as a wrong type).
        source: the folder read.
        source_format: input layout (``"kycrisk"`` or ``"fdh"``).
    """

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    files: dict[str, str] = field(default_factory=dict)
    unavailable: set[str] = field(default_factory=set)
    unconverted: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)
    source: str | None = None
    source_format: str = "kycrisk"

    def __iter__(self) -> Iterator[Any]:
        yield self.tables
        yield self.problems


# --- Helpers to turn masks and positions into problems ----------------------------------------


def format_value(value: Any) -> str:
    """A value as a report shows it: ``null``, ISO times, quoted text, cut to 40 characters."""
    if value is None or (not isinstance(value, str) and pd.api.types.is_scalar(value) and pd.isna(value)):
        return "null"
    if isinstance(value, pd.Timestamp):
        try:
            return value.isoformat()
        except (ValueError, OverflowError, NotImplementedError):
            # Beyond Python's datetime range (year > 9999 in a parquet file of seconds): numpy
            # still prints it, and a report must never fail on the value it reports.
            return f"{np.datetime_as_string(value.to_datetime64())}+00:00"
    text = repr(value) if isinstance(value, str) else str(value)
    return _truncate(text)


def _truncate(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."


def _key_text(value: Any) -> str:
    """A key as it is, unless it holds what a terminal would act on (escapes, NUL): then quoted."""
    text = str(value)
    return _truncate(text if text.isprintable() else repr(text))


def _key_column(table: Table, df: pd.DataFrame, usable: set[str]) -> str | None:
    if len(table.key) == 1 and table.key[0] in df.columns and table.key[0] in usable:
        return table.key[0]
    return None


def problem_at(
    table: Table,
    df: pd.DataFrame,
    column: str | None,
    positions: np.ndarray,
    reason: str,
    check: str,
    *,
    values: Iterable[Any] | None = None,
    severity: str = "error",
    file: str | None = None,
    usable: set[str] | None = None,
    formatted: bool = False,
) -> Problem:
    """Build a Problem for rows at 0-based ``positions`` of ``df``, with up to five examples.

    Args:
        table: the contract of ``df``.
        df: the table, with a default RangeIndex (position = row number - 1).
        column: the column concerned, or ``None``.
        positions: sorted 0-based positions of the failing rows.
        reason: what is wrong.
        check: machine-readable code.
        values: example values to show (defaults to ``df[column]`` at the first positions).
        severity: ``"error"``, ``"warning"`` or ``"info"``.
        file: the file name, when known.
        usable: columns whose type is right (the key is shown only when it is).
        formatted: ``values`` are already text to show as they are.

    Returns:
        The aggregated Problem.
    """
    first = positions[:MAX_EXAMPLES]
    usable = set(df.columns) if usable is None else usable
    key = _key_column(table, df, usable)
    keys = tuple(_key_text(v) for v in df[key].iloc[first]) if key is not None else ()
    if values is not None:
        shown = tuple(v if formatted else format_value(v) for v in list(values)[:MAX_EXAMPLES])
    elif column is not None and column in df.columns:
        shown = tuple(format_value(v) for v in df[column].iloc[first])
    else:
        shown = ()
    if shown and column in table.column_names and table.column(column).pii:
        # Reports get printed, mailed and logged: personal data stays out of them.
        shown, reason = (), reason + " (values not shown: personal data)"
    return Problem(
        table=table.name,
        column=column,
        reason=reason,
        rows=int(len(positions)),
        example_rows=tuple(int(p) + 1 for p in first),
        example_keys=keys,
        example_values=shown,
        severity=severity,
        check=check,
        file=file,
    )
