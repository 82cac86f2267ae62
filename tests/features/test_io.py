"""Tests of features.io (parquet and CSV readers) and of `kycrisk validate` on data folders."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from features.contracts import TABLES, TIME_DTYPE, contract_dtype, empty_table
from features.io import conform_table, read_dataset, validate_dir
from tests.features.test_validation import valid_tables
from serving.cli import main


def write(folder: Path, tables: dict[str, pd.DataFrame], fmt: str = "parquet") -> Path:
    """Write tables as parquet, or as CSV with every value quoted (so "" differs from a null)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        if fmt == "parquet":
            df.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            options = pa_csv.WriteOptions(quoting_style="all_valid")
            pa_csv.write_csv(pa.Table.from_pandas(df, preserve_index=False), folder / f"{name}.csv", options)
    return folder


def write_csv_text(folder: Path, name: str, rows: list[dict[str, str]]) -> None:
    """Write a CSV with pandas, fields as given; contract columns not given are empty."""
    df = pd.DataFrame(rows, dtype="str")
    df = df.reindex(
        columns=[*TABLES[name].column_names, *[c for c in df.columns if c not in TABLES[name].column_names]]
    )
    df.to_csv(folder / f"{name}.csv", index=False)


def only_check(report, check: str):
    """The single problem with code ``check`` (fails with the whole report otherwise)."""
    found = [p for p in report.problems if p.check == check]
    assert len(found) == 1, report.to_text()
    return found[0]


def kycrisk_executable() -> str:
    # The console script next to this interpreter first, so that another kycrisk on PATH is not used.
    found = shutil.which("kycrisk", path=str(Path(sys.executable).parent)) or shutil.which("kycrisk")
    assert found, "the kycrisk console script is not installed"
    return found


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    return valid_tables()


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_reading_gives_the_contract_frames(tmp_path, tables, fmt):
    dataset = read_dataset(write(tmp_path, tables, fmt))
    assert dataset.problems == []
    assert dataset.files["transactions"] == f"transactions.{fmt}"
    for name, expected in tables.items():
        pd.testing.assert_frame_equal(dataset.tables[name], expected, check_dtype=True)


def test_csv_and_parquet_give_identical_frames(tmp_path, tables):
    from_parquet, _ = read_dataset(write(tmp_path / "pq", tables, "parquet"))
    from_csv, _ = read_dataset(write(tmp_path / "csv", tables, "csv"))
    assert from_parquet.keys() == from_csv.keys()
    for name in from_parquet:
        pd.testing.assert_frame_equal(from_parquet[name], from_csv[name])


def test_csv_conversions(tmp_path, tables):
    folder = write(tmp_path, {"customers": tables["customers"]}, "csv")
    rows = [
        # Offset, "Z", naive (= UTC) and date-only timestamps; booleans in any case and as 1/0.
        {"transaction_id": "t1", "occurred_at": "2025-02-01T12:00:00+02:00", "quantity": "2"},
        {"transaction_id": "t2", "occurred_at": "2025-02-01T10:00:00Z", "quantity": "3.0"},
        {"transaction_id": "t3", "occurred_at": "2025-02-01 10:00:00", "quantity": "1"},
        {"transaction_id": "t4", "occurred_at": "2025-02-01", "quantity": "1"},
    ]
    common = {
        "buyer_id": "c1",
        "seller_id": "s1",
        "amount": "10.5",
        "currency": "EUR",
        "goods_category": "toys",
        "unit_price": "5.25",
        "payment_method": "card",
        "buyer_country": "NA",
    }
    write_csv_text(folder, "transactions", [row | common for row in rows])
    events = [
        {"event_id": "e1", "customer_id": "c1", "occurred_at": "2025-02-01T00:00:00Z", "event_type": "login"},
    ]
    write_csv_text(folder, "account_events", events)
    write_csv_text(
        folder,
        "customers",
        [
            {
                "customer_id": cid,
                "customer_type": "individual",
                "role": "both",
                "onboarded_at": "2025-01-01",
                "twofa_enabled": flag,
            }
            for cid, flag in (("c1", "TRUE"), ("s1", "0"), ("x1", "false"), ("x2", "1"), ("x3", ""))
        ],
    )
    dataset = read_dataset(folder)
    assert dataset.problems == [], [p.to_text() for p in dataset.problems]
    tx = dataset.tables["transactions"]
    assert tx["occurred_at"].dtype == TIME_DTYPE
    assert tx["occurred_at"].tolist() == [
        pd.Timestamp("2025-02-01T10:00:00Z"),
        pd.Timestamp("2025-02-01T10:00:00Z"),
        pd.Timestamp("2025-02-01T10:00:00Z"),
        pd.Timestamp("2025-02-01T00:00:00Z"),
    ]
    assert tx["quantity"].dtype == "int64" and tx["quantity"].tolist() == [2, 3, 1, 1]
    assert tx["amount"].tolist() == [10.5] * 4
    # "NA" is Namibia: only an empty field is a null.
    assert tx["buyer_country"].tolist() == ["NA"] * 4
    assert tx["device_id"].isna().all() and tx["device_id"].dtype == "str"
    twofa = dataset.tables["customers"]["twofa_enabled"]
    assert twofa.dtype == "boolean" and twofa.tolist() == [True, False, False, True, pd.NA]
    assert validate_dir(folder).ok


