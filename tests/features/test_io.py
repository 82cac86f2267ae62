"""Tests of features.io (parquet and CSV readers) and of `kycrisk validate` on data folders."""

from __future__ import annotations

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

from features.contracts import TABLES
from features.io import TIME_DTYPE, conform_table, contract_dtype, empty_table, read_dataset
from features.validation import validate_dir
from tests.features.test_validation import valid_tables
from training.cli import main


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
