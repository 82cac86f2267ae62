"""Tests of the Fraud Detection Handbook adapter (features.adapters.fdh) on a made-up FDH-shaped slice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.adapters.fdh import adapt_fdh, load_fdh
from features.contracts import TABLES, empty_table
from features.io import validate_dir
from features.validation import validate_tables
from serving.cli import main

FDH_DIR = Path(__file__).parents[2].parent / "shared" / "benchmarks" / "fdh"


def fdh_slice() -> pd.DataFrame:
    """Six made-up transactions with the FDH columns and dtypes (one amount of 0.00)."""
    times = pd.to_datetime(
        [
            "2018-04-01 00:05:00",
            "2018-04-01 09:30:00",
            "2018-04-01 13:00:00",
            "2018-04-02 08:00:00",
            "2018-04-03 12:00:00",
            "2018-04-03 23:59:00",
        ]
    ).astype("datetime64[ns]")
    start = pd.Timestamp("2018-04-01")
    return pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(6, dtype="int64"),
            "TX_DATETIME": times,
            "CUSTOMER_ID": np.array([10, 11, 12, 10, 12, 11], dtype="int64"),
            "TERMINAL_ID": np.array([100, 101, 100, 102, 103, 101], dtype="int64"),
            "TX_AMOUNT": [12.5, 80.0, 0.0, 300.0, 45.25, 99.99],
            "TX_TIME_SECONDS": ((times - start).total_seconds()).astype("int64"),
            "TX_TIME_DAYS": ((times - start).days).astype("int64"),
            "TX_FRAUD": np.array([0, 0, 0, 1, 1, 1], dtype="int64"),
            "TX_FRAUD_SCENARIO": np.array([0, 0, 0, 1, 2, 3], dtype="int64"),
        }
    )


def test_adapted_slice_meets_the_contracts():
    tables, adjustments = adapt_fdh(fdh_slice())
    report = validate_tables(tables)
    assert report.ok, report.to_text()
    # The zero amount is kept, raised to 0.01 and counted (not dropped, not silent).
    assert [(p.severity, p.column, p.rows, p.example_keys, p.example_values) for p in adjustments] == [
        ("warning", "amount", 1, ("2",), ("0.0",))
    ]
    assert tables["transactions"].loc[2, ["amount", "unit_price"]].tolist() == [0.01, 0.01]
    for name in ("customers", "transactions", "account_events", "watchlist", "labels"):
        assert list(tables[name].columns) == list(TABLES[name].column_names)
        assert tables[name].dtypes.to_dict() == empty_table(name).dtypes.to_dict(), name


def test_mapping_of_cards_terminals_labels_and_patterns():
    tables, _ = adapt_fdh(fdh_slice())
    customers = tables["customers"].set_index("customer_id")
    assert customers.index.tolist() == ["C10", "C11", "C12", "T100", "T101", "T102", "T103"]
    assert customers.loc["C10", ["customer_type", "role"]].tolist() == ["individual", "buyer"]
    assert customers.loc["T103", ["customer_type", "role"]].tolist() == ["business", "seller"]
    first_day = pd.Timestamp("2018-04-01T00:00:00Z")
    assert (customers["onboarded_at"] == first_day).all() and (
        customers["last_kyc_review_at"] == first_day
    ).all()
    assert customers["full_name"].isna().all() and customers["birth_date"].isna().all()

    tx = tables["transactions"]
    assert tx["transaction_id"].tolist() == ["0", "1", "2", "3", "4", "5"]
    assert tx.loc[0, ["buyer_id", "seller_id", "currency", "goods_category", "payment_method"]].tolist() == [
        "C10",
        "T100",
        "EUR",
        "general",
        "card",
    ]
    assert tx.loc[5, "occurred_at"] == pd.Timestamp("2018-04-03T23:59:00Z")
    assert (tx["quantity"] == 1).all() and tx["buyer_country"].isna().all() and tx["ip_address"].isna().all()

    labels = tables["labels"]
    assert labels["entity_id"].tolist() == ["3", "4", "5"]
    assert (labels["label"] == "fraud").all() and (labels["source"] == "chargeback").all()
    delay = labels["known_at"] - tx["occurred_at"].iloc[3:].reset_index(drop=True)
    assert (delay == pd.Timedelta(days=7)).all()

    patterns = tables["patterns"]
    assert patterns.to_dict("list") == {
        "entity_type": ["transaction"] * 3,
        "entity_id": ["3", "4", "5"],
        "pattern": ["fdh_scenario_1", "fdh_scenario_2", "fdh_scenario_3"],
    }
    # The simulator's scenario is ground truth only: it is in no contract table.
    for name in TABLES:
        assert not any("SCENARIO" in c.upper() or c.startswith("TX_") for c in tables[name].columns)
    assert tables["account_events"].empty and tables["watchlist"].empty


def test_profiles_add_cards_and_terminals_without_transactions():
    profiles = pd.DataFrame({"CUSTOMER_ID": [10, 11, 12, 13], "x_customer_id": [1.0, 2.0, 3.0, 4.0]})
    terminals = pd.DataFrame({"TERMINAL_ID": [100, 101, 102, 103, 104], "x_terminal_id": [1.0] * 5})
    tables, _ = adapt_fdh(fdh_slice(), profiles, terminals)
    ids = tables["customers"]["customer_id"].tolist()
    assert "C13" in ids and "T104" in ids and len(ids) == 9
    assert "x_customer_id" not in tables["customers"].columns
    assert validate_tables(tables).ok


def test_without_the_clamp_validation_rejects_zero_amounts():
    tables, adjustments = adapt_fdh(fdh_slice(), min_amount=None)
    assert adjustments == []
    report = validate_tables(tables)
    assert [(p.column, p.example_rows, p.reason) for p in report.errors] == [
        ("amount", (3,), "out of range: must be > 0"),
        ("unit_price", (3,), "out of range: must be > 0"),
    ]


def test_validate_a_fdh_folder_through_the_cli(tmp_path, capsys):
    fdh_slice().to_parquet(tmp_path / "transactions.parquet", index=False)
    pd.DataFrame({"CUSTOMER_ID": [10, 11, 12]}).to_parquet(tmp_path / "customer_profiles.parquet")
    report = validate_dir(tmp_path, source="fdh")
    assert report.ok and report.source_format == "fdh"
    assert report.row_counts == {
        "customers": 7,
        "transactions": 6,
        "account_events": 0,
        "watchlist": 0,
        "labels": 3,
        "patterns": 3,
    }
    assert [p.file for p in report.warnings] == ["transactions.parquet"]
    assert main(["validate", "--source", "fdh", str(tmp_path)]) == 0
    assert (
        "WARNING transactions.amount: 1 of 6 rows: amount below 0.01 raised to 0.01"
        in capsys.readouterr().out
    )
    assert load_fdh(tmp_path)["transactions"].shape == (6, len(TABLES["transactions"].columns))


def test_fdh_folder_without_a_required_column(tmp_path, capsys):
    fdh_slice().drop(columns="TX_FRAUD").to_parquet(tmp_path / "transactions.parquet")
    report = validate_dir(tmp_path, source="fdh")
    assert [(p.table, p.file, p.reason) for p in report.errors] == [
        (
            "transactions",
            "transactions.parquet",
            "cannot adapt the FDH data: FDH transactions lack column(s) TX_FRAUD",
        )
    ]
    with pytest.raises(ValueError, match="TX_FRAUD"):
        load_fdh(tmp_path)
    assert main(["validate", "--source", "fdh", str(tmp_path)]) == 1
    assert main(["validate", "--source", "fdh", str(tmp_path / "nowhere")]) == 2


@pytest.mark.slow
@pytest.mark.skipif(
    not (FDH_DIR / "transactions.parquet").is_file(), reason=f"benchmark data not at {FDH_DIR}"
)
def test_real_fdh_data_meets_the_contracts():
    report = validate_dir(FDH_DIR, source="fdh")
    assert report.ok, report.to_text()
    assert report.row_counts["transactions"] == 1_303_778
    assert report.row_counts["labels"] == 10_659 == report.row_counts["patterns"]
    # Only the documented adjustment: the simulator's 0.00 amounts, raised and counted.
    assert [(p.check, p.column) for p in report.problems] == [("adjusted_value", "amount")]