def test_wrong_type_in_csv_names_file_column_rows_and_values(tmp_path, tables):
    folder = write(tmp_path, tables, "csv")
    text = (folder / "transactions.csv").read_text().splitlines()
    df = pd.read_csv(folder / "transactions.csv", dtype="str", keep_default_na=False)
    df.loc[1, "amount"] = "12,50"
    df.loc[2, "amount"] = "abc"
    df.loc[3, "occurred_at"] = "yesterday"
    df.loc[0, "quantity"] = "1.5"
    df.to_csv(folder / "transactions.csv", index=False)
    assert len(text) == 5

    report = validate_dir(folder)
    assert not report.ok
    wrong = {p.column: p for p in report.problems if p.check == "wrong_type"}
    assert wrong.keys() == {"amount", "occurred_at", "quantity"}
    amount = wrong["amount"]
    assert (
        amount.table,
        amount.file,
        amount.rows,
        amount.example_rows,
        amount.example_keys,
        amount.example_values,
    ) == (
        "transactions",
        "transactions.csv",
        2,
        (2, 3),
        ("t2", "t3"),
        ("'12,50'", "'abc'"),
    )
    assert amount.reason == "wrong type: expected a number, found text"
    assert wrong["occurred_at"].reason == "wrong type: expected an ISO 8601 timestamp, found text"
    assert wrong["quantity"].example_values == ("'1.5'",)
    # The unconvertible values became nulls; they are not reported a second time as nulls.
    assert not [p for p in report.problems if p.check == "null"]
    text_report = report.to_text()
    assert (
        "ERROR   transactions.amount: 2 of 4 rows: wrong type: expected a number, found text "
        "(rows 2, 3; keys t2, t3; values '12,50', 'abc') [transactions.csv]" in text_report
    )
    assert "in a CSV file row n is on line n + 1" in text_report


def test_wrong_type_in_parquet(tmp_path, tables):
    folder = write(tmp_path, tables, "parquet")
    tx = tables["transactions"].astype({"quantity": "str", "buyer_id": "str"})
    tx["amount"] = tx["amount"].astype("str")
    tx.to_parquet(folder / "transactions.parquet")
    report = validate_dir(folder)
    wrong = {p.column: p for p in report.problems if p.check == "wrong_type"}
    # Text in a number column is a wrong type in parquet: it is not parsed as in CSV.
    assert wrong.keys() == {"amount", "quantity"}
    assert (wrong["amount"].rows, wrong["amount"].file) == (4, "transactions.parquet")
    assert wrong["amount"].reason == "wrong type: expected a number, found text"


def test_parquet_int_ids_are_a_wrong_type(tmp_path, tables):
    folder = write(tmp_path, tables, "parquet")
    labels = tables["labels"].assign(label_id=[1, 2])
    labels.to_parquet(folder / "labels.parquet")
    problem = [p for p in validate_dir(folder).problems if p.check == "wrong_type"]
    assert [(p.table, p.column, p.rows, p.reason) for p in problem] == [
        ("labels", "label_id", 2, "wrong type: expected text, found int64")
    ]


