"""Readers of data folders (parquet or CSV) that give every contract table its contract dtypes,
and the loader on top of them that hands over only data that meets the contracts.

This module sits above ``features.validation`` and ``features.adapters`` (it reads, adapts and
validates); neither imports it, and the problems all of them build live in ``features.problems``.

Each contract table ``name`` is read from ``{folder}/{name}.parquet`` or ``{folder}/{name}.csv``
(parquet when both exist). Absent optional tables become empty frames with the contract's
columns; an absent required table is a problem. Nothing is converted silently: a value that
cannot be converted to its column's type becomes a null *and* a "wrong type" problem naming the
file, column, rows and values, which ``features.validation`` reports (and does not report again
as a missing value).

Contract dtypes (``features.contracts.contract_dtype``): text kinds (``str``, ``category``, ``country``) are
pandas ``str``; ``float`` is ``float64``; ``int`` is ``int64`` (``Int64`` when nulls are
present); ``bool`` is ``boolean``; ``timestamp`` and ``date`` are ``datetime64[us, UTC]``.

CSV: every field is read as text, then converted. An empty field is a null; nothing else is
(``NA`` is Namibia, ``null`` a possible name), except that a quoted empty field (``""``) is an
empty string in a text column (e.g. ``aliases``: "empty string when none"). Timestamps are
ISO 8601 with or without an offset (without one means UTC); a bare number (``1700000000``,
``2025``) is never read as a time, since epoch seconds, milliseconds and years cannot be told
apart. Booleans are true/false/1/0 (any case); whole numbers may be written ``3`` or ``3.0``.
Parquet: compatible physical types are converted (other time units, naive times taken as UTC,
date columns, integers stored as floats without fractions, dictionary-encoded text); text in a
number or time column is a wrong type, not parsed, and so is a number in a time column. Times
are held in microseconds (years -290,000 to 294,000): a parquet time beyond that is reported on
its own row, and the contracts' time ranges then refuse whatever is implausible.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pa_compute
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from features.adapters.fdh import read_fdh
from features.contracts import (
    AUXILIARY_TABLES,
    REQUIRED_TABLES,
    TABLES,
    TIME_DTYPE,
    Col,
    Table,
    contract_dtype,
    empty_table,
)
from features.problems import EXPECTED_KIND, Dataset, InvalidDataError, Problem, problem_at
from features.units import US_PER_MS, US_PER_SECOND
from features.validation import Report, validate_dataset

log = logging.getLogger(__name__)

SOURCES = ("kycrisk", "fdh")
TEXT_KINDS = ("str", "category", "country")
# A number written where a time is due: digits with an optional sign, fraction and exponent.
BARE_NUMBER = r"^[+-]?([0-9]+([.,][0-9]*)?|[.,][0-9]+)([eE][+-]?[0-9]+)?$"
EPOCH_REASON = (
    "wrong type: a number is not a time (epoch seconds or milliseconds are not read); "
    "expected an ISO 8601 timestamp such as 2025-01-31T12:00:00Z"
)
_US_PER_UNIT = {"s": US_PER_SECOND, "ms": US_PER_MS}
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})


# --- Converting a column to its contract dtype -------------------------------------------------


def _is_text(series: pd.Series) -> bool:
    if isinstance(series.dtype, pd.StringDtype):
        return True
    return pd.api.types.is_object_dtype(series.dtype) and pd.api.types.infer_dtype(series, skipna=True) in (
        "string",
        "empty",
    )


def _as_text(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    if series.dtype == "str":
        return series, np.zeros(len(series), dtype=bool)
    if _is_text(series) or series.isna().all():
        return series.astype("str"), np.zeros(len(series), dtype=bool)
    if pd.api.types.is_object_dtype(series.dtype):
        is_str = series.map(lambda v: isinstance(v, str), na_action="ignore")
        bad = (series.notna() & ~is_str.fillna(True).astype(bool)).to_numpy()
        return series.where(~bad).astype("str"), bad
    return pd.Series(pd.NA, index=series.index, dtype="str"), series.notna().to_numpy()


def _parse_numbers(text: pd.Series) -> pd.Series:
    return pd.to_numeric(text.str.strip(), errors="coerce").astype("float64")


def _unparsed(text: pd.Series, values: pd.Series) -> np.ndarray:
    """Text that gave no value; a quoted empty CSV field in a non-text column is a null, not an error."""
    return (text.notna() & (text.str.strip() != "") & values.isna()).to_numpy(dtype=bool)


def _as_float(series: pd.Series, parse_text: bool) -> tuple[pd.Series, np.ndarray]:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return pd.Series(np.nan, index=series.index), series.notna().to_numpy()
    if pd.api.types.is_numeric_dtype(dtype):
        return series.astype("float64"), np.zeros(len(series), dtype=bool)
    if series.isna().all():
        return pd.Series(np.nan, index=series.index, dtype="float64"), np.zeros(len(series), dtype=bool)
    if parse_text and _is_text(series):
        values = _parse_numbers(series)
        return values, _unparsed(series, values)
    return pd.Series(np.nan, index=series.index), series.notna().to_numpy()


def _as_int(series: pd.Series, parse_text: bool) -> tuple[pd.Series, np.ndarray]:
    dtype = series.dtype
    if pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype):
        values = series.astype("Int64")
        bad = np.zeros(len(series), dtype=bool)
    else:
        floats, bad = _as_float(series, parse_text)
        # Integers stored as floats are fine; a fraction (or an int64 overflow) is a wrong type.
        whole = (floats % 1 == 0) & (floats.abs() < 2**63)
        bad = bad | (floats.notna() & ~whole).to_numpy()
        values = floats.where(~bad).astype("Int64")
    if not values.hasnans:
        values = values.astype("int64")
    return values, bad


def _as_bool(series: pd.Series, parse_text: bool) -> tuple[pd.Series, np.ndarray]:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return series.astype("boolean"), np.zeros(len(series), dtype=bool)
    if series.isna().all():
        return pd.Series(pd.NA, index=series.index, dtype="boolean"), np.zeros(len(series), dtype=bool)
    if pd.api.types.is_object_dtype(dtype) and pd.api.types.infer_dtype(series, skipna=True) == "boolean":
        return series.astype("boolean"), np.zeros(len(series), dtype=bool)
    if parse_text and _is_text(series):
        lowered = series.str.strip().str.lower()
        values = pd.Series(pd.NA, index=series.index, dtype="boolean")
        values[lowered.isin(_TRUE).to_numpy()] = True
        values[lowered.isin(_FALSE).to_numpy()] = False
        return values, _unparsed(series, values)
    return pd.Series(pd.NA, index=series.index, dtype="boolean"), series.notna().to_numpy()


def _bare_numbers(text: pd.Series) -> np.ndarray:
    """Which values of a text column are bare numbers (``1700000000``, ``-1.5e9``); nulls are not."""
    arrow = pa.array(text.str.strip(), type=pa.large_string(), from_pandas=True)
    found = pa_compute.fill_null(pa_compute.match_substring_regex(arrow, BARE_NUMBER), False)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def _in_microseconds(series: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """UTC times in microseconds; values a microsecond time cannot hold become NaT, flagged.

    Parquet may store seconds or milliseconds far beyond that range (year 300,000): casting the
    column would raise for all of it, and the report must name the rows instead.
    """
    factor = _US_PER_UNIT.get(series.dt.unit)
    beyond = np.zeros(len(series), dtype=bool)
    if factor is not None:
        ticks = series.array.asi8
        limit = np.iinfo(np.int64).max // factor
        beyond = series.notna().to_numpy() & ((ticks > limit) | (ticks < -limit))
        if beyond.any():
            series = series.where(~beyond)
    return series.astype(TIME_DTYPE), beyond


def _as_time(series: pd.Series, parse_text: bool) -> tuple[pd.Series, np.ndarray]:
    dtype = series.dtype
    ok = np.zeros(len(series), dtype=bool)
    if isinstance(dtype, pd.DatetimeTZDtype):
        return _in_microseconds(series.dt.tz_convert("UTC"))
    if pd.api.types.is_datetime64_dtype(dtype):
        # Naive times are UTC by contract.
        return _in_microseconds(series.dt.tz_localize("UTC"))
    if series.isna().all():
        return pd.Series(pd.NaT, index=series.index, dtype=TIME_DTYPE), ok
    if pd.api.types.is_object_dtype(dtype) and pd.api.types.infer_dtype(series, skipna=True) in (
        "date",
        "datetime",
        "datetime64",
    ):
        values = pd.to_datetime(series, utc=True, errors="coerce").astype(TIME_DTYPE)
        return values, (series.notna() & values.isna()).to_numpy()
    if parse_text and _is_text(series):
        values = pd.to_datetime(series.str.strip(), format="ISO8601", utc=True, errors="coerce").astype(
            TIME_DTYPE
        )
        # ISO 8601 reads "2025" as a year and "20250131" as a date; as bare numbers they are
        # refused with the epochs, so that no number ever becomes a time by accident.
        bare = _bare_numbers(series)
        if bare.any():
            values = values.where(~bare)
        return values, _unparsed(series, values) | bare
    return pd.Series(pd.NaT, index=series.index, dtype=TIME_DTYPE), series.notna().to_numpy()


def _convert(series: pd.Series, col: Col, parse_text: bool) -> tuple[pd.Series, np.ndarray]:
    """Convert ``series`` to the contract dtype of ``col``; return it and the unconvertible mask."""
    if col.kind in TEXT_KINDS:
        return _as_text(series)
    if col.kind == "float":
        return _as_float(series, parse_text)
    if col.kind == "int":
        return _as_int(series, parse_text)
    if col.kind == "bool":
        return _as_bool(series, parse_text)
    return _as_time(series, parse_text)


def _conform(
    table: Table, df: pd.DataFrame, *, file: str | None, parse_text: bool
) -> tuple[pd.DataFrame, list[Problem], dict[tuple[str, str], np.ndarray]]:
    df = df.reset_index(drop=True)
    problems: list[Problem] = []
    unconverted: dict[tuple[str, str], np.ndarray] = {}
    converted: dict[str, pd.Series] = {}
    for name in df.columns:
        if name not in table.column_names:
            continue
        col = table.column(name)
        original = df[name]
        try:
            values, bad = _convert(original, col, parse_text)
        except (TypeError, ValueError, OverflowError):
            # Values pandas cannot even cast (e.g. uint64 beyond int64, nested objects): none fits.
            dtype = "Int64" if col.kind == "int" else contract_dtype(col)
            values = pd.Series(None, index=original.index, dtype=object).astype(dtype)
            bad = original.notna().to_numpy(dtype=bool)
        converted[name] = values
        if bad.any():
            unconverted[(table.name, name)] = np.flatnonzero(bad)
            for mask, reason, check in _conversion_failures(original, col, bad):
                positions = np.flatnonzero(mask)
                problems.append(
                    problem_at(
                        table,
                        df,
                        name,
                        positions,
                        reason,
                        check,
                        values=original.iloc[positions[:5]],
                        file=file,
                    )
                )
    return df.assign(**converted) if converted else df, problems, unconverted


def _conversion_failures(original: pd.Series, col: Col, bad: np.ndarray) -> list[tuple[np.ndarray, str, str]]:
    """Split the unconvertible values of a column by cause: (rows mask, reason, check code)."""
    expected = EXPECTED_KIND[col.kind]
    if col.kind not in ("timestamp", "date"):
        found = "text" if _is_text(original) else str(original.dtype)
        return [(bad, f"wrong type: expected {expected}, found {found}", "wrong_type")]
    if _is_text(original):
        epoch = bad & _bare_numbers(original)
        other = bad & ~epoch
        failures = [(epoch, EPOCH_REASON, "wrong_type")] if epoch.any() else []
        if other.any():
            failures.append((other, f"wrong type: expected {expected}, found text", "wrong_type"))
        return failures
    if pd.api.types.is_datetime64_any_dtype(original.dtype):
        reason = "out of range: beyond what a microsecond UTC time can hold (years -290,000 to 294,000)"
        return [(bad, reason, "unrepresentable_time")]
    reason = f"wrong type: expected {expected}, found {original.dtype}"
    if pd.api.types.is_numeric_dtype(original.dtype) and not pd.api.types.is_bool_dtype(original.dtype):
        reason += " (numbers are not read as epoch times)"
    return [(bad, reason, "wrong_type")]


def conform_table(
    name: str, df: pd.DataFrame, *, parse_text: bool = False
) -> tuple[pd.DataFrame, list[Problem]]:
    """Convert a table's contract columns to their contract dtypes, reporting what does not fit.

    For producers of in-memory tables (generators, adapters): lossless conversions happen
    (time units and zones, ints stored as floats, object text); values that do not fit become
    nulls and are reported. Unknown columns are kept as they are. The input is not modified.

    Args:
        name: contract table name.
        df: the table.
        parse_text: also parse text in number, boolean and time columns (as for CSV files).

    Returns:
        The converted copy (same columns, default index) and the wrong-type problems.
    """
    frame, problems, _ = _conform(TABLES[name], df, file=None, parse_text=parse_text)
    return frame, problems


# --- Reading files ----------------------------------------------------------------------------


def _unreadable(table: str, file: Path, exc: BaseException | str) -> Problem:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if len(text) > 300:
        text = text[:297] + "..."
    return Problem(table, None, f"unreadable file: {text}", check="unreadable_file", file=file.name)


def _read_parquet(file: Path, table: str) -> tuple[pd.DataFrame | None, list[Problem]]:
    try:
        arrow = pq.read_table(file)
    except (pa.ArrowException, OSError, ValueError) as exc:
        return None, [_unreadable(table, file, exc)]
    names = arrow.column_names
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        return None, [_unreadable(table, file, f"duplicate column names {', '.join(duplicates)}")]
    # Keep dates as dates (not objects) and text as pandas str.
    return arrow.to_pandas(date_as_object=False), []


def _malformed_csv_rows(file: Path, n_fields: int) -> list[tuple[int, int]]:
    """(line, fields) of every row whose field count differs from the header's (slow path)."""
    bad = []
    with file.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.reader(handle)
        next(reader, None)
        for row in reader:
            if row and len(row) != n_fields:
                bad.append((reader.line_num, len(row)))
    return bad


