"""KYC profile features on hand-made rows with hand-computed expectations."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from features.documents import with_check_digit
from features.profile import PartyProfileFeatures
from features.profile_values import name_email_similarity, phone_country

T = pd.Timestamp("2026-03-01 12:00", tz="UTC")


def _ts(text: str | None) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC") if text else pd.NaT


def _row(**overrides) -> dict:
    row = {
        "occurred_at": T,
        "buyer_customer_type": "individual",
        "buyer_full_name": "Anna Schmidt",
        "buyer_birth_date": _ts("1990-03-01"),
        "buyer_email": "anna.schmidt@gmail.com",
        "buyer_email_first_seen_at": _ts("2020-01-01"),
        "buyer_phone": "+4915112345678",
        "buyer_address": "Hauptstr. 1, Berlin",
        "buyer_nationality": "DE",
        "buyer_residence_country": "DE",
        "buyer_document_type": "passport",
        "buyer_document_number": with_check_digit("C01X00T4"),
        "buyer_document_country": "DE",
        "buyer_document_expiry": _ts("2030-01-01"),
        "buyer_business_registered_at": pd.NaT,
        "buyer_industry": None,
        "buyer_twofa_enabled": True,
        "buyer_onboarded_at": _ts("2026-02-19 12:00"),
        "buyer_last_kyc_review_at": _ts("2026-01-30 12:00"),
        "buyer_declared_monthly_volume_usd": 500.0,
    }
    row.update({f"buyer_{k}": v for k, v in overrides.items()})
    return row


def _frame(*rows: dict) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    for name in ("buyer_full_name", "buyer_email", "buyer_phone", "buyer_industry", "buyer_document_number"):
        frame[name] = frame[name].astype("str")
    return frame


@pytest.fixture(scope="module")
def fitted() -> PartyProfileFeatures:
    return PartyProfileFeatures(party="buyer").fit(_frame(_row()))


def test_ages_and_staleness(fitted: PartyProfileFeatures) -> None:
    out = fitted.transform(_frame(_row()))
    assert out.loc[0, "buyer_age_years"] == pytest.approx(
        (T - _ts("1990-03-01")).days / 365.25 + 0.5 / 365.25
    )
    assert out.loc[0, "buyer_account_age_days"] == pytest.approx(10.0)
    assert out.loc[0, "buyer_days_since_kyc_review"] == pytest.approx(30.0)
    assert out.loc[0, "buyer_email_age_days"] > 2000


def test_personal_data_is_dropped(fitted: PartyProfileFeatures) -> None:
    out = fitted.transform(_frame(_row()))
    for column in (
        "buyer_full_name",
        "buyer_email",
        "buyer_phone",
        "buyer_document_number",
        "buyer_birth_date",
    ):
        assert column not in out.columns


def test_documents_valid_typo_invalid_and_expired(fitted: PartyProfileFeatures) -> None:
    good = with_check_digit("C01X00T4")
    typo = good[:2] + good[3] + good[2] + good[4:]  # "1X" -> "X1": adjacent transposition
    rows = [
        _row(),
        _row(document_number=typo),
        _row(document_number="ZZZZZZZZ1"),
        _row(document_expiry=_ts("2026-02-01")),
        _row(document_type="driving_licence", document_number="DL-1234"),
    ]
    out = fitted.transform(_frame(*rows))
    assert list(out["buyer_doc_check_digit_valid"].iloc[:3]) == [1.0, 0.0, 0.0]
    assert out.loc[1, "buyer_doc_typo_likely"] == 1.0
    assert out.loc[0, "buyer_doc_typo_likely"] == 0.0
    assert list(out["buyer_doc_expired"].iloc[[0, 3]]) == [0.0, 1.0]
    assert out.loc[3, "buyer_doc_days_to_expiry"] == pytest.approx(-28.5)
    # Driving licences carry no ICAO check digit: unknown, not invalid.
    assert np.isnan(out.loc[4, "buyer_doc_check_digit_valid"])


def test_countries_risk_and_mismatches(fitted: PartyProfileFeatures) -> None:
    out = fitted.transform(_frame(_row(), _row(nationality="IR", phone="+12025550123")))
    assert out.loc[1, "buyer_nationality_risk"] > out.loc[0, "buyer_nationality_risk"]
    assert out.loc[0, "buyer_phone_residence_mismatch"] == 0.0
    assert out.loc[1, "buyer_phone_residence_mismatch"] == 1.0
    assert out.loc[1, "buyer_nationality_residence_mismatch"] == 1.0


def test_unknown_values_become_missing_not_errors(fitted: PartyProfileFeatures) -> None:
    row = _row(nationality="QQ", phone="not a phone", email=None, full_name=None, document_number=None)
    out = fitted.transform(_frame(row))
    assert np.isnan(out.loc[0, "buyer_nationality_risk"])
    assert np.isnan(out.loc[0, "buyer_phone_country_risk"])
    assert np.isnan(out.loc[0, "buyer_name_email_similarity"])
    assert out.loc[0, "buyer_doc_present"] == 0.0


def test_missing_column_is_named(fitted: PartyProfileFeatures) -> None:
    with pytest.raises(ValueError, match="buyer_phone"):
        fitted.transform(_frame(_row()).drop(columns=["buyer_phone"]))


def test_name_email_similarity_direction() -> None:
    names = pd.Series(["John Smith", "John Smith", "Иван Петров", "Maria Lopez"])
    emails = pd.Series(["john.smith84@mail.com", "xkq7731@mail.com", "ivan.petrov@mail.ru", "mlopez@corp.es"])
    scores = name_email_similarity(names, emails)
    assert scores[0] > 0.9 and scores[2] > 0.9 and scores[3] > 0.7
    assert scores[1] < 0.5


def test_phone_country() -> None:
    assert list(phone_country(pd.Series(["+4915112345678", "+81312345678", None]))[:2]) == ["DE", "JP"]


def test_pickle_round_trip(fitted: PartyProfileFeatures) -> None:
    frame = _frame(_row(), _row(nationality="IR"))
    again = pickle.loads(pickle.dumps(fitted))
    pd.testing.assert_frame_equal(again.transform(frame), fitted.transform(frame))


def _same(a, b) -> bool:
    if isinstance(a, float) and np.isnan(a):
        return isinstance(b, float) and np.isnan(b)
    return a == b


def test_one_record_gives_what_the_frame_gives(fitted: PartyProfileFeatures) -> None:
    """``transform_record`` (the service's row path) equals ``transform`` column by column."""
    from features.profile import EventRiskFeatures

    rows = [
        _row(),
        _row(last_kyc_review_at=_ts("2026-04-01"), document_expiry=_ts("2026-02-01"), email_first_seen_at=pd.NaT),
        _row(document_number=None, birth_date=pd.NaT, document_expiry=pd.NaT, declared_monthly_volume_usd=0.0),
        _row(email=None, phone="+9999", nationality="XX", industry="crypto", twofa_enabled=False),
    ]
    frame = _frame(*rows)
    frame["buyer_amount_sum_30d"] = [1200.0, np.nan, 50.0, 0.0]
    for column, value in (("ip_country", "DE"), ("buyer_country", "KP"), ("seller_country", None)):
        frame[column] = pd.Series([value, None, "ZZ", "FR"], dtype="str")
    frame["goods_category"] = pd.Series(["electronics", "nope", None, "electronics"], dtype="str")
    event = EventRiskFeatures().fit(frame)
    expected = event.transform(fitted.transform(frame))
    states = fitted.profile_states(frame.drop(columns=["occurred_at", "buyer_amount_sum_30d"]))
    for i, record in enumerate(frame.to_dict("records")):
        for got in (
            event.transform_record(fitted.transform_record(record)),
            event.transform_record(fitted.transform_record({"occurred_at": record["occurred_at"],
                                                            "buyer_amount_sum_30d": record["buyer_amount_sum_30d"],
                                                            **{c: record[c] for c in ("ip_country", "buyer_country",
                                                               "seller_country", "goods_category")}},
                                                           states[i])),
        ):  # fmt: skip
            assert set(got) == set(expected.columns)
            for column in expected.columns:
                assert _same(expected[column].iloc[i], got[column]), (i, column, expected[column].iloc[i], got[column])


def test_the_frame_is_not_modified_and_kept_columns_are_not_copied(fitted: PartyProfileFeatures) -> None:
    frame = _frame(_row(), _row(nationality="FR"))
    before = frame.copy()
    out = fitted.transform(frame)
    pd.testing.assert_frame_equal(frame, before)
    assert np.shares_memory(out["buyer_declared_monthly_volume_usd"].to_numpy(),
                            frame["buyer_declared_monthly_volume_usd"].to_numpy())  # fmt: skip