def test_parquet_compatible_types_are_converted(tmp_path, tables):
    folder = write(tmp_path, tables, "parquet")
    tx = tables["transactions"].copy()
    tx["occurred_at"] = tx["occurred_at"].dt.tz_convert("Asia/Tokyo").astype("datetime64[ns, Asia/Tokyo]")
    tx["quantity"] = tx["quantity"].astype("float32")
    tx["amount"] = tx["amount"].astype("float32").astype("float64")
    tx["currency"] = tx["currency"].astype("category")
    tx.to_parquet(folder / "transactions.parquet")
    customers = tables["customers"].copy()
    customers["onboarded_at"] = customers["onboarded_at"].dt.tz_localize(None).astype("datetime64[ms]")
    arrow = pa.Table.from_pandas(customers, preserve_index=False)
    dates = pa.array(customers["birth_date"].dt.date, type=pa.date32())
    arrow = arrow.set_column(arrow.schema.get_field_index("birth_date"), "birth_date", dates)
    pq.write_table(arrow, folder / "customers.parquet")

    dataset = read_dataset(folder)
    assert dataset.problems == []
    got_tx, got_customers = dataset.tables["transactions"], dataset.tables["customers"]
    for name in TABLES["transactions"].column_names:
        assert got_tx[name].dtype == contract_dtype(TABLES["transactions"].column(name)), name
    pd.testing.assert_series_equal(got_tx["occurred_at"], tables["transactions"]["occurred_at"])
    pd.testing.assert_series_equal(got_tx["quantity"], tables["transactions"]["quantity"])
    pd.testing.assert_series_equal(got_customers["birth_date"], tables["customers"]["birth_date"])
    pd.testing.assert_series_equal(got_customers["onboarded_at"], tables["customers"]["onboarded_at"])


def test_parquet_ints_with_fractions_are_a_wrong_type(tmp_path, tables):
    folder = write(tmp_path, tables, "parquet")
    tables["transactions"].assign(quantity=[1.0, 2.5, 1.0, 3.0]).to_parquet(folder / "transactions.parquet")
    problem = next(p for p in validate_dir(folder).problems if p.check == "wrong_type")
    assert (problem.column, problem.example_rows, problem.example_values) == ("quantity", (2,), ("2.5",))


def test_garbage_parquet_is_reported_with_its_file(tmp_path, tables, capsys):
    folder = write(tmp_path, tables, "parquet")
    (folder / "labels.parquet").write_bytes(b"PAR1 this is not parquet \x00\x01\x02")
    report = validate_dir(folder)
    problem = next(p for p in report.problems if p.check == "unreadable_file")
    assert (problem.table, problem.file, problem.severity) == ("labels", "labels.parquet", "error")
    assert problem.reason.startswith("unreadable file: ")
    # The other tables are still validated, and nothing else is reported.
    assert len(report.problems) == 1 and report.row_counts["transactions"] == 4

    assert main(["validate", str(folder)]) == 1
    out, err = capsys.readouterr()
    assert "ERROR   labels: unreadable file" in out and "[labels.parquet]" in out
    assert "Traceback" not in out + err


def test_csv_with_a_broken_row(tmp_path, tables):
    folder = write(tmp_path, tables, "csv")
    lines = (folder / "account_events.csv").read_text().splitlines()
    lines.insert(2, "e9,c1,2025-01-20T10:00:00Z,login,d1,1.2.3.4,BR,surplus,fields")
    (folder / "account_events.csv").write_text("\n".join(lines) + "\n")
    report = validate_dir(folder)
    problem = next(p for p in report.problems if p.check == "malformed_csv")
    assert (problem.table, problem.file, problem.rows) == ("account_events", "account_events.csv", 1)
    assert "line 3 has 9" in problem.reason and "header has 7" in problem.reason
    assert not report.ok