def _read_csv(file: Path, table: str) -> tuple[pd.DataFrame | None, list[Problem]]:
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        return None, [_unreadable(table, file, exc)]
    if not header:
        return None, [_unreadable(table, file, "empty file (no header line)")]
    duplicates = sorted({n for n in header if header.count(n) > 1})
    if duplicates:
        return None, [_unreadable(table, file, f"duplicate column names {', '.join(duplicates)}")]
    invalid: list[int] = []

    def on_invalid(row: Any) -> str:
        invalid.append(row.actual_columns)
        return "skip"

    try:
        arrow = pa_csv.read_csv(
            file,
            parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=on_invalid),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except (pa.ArrowException, OSError, ValueError) as exc:
        return None, [_unreadable(table, file, exc)]
    if invalid:
        # Row numbers after a broken row would be off by one: report the lines, skip the table.
        bad = _malformed_csv_rows(file, len(header)) or [(0, n) for n in invalid]
        shown = ", ".join(f"line {line} has {n}" if line else f"a row has {n}" for line, n in bad[:5])
        more = ", ..." if len(bad) > 5 else ""
        reason = (
            f"malformed CSV: {len(bad):,} row{'s' * (len(bad) != 1)} with a wrong number of fields "
            f"(header has {len(header)}; {shown}{more}); table not validated further"
        )
        return None, [Problem(table, None, reason, rows=len(bad), check="malformed_csv", file=file.name)]
    return arrow.to_pandas(), []


