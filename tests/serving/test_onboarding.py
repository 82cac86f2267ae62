"""Onboarding with the risk-tier champion: the history store, parity with the offline path, reasons, log, replay."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pandas as pd
import pytest

from features.customer import customer_behaviour, customer_frame, customer_rows, screen_snapshots
from features.screening import WatchlistScreener
from serving.history import CustomerHistory
from serving.scorer import Scorer
from tests.serving.conftest import fresh_state
from training import risk
from training.explain import REASON_CATALOGUE, describe_feature
from training.flow import load_tables

pytestmark = pytest.mark.filterwarnings("ignore")

DATES = ("birth_date", "document_expiry", "business_registered_at")
TIMES = ("onboarded_at", "last_kyc_review_at", "email_first_seen_at")
PROFILE_FIELDS = (
    "customer_id", "customer_type", "role", "full_name", "birth_date", "email", "email_first_seen_at", "phone",
    "address", "nationality", "residence_country", "document_type", "document_number", "document_country",
    "document_expiry", "business_registration_number", "business_registered_at", "industry", "twofa_enabled",
    "onboarded_at", "last_kyc_review_at", "declared_monthly_volume_usd",
)  # fmt: skip


def profile_request(row: dict) -> dict:
    """A customers row as an onboarding request body (JSON types, missing values left out)."""
    out = {}
    for key in PROFILE_FIELDS:
        value = row.get(key)
        if (
            value is None
            or value is pd.NA
            or value is pd.NaT
            or (isinstance(value, float) and value != value)
        ):
            continue
        if key in DATES:
            value = pd.Timestamp(value).date().isoformat()
        elif key in TIMES:
            value = pd.Timestamp(value).isoformat()
        elif hasattr(value, "item"):
            value = value.item()
        out[key] = value
    return out


@pytest.fixture(scope="module")
def tables(champion):
    return load_tables(champion.history)


@pytest.fixture(scope="module")
def state(tmp_path_factory, champion, seeded_state, risk_champion):
    folder = fresh_state(seeded_state, tmp_path_factory.mktemp("onboarding") / "state")
    scorer = Scorer.from_registry(state_dir=folder)
    yield scorer, folder
    scorer.close()


def _linked_customers(tables, n: int = 3) -> list[str]:
    """Customers sharing a device with someone else, and customers sharing a phone/address/e-mail."""
    tx = tables["transactions"].dropna(subset=["device_id"])
    shared = tx.groupby("device_id")["buyer_id"].nunique()
    by_device = tx[tx["device_id"].isin(shared[shared > 1].index)]["buyer_id"].unique().tolist()
    customers = tables["customers"]
    by_profile: list[str] = []
    for column in ("phone", "address", "email"):
        norm = customers[column].astype("str").str.strip().str.lower()
        by_profile += customers.loc[norm.duplicated(keep=False) & norm.notna(), "customer_id"].tolist()[:n]
    assert by_device and by_profile, "the generated data should have shared devices and profile links"
    return sorted(set(by_device[:n]) | set(by_profile))


def _chosen(tables) -> list[str]:
    busy = tables["transactions"]["seller_id"].value_counts().index[:2].tolist()
    return sorted(
        set(busy) | set(tables["customers"]["customer_id"].iloc[:3]) | set(_linked_customers(tables))
    )


def test_reasons_catalogue_covers_every_risk_feature(state) -> None:
    scorer, _ = state
    assert scorer._risk is not None
    for name in scorer._risk.explainer.feature_names:
        spec = describe_feature(name)
        assert spec.code != "OTHER" and spec.code in REASON_CATALOGUE, name


def test_history_rows_equal_customer_rows_on_the_full_tables(tmp_path, tables) -> None:
    with CustomerHistory(tmp_path / "history.sqlite") as history:
        events = tables["account_events"]
        assert history.add_transactions(tables["transactions"]) == len(tables["transactions"])
        # mappings (the request path) and frames (the bulk path) store the same rows; ids make it idempotent
        half = len(events) // 2
        assert history.add_account_events(events.iloc[:half].to_dict("records")) == half
        assert history.add_account_events(events) == len(events) - half
        assert history.add_labels(tables["labels"]) == len(tables["labels"])
        assert history.add_labels(tables["labels"].to_dict("records")) == 0
        assert history.counts() == {
            "transactions": len(tables["transactions"]),
            "account_events": len(events),
            "labels": len(tables["labels"]),
        }
        keys = {
            "transactions": "transaction_id",
            "account_events": "event_id",
            "labels": "label_id",
            "customers": "customer_id",
        }
        chosen = _chosen(tables)
        linked = 0
        for cid in chosen:
            got = history.rows_for(cid, tables["customers"])
            expected = customer_rows(
                cid, tables["transactions"], tables["account_events"], tables["labels"], tables["customers"]
            )
            for table, key in keys.items():
                left = got[table].sort_values(key).reset_index(drop=True)
                right = expected[table][list(left.columns)].sort_values(key).reset_index(drop=True)
                pd.testing.assert_frame_equal(left, right, check_dtype=False, obj=f"{cid} {table}")
            linked += len(got["customers"]) > 1
            as_of = tables["transactions"]["occurred_at"].max()
            snapshot = pd.DataFrame({"customer_id": [cid], "as_of": [as_of]})
            online = customer_behaviour(
                snapshot,
                got["transactions"],
                got["account_events"],
                got["labels"],
                customers=got["customers"],
            )
            batch = customer_behaviour(
                snapshot,
                tables["transactions"],
                tables["account_events"],
                tables["labels"],
                customers=tables["customers"],
            )
            pd.testing.assert_frame_equal(online, batch, check_exact=True)
        assert linked >= 3, "too few linked customers among the chosen ones"


def _offline(scorer, tables, watchlist, row: dict, as_of: pd.Timestamp):
    """P(bad), model features and final decision of one snapshot by the batch path."""
    customers = tables["customers"].copy()
    for key, value in row.items():
        customers.loc[customers["customer_id"] == row["customer_id"], key] = value
    snapshots = pd.DataFrame({"customer_id": [row["customer_id"]], "as_of": [as_of]})
    behaviour = customer_behaviour(
        snapshots, tables["transactions"], tables["account_events"], tables["labels"], customers=customers
    )
    screening = screen_snapshots(customers, snapshots, WatchlistScreener().fit(watchlist))
    frame = customer_frame(customers, snapshots, behaviour, screening)
    pipeline = scorer._risk.model.pipeline
    probability = risk.predict_proba(pipeline, frame)
    prepared = risk.model_features(pipeline, frame)
    final = risk.decide_customers(scorer._risk.policy, probability, prepared, **scorer._risk.review_rules)
    return float(probability[0]), prepared.iloc[0], final.iloc[0]


def test_onboarding_existing_customers_equals_the_offline_path(state, tables, risk_champion) -> None:
    scorer, _ = state
    end = tables["transactions"]["occurred_at"].max()
    customers = tables["customers"].set_index("customer_id", drop=False)
    tiers = set()
    for i, cid in enumerate(_chosen(tables)):
        row = customers.loc[cid].to_dict()
        # a KYC review late in the history: the snapshot sees months of behaviour
        row["last_kyc_review_at"] = max(row["onboarded_at"], end - pd.Timedelta(days=10 + 7 * i))
        response = scorer.onboard(profile_request(row))
        as_of = row["last_kyc_review_at"] + pd.Timedelta(microseconds=1)
        assert pd.Timestamp(response.as_of) == as_of
        probability, prepared, final = _offline(scorer, tables, tables["watchlist"], row, as_of)
        assert response.risk_score == probability, cid
        assert (response.risk_tier, response.action) == (final["tier"], final["action"]), cid
        assert response.models == {"kycrisk-risk-tier": risk_champion.version}
        record = scorer.get_decision(response.decision_id)
        assert record.kind == "onboard" and record.score == probability
        assert record.feature_set == "risk_v1@1.0.0"
        assert record.policy_version == scorer._risk.policy.version == response.policy_version
        for name, value in prepared.items():
            logged = record.features[name]
            if isinstance(value, float) and np.isnan(value):
                assert logged is None or np.isnan(logged), name
            elif isinstance(value, str):
                assert logged == value, name
            else:
                assert logged == value, (name, logged, value)
        assert record.features["buyer_txn_count_all"] + record.features["seller_txn_count_all"] > 0 or (
            cid not in set(tables["transactions"]["buyer_id"]) | set(tables["transactions"]["seller_id"])
        )
        codes = [r.code for r in response.reasons]
        assert codes[0].startswith("SCORE_") and "RULES_ONLY" not in codes
        assert set(final["reason_codes"].split("|")) <= set(codes)
        model_reasons = [r for r in response.reasons if r.source == "model"]
        assert model_reasons and all(r.message and r.contribution > 0 for r in model_reasons)
        assert not any(
            "before the order" in r.message or "before this one" in r.message for r in model_reasons
        )
        tiers.add(response.risk_tier)
    print(f"onboarding tiers of the existing customers: {sorted(tiers)}")


def test_new_customer_without_history(state) -> None:
    scorer, _ = state
    profile = {
        "customer_id": "NEW-RISK-1", "customer_type": "individual", "role": "buyer", "full_name": "Ada Example",
        "birth_date": "1990-02-03", "email": "ada.example@example.org", "phone": "+442071234567",
        "address": "1 Example Street, London", "nationality": "GB", "residence_country": "GB",
        "document_type": "passport", "document_number": "123456789", "document_country": "GB",
        "document_expiry": "2031-01-01", "twofa_enabled": True, "onboarded_at": "2026-11-20T10:00:00Z",
        "declared_monthly_volume_usd": 500.0,
    }  # fmt: skip
    response = scorer.onboard(profile)
    assert 0.0 <= response.risk_score <= 1.0
    assert response.profile_version == 1 and response.models == {
        "kycrisk-risk-tier": scorer._risk.model.version
    }
    assert pd.Timestamp(response.as_of) == pd.Timestamp("2026-11-20T10:00:00.000001Z")
    record = scorer.get_decision(response.decision_id)
    counts = [k for k in record.features if k.endswith("_count_all") or k.endswith("_count_30d")]
    assert counts and all(record.features[k] == 0 for k in counts if k != "customer_linked_nunique_all")
    assert record.features["customer_account_age_days"] == pytest.approx(1e-6 / 86400)
    assert "RULES_ONLY" not in [r.code for r in response.reasons]
    # an update is a new profile version, scored again
    assert scorer.onboard(profile | {"last_kyc_review_at": "2026-11-21T10:00:00Z"}).profile_version == 2


def test_sanctioned_look_alike_names_the_list_entry(state, tables) -> None:
    scorer, _ = state
    watchlist = tables["watchlist"]
    entry = watchlist[(watchlist["list_type"] == "sanction") & watchlist["birth_date"].notna()].iloc[0]
    profile = {
        "customer_id": "NEW-RISK-SANCTIONED", "customer_type": "individual", "role": "seller",
        "full_name": entry["full_name"], "birth_date": pd.Timestamp(entry["birth_date"]).date().isoformat(),
        "nationality": entry["country"] if isinstance(entry.get("country"), str) else "GB",
        "residence_country": "GB", "onboarded_at": "2026-11-20T11:00:00Z",
    }  # fmt: skip
    response = scorer.onboard(profile)
    assert response.screening.entry_id == entry["entry_id"]
    assert (response.risk_tier, response.action) == ("high", "report")
    hit = next(r for r in response.reasons if r.code == "WATCHLIST_CONFIRMED")
    assert hit.decisive and hit.value == entry["entry_id"] and entry["entry_id"] in hit.message


def test_personal_data_never_reaches_the_decision_log(state, tables) -> None:
    scorer, folder = state
    row = tables["customers"].iloc[7].to_dict()
    scorer.onboard(profile_request(row))
    personal = [
        str(row[c])
        for c in ("full_name", "email", "phone", "address", "document_number")
        if isinstance(row[c], str)
    ]
    personal += ["Ada Example", "ada.example@example.org", "+442071234567", "1 Example Street"]
    with sqlite3.connect(folder / "decisions.sqlite") as conn:
        text = "\n".join(str(r) for r in conn.execute("SELECT * FROM decisions"))
    assert "kycrisk-risk-tier" in text
    for value in personal:
        assert value not in text, value


def test_audit_replay_recomputes_onboarding_decisions(state, tables) -> None:
    from serving.replay import replay_decision

    scorer, folder = state
    ids = []
    for row in tables["customers"].iloc[10:14].to_dict("records"):
        ids.append(scorer.onboard(profile_request(row)).decision_id)
    for decision_id in ids:
        report = replay_decision(folder / "decisions.sqlite", decision_id)
        assert report.matches, str(report)
        assert report.model == "kycrisk-risk-tier" and report.version == scorer._risk.model.version


def test_without_the_risk_champion_onboarding_stays_rules_only(tmp_path, state) -> None:
    scorer, _ = state
    rules_only = Scorer(scorer.model, tmp_path / "state", screener=scorer.screener, fast=False)
    try:
        response = rules_only.onboard(
            {
                "customer_id": "R1",
                "customer_type": "business",
                "role": "seller",
                "full_name": "Acme Ltd",
                "residence_country": "DE",
                "industry": "retail",
                "onboarded_at": "2026-06-01T00:00:00Z",
            }  # fmt: skip
        )
        assert "RULES_ONLY" in [r.code for r in response.reasons] and response.models == {}
    finally:
        rules_only.close()


def test_onboarding_latency_is_measured(state, tables) -> None:
    scorer, _ = state
    end = tables["transactions"]["occurred_at"].max()
    rows = tables["customers"].iloc[20:60].to_dict("records")
    times = []
    for row in rows:
        row["last_kyc_review_at"] = max(row["onboarded_at"], end - pd.Timedelta(days=5))
        request = profile_request(row)
        started = time.perf_counter()
        scorer.onboard(request)
        times.append(time.perf_counter() - started)
    p50, p99 = np.percentile(times, [50, 99]) * 1000
    print(
        f"onboarding with the risk-tier model: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {len(times)} customers"
    )
    assert p99 < 5000  # a smoke bound only; the report has the measured numbers