def test_missing_required_table(tmp_path, tables, capsys):
    del tables["customers"]
    folder = write(tmp_path, tables, "parquet")
    report = validate_dir(folder)
    problem = next(p for p in report.problems if p.check == "missing_table")
    assert problem.table == "customers" and "neither customers.parquet nor customers.csv" in problem.reason
    assert len(report.errors) == 1
    assert main(["validate", str(folder)]) == 1
    assert "ERROR   customers: missing required table" in capsys.readouterr().out


def test_absent_optional_tables_are_empty_contract_frames(tmp_path, tables):
    folder = write(tmp_path, {"customers": tables["customers"], "transactions": tables["transactions"]})
    dataset = read_dataset(folder)
    assert dataset.problems == []
    for name in ("account_events", "watchlist", "labels"):
        pd.testing.assert_frame_equal(dataset.tables[name], empty_table(name))
        assert list(dataset.tables[name].columns) == list(TABLES[name].column_names)


def test_parquet_preferred_over_csv_with_a_warning(tmp_path, tables):
    folder = write(tmp_path, tables, "parquet")
    bad = tables["transactions"].assign(amount=-1.0)
    bad.to_csv(folder / "transactions.csv", index=False)
    report = validate_dir(folder)
    assert report.ok
    assert [(p.severity, p.check, p.file) for p in report.problems] == [
        ("warning", "ignored_file", "transactions.csv")
    ]


def test_other_files_are_listed_not_read(tmp_path, tables):
    folder = write(tmp_path, tables, "parquet")
    tables["transactions"].to_parquet(folder / "transaction.parquet")
    report = validate_dir(folder)
    assert report.ok
    assert [(p.severity, p.file) for p in report.problems] == [("info", "transaction.parquet")]


def test_conform_table_converts_compatible_types_and_reports_the_rest(tables):
    tx = tables["transactions"].astype({"occurred_at": "datetime64[ns, UTC]", "quantity": "float64"})
    tx["device_id"] = tx["device_id"].astype(object)
    tx.loc[0, "device_id"] = 7
    conformed, problems = conform_table("transactions", tx)
    assert conformed["occurred_at"].dtype == TIME_DTYPE and conformed["quantity"].dtype == "int64"
    assert [(p.column, p.example_rows) for p in problems] == [("device_id", (1,))]
    assert pd.isna(conformed.loc[0, "device_id"])
    assert tx.loc[0, "device_id"] == 7  # the input is untouched