def read_table(
    file: Path, name: str
) -> tuple[pd.DataFrame | None, list[Problem], dict[tuple[str, str], np.ndarray]]:
    """Read one contract table from a parquet or CSV file and convert it to contract dtypes.

    Args:
        file: ``.parquet`` or ``.csv`` file.
        name: contract table name.

    Returns:
        The frame (``None`` when the file cannot be read), the problems found and the positions
        of unconvertible values per (table, column).
    """
    table = TABLES[name]
    is_csv = file.suffix.lower() == ".csv"
    raw, problems = _read_csv(file, name) if is_csv else _read_parquet(file, name)
    if raw is None:
        return None, problems, {}
    frame, conform_problems, unconverted = _conform(table, raw, file=file.name, parse_text=is_csv)
    return frame, problems + conform_problems, unconverted


def _read_auxiliary(file: Path) -> tuple[pd.DataFrame | None, list[Problem]]:
    name = file.stem
    if file.suffix == ".csv":
        try:
            return pd.read_csv(file, dtype="str", keep_default_na=False, na_values=[""]), []
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            return None, [_unreadable(name, file, exc)]
    try:
        return pq.read_table(file).to_pandas(), []
    except (pa.ArrowException, OSError, ValueError) as exc:
        return None, [_unreadable(name, file, exc)]


