"""Tests of features.validation: each kind of bad input is named (table, column, rows, reason)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from features.contracts import ID_PATTERN, TABLES, TEXT_PATTERN, TIME_DTYPE, contract_dtype
from features.io import load_valid_dataset
from features.problems import InvalidDataError, Problem, Report
from features.validation import cross_table, single_table, validate_tables


def column(table: str, name: str, values: list) -> pd.Series:
    """A column with its contract dtype (times parsed as ISO 8601 UTC)."""
    dtype = contract_dtype(TABLES[table].column(name))
    if dtype == TIME_DTYPE:
        return pd.Series(pd.to_datetime(values, utc=True, format="ISO8601")).astype(dtype)
    return pd.Series(values, dtype=dtype)


def frame(table: str, **values: list) -> pd.DataFrame:
    """A contract table from lists; contract columns not given are all null."""
    n = len(next(iter(values.values())))
    return pd.DataFrame(
        {c.name: column(table, c.name, values.get(c.name, [None] * n)) for c in TABLES[table].columns}
    )


def valid_tables() -> dict[str, pd.DataFrame]:
    """A tiny marketplace that meets every contract (hand-made, a few rows per table)."""
    customers = frame(
        "customers",
        customer_id=["c1", "c2", "s1", "s2"],
        customer_type=["individual", "individual", "business", "business"],
        role=["buyer", "both", "seller", "seller"],
        full_name=["Ana Lima", "Jonas Berg", "Acme GmbH", None],
        birth_date=["1990-05-01", "1975-12-31", None, None],
        email=["ana@example.com", "jonas@example.org", "sales@acme.example", None],
        email_first_seen_at=["2015-01-01T10:00:00Z", None, "2010-06-01T00:00:00Z", None],
        phone=["+5511999990000", "+4915112345678", "+493012345678", None],
        address=["Rua A 1, Sao Paulo", "Hauptstr. 2, Berlin", "Werkstr. 3, Hamburg", None],
        nationality=["BR", "NA", None, None],
        residence_country=["BR", "DE", "DE", "CN"],
        document_type=["passport", "national_id", "business_registration", None],
        document_number=["FA1234567", "T22000129", "HRB12345", None],
        document_country=["BR", "DE", "DE", None],
        document_expiry=["2031-01-01", "2020-01-01", None, None],
        business_registration_number=[None, None, "HRB12345", None],
        business_registered_at=[None, None, "2001-03-15", None],
        industry=[None, None, "electronics", "wholesale"],
        twofa_enabled=[True, False, True, None],
        onboarded_at=[
            "2025-01-01T00:00:00Z",
            "2025-01-02T08:30:00Z",
            "2024-12-01T00:00:00Z",
            "2024-12-15T00:00:00Z",
        ],
        last_kyc_review_at=["2025-01-01T00:00:00Z", "2025-02-01T00:00:00Z", "2024-12-01T00:00:00Z", None],
        declared_monthly_volume_usd=[500.0, 0.0, 50000.0, None],
    )
    transactions = frame(
        "transactions",
        transaction_id=["t1", "t2", "t3", "t4"],
        occurred_at=[
            "2025-02-01T10:00:00Z",
            "2025-02-01T11:00:00Z",
            "2025-02-02T09:15:00+02:00",
            "2025-02-03T00:00:00Z",
        ],
        buyer_id=["c1", "c2", "c1", "c2"],
        seller_id=["s1", "s1", "s2", "c2"],
        amount=[100.0, 2500.5, 19.99, 3.0],
        currency=["EUR", "USD", "CNY", "EUR"],
        goods_category=["electronics", "phones", "toys", "books"],
        unit_price=[50.0, 2500.5, 19.99, 1.0],
        quantity=[2, 1, 1, 3],
        payment_method=["card", "bank_transfer", "wallet", "card"],
        buyer_country=["BR", "DE", "BR", None],
        seller_country=["DE", "DE", "CN", None],
        device_id=["d1", "d2", "d1", None],
        ip_address=["198.51.100.7", "203.0.113.9", "198.51.100.7", None],
        ip_country=["BR", "DE", "BR", None],
    )
    account_events = frame(
        "account_events",
        event_id=["e1", "e2"],
        customer_id=["c1", "c2"],
        occurred_at=["2025-01-20T10:00:00Z", "2025-01-21T10:00:00Z"],
        event_type=["login", "password_reset"],
        device_id=["d1", None],
        ip_address=["198.51.100.7", None],
        ip_country=["BR", None],
    )
    watchlist = frame(
        "watchlist",
        entry_id=["w1", "w2"],
        list_type=["sanction", "pep"],
        full_name=["Ivan Example", "Maria Sample"],
        aliases=["Iwan Example|I. Example", ""],
        birth_date=["1960-01-01", None],
        country=["RU", "BR"],
        listed_at=["2022-03-01T00:00:00Z", None],
    )
    labels = frame(
        "labels",
        label_id=["l1", "l2"],
        entity_type=["transaction", "customer"],
        entity_id=["t2", "c2"],
        label=["fraud", "kyc_refresh_required"],
        known_at=["2025-02-10T00:00:00Z", "2025-03-01T00:00:00Z"],
        source=["chargeback", "manual_review"],
    )
    return {
        "customers": customers,
        "transactions": transactions,
        "account_events": account_events,
        "watchlist": watchlist,
        "labels": labels,
    }


@pytest.fixture
def tables() -> dict[str, pd.DataFrame]:
    return valid_tables()


def only(report: Report, check: str) -> Problem:
    """The single problem with code ``check`` (fails with the whole report otherwise)."""
    found = [p for p in report.problems if p.check == check]
    assert len(found) == 1, report.to_text()
    return found[0]


def test_valid_tables_give_an_ok_report_without_problems(tables):
    report = validate_tables(tables)
    assert report.ok, report.to_text()
    assert report.problems == []
    assert report.row_counts == {
        "customers": 4,
        "transactions": 4,
        "account_events": 2,
        "watchlist": 2,
        "labels": 2,
    }
    assert report.to_text().splitlines()[-1].startswith("VALID: 0 errors, 0 warnings")


def test_validation_does_not_modify_its_input(tables):
    before = {name: df.copy() for name, df in tables.items()}
    tables["transactions"] = tables["transactions"].set_axis([10, 11, 12, 13])
    tables["transactions"].loc[12, "amount"] = -1.0
    validate_tables(tables)
    pd.testing.assert_frame_equal(tables["customers"], before["customers"])
    assert tables["transactions"].index.tolist() == [10, 11, 12, 13]


def test_missing_column(tables):
    tables["transactions"] = tables["transactions"].drop(columns="amount")
    report = validate_tables(tables)
    problem = only(report, "missing_column")
    assert (problem.table, problem.column, problem.severity) == ("transactions", "amount", "error")
    assert "ERROR   transactions.amount: missing required column" in report.to_text()


def test_optional_column_may_be_absent(tables):
    tables["labels"] = tables["labels"].drop(columns="source")
    tables["watchlist"] = tables["watchlist"].drop(columns="listed_at")
    assert validate_tables(tables).ok


def test_wrong_type_in_memory(tables):
    tables["transactions"]["amount"] = tables["transactions"]["amount"].astype("str")
    report = validate_tables(tables)
    problem = only(report, "wrong_type")
    assert (problem.table, problem.column) == ("transactions", "amount")
    assert problem.reason.startswith("wrong type: expected a number (float64), found str")
    # A column of the wrong type is not also reported as out of range.
    assert [p.column for p in report.errors] == ["amount"]


def test_wrong_type_of_single_values_in_an_object_column(tables):
    ids = tables["transactions"]["device_id"].astype(object)
    ids.iloc[2] = 12345
    tables["transactions"]["device_id"] = ids
    problem = only(validate_tables(tables), "wrong_type")
    # device_id is personal data: the report names the row but withholds the value.
    assert (problem.column, problem.rows, problem.example_rows, problem.example_values) == (
        "device_id",
        1,
        (3,),
        (),
    )


def test_null_in_required_field(tables):
    tables["transactions"].loc[1, "buyer_id"] = None
    problem = only(validate_tables(tables), "null")
    assert (problem.table, problem.column, problem.rows, problem.example_rows, problem.example_keys) == (
        "transactions",
        "buyer_id",
        1,
        (2,),
        ("t2",),
    )
    assert problem.reason == "missing value (null) in a required field"


def test_duplicate_key(tables):
    tables["customers"].loc[3, "customer_id"] = "c1"
    report = validate_tables(tables)
    problem = only(report, "duplicate_key")
    assert (problem.table, problem.column, problem.rows, problem.example_rows) == (
        "customers",
        "customer_id",
        2,
        (1, 4),
    )
    assert "1 key value used by more than one row" in problem.reason
    # s2 disappeared, so the transaction that sold from s2 dangles: said separately.
    assert only(report, "dangling_reference").example_keys == ("t3",)


def test_dangling_buyer(tables):
    tables["transactions"].loc[2, "buyer_id"] = "ghost"
    problem = only(validate_tables(tables), "dangling_reference")
    assert (
        problem.table,
        problem.column,
        problem.example_rows,
        problem.example_keys,
        problem.example_values,
    ) == (
        "transactions",
        "buyer_id",
        (3,),
        ("t3",),
        ("'ghost'",),
    )
    assert "not a known customers.customer_id" in problem.reason


def test_dangling_account_event_customer(tables):
    tables["account_events"].loc[0, "customer_id"] = "nobody"
    problem = only(validate_tables(tables), "dangling_reference")
    assert (problem.table, problem.column, problem.example_keys) == ("account_events", "customer_id", ("e1",))


def test_label_entity_not_found(tables):
    tables["labels"].loc[0, "entity_id"] = "t999"
    # A customer label naming a transaction id is dangling too: labels point at their own kind.
    tables["labels"].loc[1, "entity_id"] = "t1"
    problems = [p for p in validate_tables(tables).problems if p.check == "dangling_reference"]
    assert [(p.table, p.column, p.example_keys, p.reason) for p in problems] == [
        (
            "labels",
            "entity_id",
            ("l1",),
            "dangling reference: not a known transaction_id (1 distinct unknown id)",
        ),
        (
            "labels",
            "entity_id",
            ("l2",),
            "dangling reference: not a known customer_id (1 distinct unknown id)",
        ),
    ]


@pytest.mark.parametrize("column_name", ["amount", "unit_price"])
def test_negative_and_zero_amounts(tables, column_name):
    tables["transactions"].loc[[0, 3], column_name] = [-5.0, 0.0]
    report = validate_tables(tables)
    problem = only(report, "min_value")
    assert (problem.table, problem.column, problem.rows, problem.example_rows, problem.example_values) == (
        "transactions",
        column_name,
        2,
        (1, 4),
        ("-5.0", "0.0"),
    )
    assert problem.reason == "out of range: must be > 0"
    assert f"transactions.{column_name}: 2 of 4 rows: out of range: must be > 0" in report.to_text()


def test_quantity_and_declared_volume_ranges(tables):
    tables["transactions"].loc[0, "quantity"] = 0
    tables["customers"].loc[0, "declared_monthly_volume_usd"] = -1.0
    reasons = {(p.column, p.reason) for p in validate_tables(tables).errors}
    assert reasons == {
        ("quantity", "out of range: must be >= 1"),
        ("declared_monthly_volume_usd", "out of range: must be >= 0"),
    }


def test_birth_date_in_the_future_and_absurdly_old(tables):
    future = pd.Timestamp.now(tz="UTC").normalize() + pd.Timedelta(days=30)
    tables["customers"].loc[0, "birth_date"] = future
    tables["customers"].loc[1, "birth_date"] = pd.Timestamp("1850-01-01", tz="UTC")
    report = validate_tables(tables)
    in_future, too_early = only(report, "in_future"), only(report, "too_early")
    assert (in_future.table, in_future.column, in_future.example_rows) == ("customers", "birth_date", (1,))
    assert (too_early.column, too_early.example_rows) == ("birth_date", (2,))
    # Birth dates are personal data: keys are shown, values are not.
    assert in_future.example_keys == ("c1",) and in_future.example_values == ()
    assert "personal data" in in_future.reason


def test_date_with_a_time_of_day(tables):
    tables["customers"].loc[0, "document_expiry"] = pd.Timestamp("2031-01-01T12:00:00Z")
    problem = only(validate_tables(tables), "time_of_day")
    assert (problem.column, problem.example_rows) == ("document_expiry", (1,))


def test_label_known_before_its_transaction(tables):
    tables["labels"].loc[0, "known_at"] = pd.Timestamp("2025-01-31T00:00:00Z")
    problem = only(validate_tables(tables), "label_before_event")
    assert (problem.table, problem.column, problem.example_keys) == ("labels", "known_at", ("l1",))
    assert problem.reason == "label known before its transaction happened (known_at < occurred_at)"
    assert problem.example_values == ("2025-01-31T00:00:00+00:00 < 2025-02-01T11:00:00+00:00",)


def test_label_known_before_the_customer_was_onboarded(tables):
    tables["labels"].loc[1, "known_at"] = pd.Timestamp("2024-01-01T00:00:00Z")
    problem = only(validate_tables(tables), "label_before_event")
    assert (problem.example_keys, problem.reason) == (
        ("l2",),
        "label known before the customer was onboarded (known_at < onboarded_at)",
    )


def test_onboarding_after_last_kyc_review(tables):
    tables["customers"].loc[1, "last_kyc_review_at"] = pd.Timestamp("2025-01-01T00:00:00Z")
    problem = only(validate_tables(tables), "time_order")
    assert (problem.table, problem.column, problem.example_keys) == (
        "customers",
        "last_kyc_review_at",
        ("c2",),
    )


def test_transaction_before_onboarding_is_an_error_event_before_onboarding_a_warning(tables):
    tables["transactions"].loc[0, "occurred_at"] = pd.Timestamp("2024-12-31T00:00:00Z")
    tables["account_events"].loc[1, "occurred_at"] = pd.Timestamp("2025-01-02T08:00:00Z")
    report = validate_tables(tables)
    assert [(p.severity, p.table, p.column, p.example_keys) for p in report.problems] == [
        ("error", "transactions", "occurred_at", ("t1",)),
        ("warning", "account_events", "occurred_at", ("e2",)),
    ]
    assert "transaction before the buyer was onboarded" in report.problems[0].reason


def test_unknown_category(tables):
    tables["transactions"].loc[1, "goods_category"] = "weapons"
    tables["labels"].loc[0, "label"] = "FRAUD"
    report = validate_tables(tables)
    problems = [p for p in report.problems if p.check == "allowed_values"]
    assert [(p.table, p.column, p.example_rows, p.example_values) for p in problems] == [
        ("transactions", "goods_category", (2,), ("'weapons'",)),
        ("labels", "label", (1,), ("'FRAUD'",)),
    ]
    assert "not an allowed value" in problems[0].reason


def test_bad_country_code(tables):
    tables["transactions"]["buyer_country"] = column(
        "transactions", "buyer_country", ["XX", "de", "BRA", "NA"]
    )
    problem = only(validate_tables(tables), "country_code")
    # "NA" is Namibia, not a null.
    assert (problem.column, problem.rows, problem.example_rows, problem.example_values) == (
        "buyer_country",
        3,
        (1, 2, 3),
        ("'XX'", "'de'", "'BRA'"),
    )
    assert problem.reason == "not an ISO 3166-1 alpha-2 country code"


def test_blank_identifier(tables):
    tables["transactions"].loc[3, "transaction_id"] = "  "
    assert only(validate_tables(tables), "blank_id").example_rows == (4,)


def test_missing_required_table(tables):
    del tables["customers"]
    report = validate_tables(tables)
    problem = only(report, "missing_table")
    assert (problem.table, problem.column, problem.severity) == ("customers", None, "error")
    # Without customers, references to them are not checked (no flood of dangling ids).
    assert len(report.problems) == 1


def test_absent_optional_tables_are_fine(tables):
    assert validate_tables({"customers": tables["customers"], "transactions": tables["transactions"]}).ok


def test_unknown_column_is_a_warning_and_is_kept(tables):
    tables["transactions"]["colour"] = "red"
    report = validate_tables(tables)
    problem = only(report, "unknown_column")
    assert report.ok and (problem.severity, problem.column) == ("warning", "colour")
    assert "colour" in tables["transactions"].columns


def test_many_bad_rows_give_one_compact_problem():
    n = 20_000
    customers = frame(
        "customers",
        customer_id=["c1", "s1"],
        customer_type=["individual", "business"],
        role=["buyer", "seller"],
        onboarded_at=["2025-01-01T00:00:00Z"] * 2,
    )
    amounts = np.where(np.arange(n) % 2 == 0, -1.0, 10.0)
    transactions = frame(
        "transactions",
        transaction_id=[f"t{i}" for i in range(n)],
        occurred_at=["2025-02-01T00:00:00Z"] * n,
        buyer_id=["c1"] * n,
        seller_id=["s1"] * n,
        amount=amounts.tolist(),
        currency=["EUR"] * n,
        goods_category=["toys"] * n,
        unit_price=[10.0] * n,
        quantity=[1] * n,
        payment_method=["card"] * n,
    )
    report = validate_tables({"customers": customers, "transactions": transactions})
    problem = only(report, "min_value")
    assert problem.rows == n // 2
    assert problem.example_rows == (1, 3, 5, 7, 9)
    # One problem line between the header, the row-numbering note and the summary.
    assert len(report.problems) == 1 and len(report.to_text().splitlines()) == 4
    assert "10,000 of 20,000 rows" in report.to_text()


def test_report_to_json_and_text(tables):
    tables["transactions"].loc[0, "amount"] = -1.0
    report = validate_tables(tables)
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["errors"] == 1 and data["row_counts"]["transactions"] == 4
    assert data["problems"][0] | {"reason": None} == {
        "severity": "error",
        "table": "transactions",
        "column": "amount",
        "check": "min_value",
        "reason": None,
        "rows": 1,
        "example_rows": [1],
        "example_keys": ["t1"],
        "example_values": ["-1.0"],
        "file": None,
    }
    lines = report.to_text().splitlines()
    assert lines[-1].startswith("INVALID: 1 error, 0 warnings; rows read: customers 4, transactions 4")
    assert (
        "ERROR   transactions.amount: 1 of 4 rows: out of range: must be > 0 (rows 1; keys t1; values -1.0)"
        in lines
    )


def test_load_valid_dataset_raises_on_invalid_data(tmp_path, tables):
    for name, df in tables.items():
        df.to_parquet(tmp_path / f"{name}.parquet")
    loaded = load_valid_dataset(tmp_path)
    pd.testing.assert_frame_equal(loaded["transactions"], tables["transactions"])

    tables["transactions"].loc[0, "currency"] = "XYZ"
    tables["transactions"].to_parquet(tmp_path / "transactions.parquet")
    with pytest.raises(InvalidDataError) as caught:
        load_valid_dataset(tmp_path)
    assert isinstance(caught.value, ValueError)
    assert "transactions.currency" in str(caught.value)
    assert caught.value.report.errors[0].file == "transactions.parquet"


# --- Bounds shared with the service (features.contracts): amounts, ids, free text, times ----------


@pytest.mark.parametrize(
    ("table", "name", "value", "bound"),
    [
        ("transactions", "amount", 1e12 * 1.01, "1,000,000,000,000"),
        ("transactions", "unit_price", 1.7e308, "1,000,000,000,000"),
        ("transactions", "quantity", 1_000_001, "1,000,000"),
        ("customers", "declared_monthly_volume_usd", 2e12, "1,000,000,000,000"),
    ],
)
def test_numbers_above_their_bound(tables, table, name, value, bound):
    tables[table].loc[1, name] = value
    problem = only(validate_tables(tables), "max_value")
    assert (problem.table, problem.column, problem.example_rows) == (table, name, (2,))
    assert problem.reason == f"out of range: must be <= {bound}"


def test_the_bounds_themselves_are_allowed(tables):
    tables["transactions"].loc[0, ["amount", "unit_price", "quantity"]] = [1e12, 1e12, 1_000_000]
    tables["customers"].loc[0, "declared_monthly_volume_usd"] = 1e12
    assert validate_tables(tables).ok


def test_an_amount_whose_usd_value_overflows(tables):
    # The issue's poison order: 1.7e308 EUR is finite, but not in USD (x 1.16).
    tables["transactions"].loc[0, "amount"] = 1.7e308
    report = validate_tables(tables)
    assert {p.check for p in report.errors} == {"max_value", "usd_not_finite"}
    usd = only(report, "usd_not_finite")
    assert (usd.column, usd.example_keys) == ("amount", ("t1",))


def test_usd_overflow_is_caught_even_below_the_amount_bound(tables, monkeypatch):
    # MAX_AMOUNT keeps the committed rates safe; a rate table that changed must not poison the state.
    monkeypatch.setattr(cross_table, "_usd_per_unit", lambda: {"USD": 1.0, "EUR": 1e300, "CNY": 0.14})
    tables["transactions"].loc[0, "amount"] = 1e12
    problem = only(validate_tables(tables), "usd_not_finite")
    assert (problem.example_rows, problem.reason) == (
        (1,),
        "amount does not convert to a finite USD value (amount x usd_per_unit of currency)",
    )


def test_an_infinite_amount_is_reported_once_as_not_finite(tables):
    tables["transactions"].loc[2, "amount"] = np.inf
    assert [p.check for p in validate_tables(tables).errors] == ["finite"]


@pytest.mark.parametrize(
    "bad_id",
    ["t\x00x", "\x1b[31mt9", "t\u202e9", "t 9", "x" * 129, "-t9", "t9\n", "t\u00e99"],
)
def test_transaction_ids_outside_the_identifier_set(tables, bad_id):
    tables["transactions"].loc[1, "transaction_id"] = bad_id
    report = validate_tables(tables)
    problem = only(report, "bad_identifier")
    assert (problem.table, problem.column, problem.example_rows) == ("transactions", "transaction_id", (2,))
    assert problem.reason.startswith("not a valid identifier: 1-128 characters of A-Z a-z 0-9")
    # The report can be printed to a terminal: what it shows of the id is escaped, never raw.
    assert all(char.isprintable() or char == "\n" for char in report.to_text())


def test_identifiers_at_the_edge_of_the_set_are_valid(tables):
    tables["transactions"].loc[0, "transaction_id"] = "T9_a.b:c@d#e/f+g=h-" + "x" * 109  # 128 chars
    tables["customers"]["customer_id"] = tables["customers"]["customer_id"].replace({"c1": "0c1"})
    tables["transactions"]["buyer_id"] = tables["transactions"]["buyer_id"].replace({"c1": "0c1"})
    tables["account_events"]["customer_id"] = tables["account_events"]["customer_id"].replace({"c1": "0c1"})
    assert validate_tables(tables).ok, validate_tables(tables).to_text()


def test_bad_references_are_identifier_problems_too(tables):
    # Foreign keys are matched on their distinct values; a bad one is named like any other.
    tables["transactions"].loc[[0, 2], "buyer_id"] = "c1\x1b[0m"
    tables["labels"].loc[1, "entity_id"] = "c2\u2066"
    problems = {
        (p.column, p.example_rows) for p in validate_tables(tables).errors if p.check == "bad_identifier"
    }
    assert problems == {("buyer_id", (1, 3)), ("entity_id", (2,))}


def test_a_blank_identifier_is_reported_once(tables):
    tables["transactions"].loc[3, "transaction_id"] = "  "
    assert [p.check for p in validate_tables(tables).errors] == ["blank_id"]


@pytest.mark.parametrize(
    ("table", "name", "value"),
    [
        ("customers", "full_name", "Ana\x1b[2J Lima"),
        ("customers", "address", "Rua A 1\u202e, Sao Paulo"),
        ("customers", "email", "ana\x00@example.com"),
        ("transactions", "device_id", "d1\td2"),
        ("account_events", "ip_address", "198.51.100.7\x85"),
        ("watchlist", "aliases", "Iwan\u2068 Example"),
    ],
)
def test_control_characters_and_bidi_overrides_in_free_text(tables, table, name, value):
    tables[table].loc[0, name] = value
    problem = only(validate_tables(tables), "bad_text")
    assert (problem.table, problem.column, problem.example_rows) == (table, name, (1,))
    assert problem.reason.startswith("control character or bidirectional override in text")
    assert problem.example_values == ()  # personal data: never printed


def test_free_text_in_any_script_and_up_to_the_length_limit_is_valid(tables):
    tables["customers"].loc[0, "full_name"] = "Zoë Ñúñez 李小龍 Ελένη Заира"
    tables["customers"].loc[1, "address"] = "a" * 512
    assert validate_tables(tables).ok


def test_free_text_longer_than_the_limit(tables):
    tables["customers"].loc[1, "address"] = "é" * 513
    problem = only(validate_tables(tables), "text_too_long")
    assert (problem.column, problem.example_rows, problem.reason) == (
        "address",
        (2,),
        "too long: more than 512 characters (values not shown: personal data)",
    )


@pytest.mark.parametrize("name", ["customers", "transactions"])
def test_a_required_table_without_rows_is_an_error(tables, name):
    tables[name] = tables[name].iloc[0:0]
    report = validate_tables(tables)
    problem = only(report, "empty_table")
    assert (problem.table, problem.column, problem.reason, problem.severity) == (
        name,
        None,
        "has no rows: a required table must hold data",
        "error",
    )
    assert f"ERROR   {name}: has no rows" in report.to_text()


def test_optional_tables_without_rows_are_fine(tables):
    for name in ("account_events", "watchlist", "labels"):
        tables[name] = tables[name].iloc[0:0]
    assert validate_tables(tables).ok


def test_born_after_being_onboarded(tables):
    # Not in the future, so only the order of the two dates gives it away.
    tables["customers"].loc[1, "birth_date"] = pd.Timestamp("2025-01-03", tz="UTC")
    problem = only(validate_tables(tables), "born_after_onboarding")
    assert (problem.column, problem.example_rows, problem.example_keys, problem.example_values) == (
        "birth_date",
        (2,),
        ("c2",),
        (),
    )
    assert (
        problem.reason
        == "born after being onboarded (birth_date > onboarded_at) (values not shown: personal data)"
    )


def test_born_on_the_day_of_onboarding_is_valid(tables):
    tables["customers"].loc[1, "birth_date"] = pd.Timestamp("2025-01-02", tz="UTC")
    assert validate_tables(tables).ok


@pytest.mark.parametrize(
    ("name", "value", "check"),
    [
        ("onboarded_at", "3000-01-01T00:00:00Z", "too_late"),
        ("onboarded_at", "0001-01-01T00:00:00Z", "too_early"),
        ("email_first_seen_at", "0001-01-01T00:00:00+03:04", "too_early"),
        ("email_first_seen_at", "9999-12-31T23:59:59Z", "too_late"),
        ("document_expiry", "9999-12-31", "too_late"),
        ("birth_date", "0001-01-01", "too_early"),
    ],
)
def test_customer_times_far_outside_their_range(tables, name, value, check):
    times = tables["customers"][name].tolist()
    times[0] = value
    tables["customers"][name] = column("customers", name, times)
    problem = only(validate_tables(tables), check)
    assert (problem.table, problem.column, problem.example_rows) == ("customers", name, (1,))


@pytest.mark.parametrize("pattern", [ID_PATTERN, TEXT_PATTERN])
def test_the_fast_pattern_checks_agree_with_the_contract_patterns(pattern):
    # Validation runs the contract patterns through pyarrow's RE2 (rewritten escapes); the service
    # runs them as written. Both must accept and refuse the same values.
    samples = [
        "c1",
        "T-9_a.b:c@d#e/f+g=h",
        "x" * 128,
        "x" * 129,
        "",
        " ",
        "-a",
        "a b",
        "a\x00",
        "\x1b[31m",
        "a\n",
        "a\t",
        "a\x7f",
        "a\x85",
        "a\x9f",
        "a\xa0",
        "a\u202a",
        "a\u202e",
        "a\u202f",
        "a\u2066",
        "a\u2069",
        "a\u206a",
        "Zoë 李",
        "ana@example.com",
        "+5511999990000",
        "\U0001f600",
    ]
    expected = [re.fullmatch(pattern, s) is not None for s in samples]
    got = single_table._fullmatch(pattern)(pd.Series(samples, dtype="str")).tolist()
    assert got == expected


def test_the_seeding_path_refuses_the_poison_inputs_of_issue_9(tmp_path, tables):
    # load_valid_dataset feeds training and Scorer.seed: none of these may reach a state.
    tables["transactions"].loc[0, ["amount", "unit_price"]] = [1.7e308, 1.7e308]
    tables["transactions"].loc[1, "transaction_id"] = "t2\x00\x1b[31m"
    tables["customers"].loc[0, "birth_date"] = pd.Timestamp("0001-01-01", tz="UTC")
    tables["customers"].loc[1, "onboarded_at"] = pd.Timestamp("3000-01-01", tz="UTC")
    tables["customers"].loc[2, "document_expiry"] = pd.Timestamp("9999-12-31", tz="UTC")
    for name, df in tables.items():
        df.to_parquet(tmp_path / f"{name}.parquet")
    with pytest.raises(InvalidDataError) as caught:
        load_valid_dataset(tmp_path)
    found = {(p.table, p.column, p.check) for p in caught.value.report.errors}
    assert {
        ("transactions", "amount", "max_value"),
        ("transactions", "amount", "usd_not_finite"),
        ("transactions", "unit_price", "max_value"),
        ("transactions", "transaction_id", "bad_identifier"),
        ("customers", "birth_date", "too_early"),
        ("customers", "onboarded_at", "too_late"),
        ("customers", "document_expiry", "too_late"),
    } <= found
    assert "\x00" not in str(caught.value) and "\x1b" not in str(caught.value)