def test_cli_valid_folder_exits_0(tmp_path, tables, capsys):
    folder = write(tmp_path, tables, "csv")
    assert main(["validate", str(folder)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith(
        "VALID: 0 errors, 0 warnings; rows read: customers 4, transactions 4"
    )

    assert main(["validate", "--json", str(folder)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["row_counts"]["labels"] == 2


def test_cli_missing_folder_exits_2(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_invalid_folder_exits_1_with_the_report_on_stdout(tmp_path, tables, capsys):
    tables["transactions"].loc[2, "seller_id"] = "ghost"
    folder = write(tmp_path, tables, "csv")
    assert main(["validate", str(folder)]) == 1
    out, err = capsys.readouterr()
    assert (
        "ERROR   transactions.seller_id: 1 of 4 rows: dangling reference: not a known customers.customer_id "
        "(1 distinct unknown id) (rows 3; keys t3; values 'ghost') [transactions.csv]" in out.splitlines()
    )
    assert out.splitlines()[-1].startswith("INVALID: 1 error, 0 warnings")
    assert "Traceback" not in err


def test_kycrisk_command_exits_0_on_a_valid_folder(tmp_path, tables):
    # One real run of the installed entry point (about 2 s: a fresh interpreter imports pandas).
    folder = write(tmp_path, tables, "parquet")
    done = subprocess.run(
        [kycrisk_executable(), "validate", str(folder)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("VALID: 0 errors, 0 warnings")


def test_values_pandas_cannot_cast_are_reported_not_raised(tables):
    tx = tables["transactions"].copy()
    tx["quantity"] = pd.Series([1, 2, 2**64 - 1, 3], dtype="uint64")
    tx["device_id"] = pd.Series([[1], "d2", None, {"x": 1}], dtype=object)
    conformed, problems = conform_table("transactions", tx)
    assert [(p.column, p.example_rows) for p in problems] == [
        ("quantity", (1, 2, 3, 4)),
        ("device_id", (1, 4)),
    ]
    assert conformed["quantity"].isna().all() and conformed.loc[1, "device_id"] == "d2"


# --- Times that are numbers, or beyond any plausible calendar ---------------------------------------


def rewrite_csv(folder: Path, name: str, changes: dict[tuple[int, str], str]) -> None:
    """Set fields of ``{name}.csv`` (0-based data row, column) to the given text."""
    df = pd.read_csv(folder / f"{name}.csv", dtype="str", keep_default_na=False)
    for (row, column), text in changes.items():
        df.loc[row, column] = text
    df.to_csv(folder / f"{name}.csv", index=False)


@pytest.mark.parametrize("epoch", ["1700000000", "1700000000000", "1.7e9", " 2025 ", "20250201", "-1"])
def test_numbers_in_a_csv_time_column_are_refused_as_epochs(tmp_path, tables, epoch):
    folder = write(tmp_path, tables, "csv")
    rewrite_csv(folder, "transactions", {(2, "occurred_at"): epoch})
    report = validate_dir(folder)
    problem = only_check(report, "wrong_type")
    assert (problem.table, problem.column, problem.example_rows, problem.file) == (
        "transactions",
        "occurred_at",
        (3,),
        "transactions.csv",
    )
    assert problem.reason == (
        "wrong type: a number is not a time (epoch seconds or milliseconds are not read); "
        "expected an ISO 8601 timestamp such as 2025-01-31T12:00:00Z"
    )
    # The row is refused, never read as 1970 or as 2025-01-01.
    assert not report.ok and not [p for p in report.problems if p.check == "null"]


def test_epochs_and_other_bad_times_in_one_column_get_their_own_reasons(tmp_path, tables):
    folder = write(tmp_path, tables, "csv")
    rewrite_csv(folder, "customers", {(0, "onboarded_at"): "1735689600", (2, "onboarded_at"): "01/12/2024"})
    reasons = {p.example_rows: p.reason for p in validate_dir(folder).problems if p.check == "wrong_type"}
    assert reasons[(1,)].startswith("wrong type: a number is not a time")
    assert reasons[(3,)] == "wrong type: expected an ISO 8601 timestamp, found text"


@pytest.mark.parametrize("dtype", [pa.int64(), pa.float64()])
def test_numbers_in_a_parquet_time_column_are_refused(tmp_path, tables, dtype):
    folder = write(tmp_path, tables, "parquet")
    arrow = pa.Table.from_pandas(tables["transactions"], preserve_index=False)
    index = arrow.schema.get_field_index("occurred_at")
    arrow = arrow.set_column(index, "occurred_at", pa.array([1_738_400_000] * 4, type=dtype))
    pq.write_table(arrow, folder / "transactions.parquet")
    problem = only_check(validate_dir(folder), "wrong_type")
    assert (problem.column, problem.rows) == ("occurred_at", 4)
    assert problem.reason == (
        f"wrong type: expected an ISO 8601 timestamp, found {dtype.to_pandas_dtype().__name__} "
        "(numbers are not read as epoch times)"
    )


@pytest.mark.parametrize(
    ("table", "name", "text", "check"),
    [
        ("transactions", "occurred_at", "0001-01-01T00:00:00Z", "too_early"),
        ("transactions", "occurred_at", "0001-01-01T00:00:00+03:04", "too_early"),  # year 0 in UTC
        ("transactions", "occurred_at", "3000-01-01T00:00:00Z", "too_late"),
        ("transactions", "occurred_at", "9999-12-31T23:00:00-05:00", "too_late"),  # year 10000 in UTC
        ("customers", "onboarded_at", "3000-01-01T00:00:00Z", "too_late"),
        ("customers", "email_first_seen_at", "0001-01-01T00:00:00+03:04", "too_early"),
        ("customers", "document_expiry", "9999-12-31", "too_late"),
        ("customers", "birth_date", "0001-01-01", "too_early"),
        ("labels", "known_at", "3000-01-01T00:00:00Z", "too_late"),
    ],
)
def test_csv_times_outside_pandas_nanosecond_range_are_problems(tmp_path, tables, table, name, text, check):
    folder = write(tmp_path, tables, "csv")
    rewrite_csv(folder, table, {(0, name): text})
    report = validate_dir(folder)
    problem = only_check(report, check)
    assert (problem.table, problem.column, problem.example_rows, problem.file) == (
        table,
        name,
        (1,),
        f"{table}.csv",
    )


def test_parquet_times_outside_pandas_nanosecond_range_are_problems(tmp_path, tables):
    folder = write(tmp_path, tables, "parquet")
    tx = pa.Table.from_pandas(tables["transactions"], preserve_index=False)
    times = [dt.datetime(1, 1, 1, tzinfo=dt.UTC), None, dt.datetime(9999, 12, 31, tzinfo=dt.UTC), None]
    times[1] = times[3] = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)
    for unit in ("s", "ms", "us"):
        column = pa.array(times, type=pa.timestamp(unit, "UTC"))
        arrow = tx.set_column(tx.schema.get_field_index("occurred_at"), "occurred_at", column)
        pq.write_table(arrow, folder / "transactions.parquet")
        report = validate_dir(folder)
        assert (
            only_check(report, "too_early").example_rows,
            only_check(report, "too_late").example_rows,
        ) == (
            (1,),
            (3,),
        ), unit
    customers = pa.Table.from_pandas(tables["customers"], preserve_index=False)
    expiry = pa.array([dt.date(9999, 12, 31), dt.date(1, 1, 1), None, None], type=pa.date32())
    customers = customers.set_column(
        customers.schema.get_field_index("document_expiry"), "document_expiry", expiry
    )
    pq.write_table(customers, folder / "customers.parquet")
    report = validate_dir(folder)
    late, early = (
        next(p for p in report.problems if p.column == "document_expiry" and p.check == check)
        for check in ("too_late", "too_early")
    )
    assert (late.example_rows, early.example_rows) == ((1,), (2,))


def test_parquet_times_a_microsecond_time_cannot_hold_are_named_by_row(tmp_path, tables, capsys):
    # 10**13 seconds is year 318,857: casting the column would raise; only that row is refused.
    folder = write(tmp_path, tables, "parquet")
    tx = pa.Table.from_pandas(tables["transactions"], preserve_index=False)
    seconds = pa.array([1_738_400_000, 10**13, -(10**13), 1_738_400_000], type=pa.timestamp("s", "UTC"))
    pq.write_table(
        tx.set_column(tx.schema.get_field_index("occurred_at"), "occurred_at", seconds),
        folder / "transactions.parquet",
    )
    dataset = read_dataset(folder)
    assert dataset.tables["transactions"]["occurred_at"].notna().tolist() == [True, False, False, True]
    report = validate_dir(folder)
    problem = only_check(report, "unrepresentable_time")
    assert (problem.column, problem.example_rows) == ("occurred_at", (2, 3))
    # Beyond Python's calendar, the example is still printed (numpy's form of the time).
    assert problem.example_values[0].startswith("318857-05-20T17:46:40")
    assert problem.reason.startswith("out of range: beyond what a microsecond UTC time can hold")
    assert main(["validate", str(folder)]) == 1
    out, err = capsys.readouterr()
    assert "transactions.occurred_at: 2 of 4 rows: out of range" in out and "Traceback" not in out + err


def test_a_header_only_required_csv_is_an_error_an_optional_one_is_not(tmp_path, tables, capsys):
    folder = write(tmp_path, tables, "csv")
    for name in ("transactions", "labels"):
        header = (folder / f"{name}.csv").read_text().splitlines()[0]
        (folder / f"{name}.csv").write_text(header + "\n")
    report = validate_dir(folder)
    assert [(p.table, p.check, p.file) for p in report.errors] == [
        ("transactions", "empty_table", "transactions.csv")
    ]
    assert main(["validate", str(folder)]) == 1
    assert (
        "ERROR   transactions: has no rows: a required table must hold data [transactions.csv]"
        in capsys.readouterr().out
    )