def _find(folder: Path, name: str) -> tuple[Path | None, Path | None]:
    parquet, text = folder / f"{name}.parquet", folder / f"{name}.csv"
    return (parquet if parquet.is_file() else None), (text if text.is_file() else None)


def read_dataset(path: Path, source: str = "kycrisk") -> Dataset:
    """Read every contract table of a data folder, with contract dtypes, and the problems met.

    Args:
        path: folder holding ``customers``, ``transactions``, ``account_events``,
            ``watchlist`` and ``labels`` as ``.parquet`` or ``.csv`` (and optionally
            ``patterns``); for ``source="fdh"``, the benchmark's folder.
        source: ``"kycrisk"`` (files named after the contract tables) or ``"fdh"`` (the Fraud
            Detection Handbook's files, mapped by ``features.adapters.fdh``).

    Returns:
        A ``Dataset`` (unpacks as ``tables, problems``). Unreadable and missing required tables
        are absent from ``tables`` and reported; absent optional tables are empty frames.

    Raises:
        FileNotFoundError, NotADirectoryError: when ``path`` is not a folder.
        ValueError: for an unknown ``source``.
    """
    path = Path(path)
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    if not path.exists():
        raise FileNotFoundError(f"data folder {path} does not exist")
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a folder")
    if source == "fdh":
        return read_fdh(path)

    dataset = Dataset(source=str(path), source_format=source)
    for name in TABLES:
        parquet, text = _find(path, name)
        file = parquet or text
        if file is None:
            if name in REQUIRED_TABLES:
                dataset.problems.append(
                    Problem(
                        name,
                        None,
                        f"missing required table: neither {name}.parquet nor {name}.csv in {path}",
                        check="missing_table",
                    )
                )
                dataset.unavailable.add(name)
            else:
                dataset.tables[name] = empty_table(name)
            continue
        if parquet and text:
            dataset.problems.append(
                Problem(
                    name,
                    None,
                    f"both {parquet.name} and {text.name} exist: read the parquet file, ignored the CSV",
                    severity="warning",
                    check="ignored_file",
                    file=text.name,
                )
            )
        frame, problems, unconverted = read_table(file, name)
        dataset.problems += problems
        if frame is None:
            dataset.unavailable.add(name)
            continue
        dataset.tables[name] = frame
        dataset.files[name] = file.name
        dataset.unconverted.update(unconverted)

    for name in AUXILIARY_TABLES:
        parquet, text = _find(path, name)
        file = parquet or text
        if file is not None:
            frame, problems = _read_auxiliary(file)
            dataset.problems += problems
            if frame is not None:
                dataset.tables[name] = frame
                dataset.files[name] = file.name

    known = {f"{name}.{ext}" for name in (*TABLES, *AUXILIARY_TABLES) for ext in ("parquet", "csv")}
    for other in sorted(path.iterdir()):
        if other.suffix.lower() in (".parquet", ".csv") and other.name not in known:
            dataset.problems.append(
                Problem(
                    other.stem,
                    None,
                    "file not read: its name is not a contract table",
                    severity="info",
                    check="ignored_file",
                    file=other.name,
                )
            )
    return dataset


