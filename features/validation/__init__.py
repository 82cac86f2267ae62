"""Checks that input tables meet the data contracts, and the report that names every problem found.

Single-table checks (columns, types, nulls, keys, categories, ranges and upper bounds, country
codes, plausible dates, the character sets of identifiers and free text) are pandera schemas
built from ``features.contracts.TABLES`` (``features.validation.single_table``); checks across
columns and tables (references, time order, birth before onboarding, amounts that convert to a
finite USD value) are plain pandas (``features.validation.cross_table``); this module runs both,
adds the table-level findings (missing, empty, unknown tables and columns) and sorts the report.
The bounds are the ones the service checks on requests (``features.contracts``), so that a value
a data file may hold is one a request may send, and the seeding path
(``features.io.load_valid_dataset``) can never load a value the engines cannot represent.
Failures are aggregated per (table, column, reason) with a row count and a few examples, so a
file with 100,000 bad rows gives one line, not 100,000. Nothing is dropped: the report counts
every row it complains about.

Row numbers in a report count data rows from 1 as a person sees them in the file (the header is
not a row: in a CSV file, row ``n`` is on line ``n + 1`` unless a quoted value spans lines).
Example values of personal-data columns (``Col.pii``) are never printed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from features.contracts import AUXILIARY_TABLES, REQUIRED_TABLES, TABLES
from features.problems import SEVERITIES, Dataset, Problem, Report
from features.validation.cross_table import Context, cross_table_problems
from features.validation.single_table import schema_problems


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
        table_problems, usable[name] = schema_problems(table, df, file=file, already_reported=reported)
        problems += table_problems

    problems += cross_table_problems(Context(frames, usable, files))
    return Report(_sort_problems(problems), row_counts, source=source, source_format=source_format)


def validate_tables(tables: Mapping[str, pd.DataFrame]) -> Report:
    """Validate in-memory tables against the data contracts.

    Single-table checks use the pandera schemas of ``single_table.table_schema``; cross-table checks look
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