# --- Loading: read, validate, and hand over only valid data ------------------------------------


def validate_dir(path: Path, source: str = "kycrisk") -> Report:
    """Read a data folder and validate it; problems met while reading are in the report.

    Args:
        path: folder holding ``customers``, ``transactions``, ... as ``.parquet`` or ``.csv``
            (or, for ``source="fdh"``, the benchmark's ``transactions.parquet``).
        source: input layout, ``"kycrisk"`` (the contracts) or ``"fdh"``.

    Returns:
        The report.

    Raises:
        FileNotFoundError, NotADirectoryError: when ``path`` is not a folder.
    """
    return validate_dataset(read_dataset(Path(path), source=source))


def load_valid_dataset(path: Path, source: str = "kycrisk") -> dict[str, pd.DataFrame]:
    """Read and validate a data folder; return its tables only when they meet the contracts.

    Later steps (feature building, training) call this so that nothing runs on invalid data.
    Warnings are logged, not raised.

    Args:
        path: the data folder.
        source: input layout, ``"kycrisk"`` or ``"fdh"``.

    Returns:
        Table name -> DataFrame with contract dtypes (plus ``patterns`` when present).

    Raises:
        InvalidDataError: when any error was found; its message is the text report.
    """
    dataset = read_dataset(Path(path), source=source)
    report = validate_dataset(dataset)
    if not report.ok:
        raise InvalidDataError(report)
    for problem in report.problems:
        log.warning("%s", problem.to_text(report.row_counts.get(problem.table)))
    return dataset.tables
