"""Personal data at rest and the privacy rights, end to end through the Scorer and the ``kycrisk`` CLI.

A copy of the seeded state receives two new customers (an individual buyer and a business seller,
with distinctive personal values), orders between them with a device id and an IP address, and an
account event; then every file of the state folder is scanned as raw bytes for every personal value
sent (and for a sample of the seeded customers'), the export is checked against what was sent, the
erasure against what must be gone, and the decision log must still verify.
"""

from __future__ import annotations

import inspect
import json
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from features.documents import with_check_digit
from features.online import OnlineFeatureStore
from serving.decision_log import verify_path
from serving.privacy import Pseudonymiser, erase_customer, export_customer
from serving.profiles import ProfileCipher, StateKeyError, StateLocked
from serving.scorer import Scorer, UnknownCustomer
from serving.secrets_config import SECRETS_FILE_ENV, SecretsError, write_secrets_file
from tests.serving.conftest import fresh_state, order_request
from serving.cli import main

pytestmark = pytest.mark.filterwarnings("ignore")

BUYER, SELLER = "PRIV-BUYER-1", "PRIV-SELLER-1"
DEVICES = ("dev-privacy-buyer-0001", "dev-privacy-buyer-0002")
IP = "203.0.113.77"


def _personal(when: pd.Timestamp) -> dict[str, dict]:
    onboarded = (when - pd.Timedelta(days=30)).isoformat()
    buyer = {
        "customer_id": BUYER, "customer_type": "individual", "role": "buyer",
        "full_name": "Zoltan Quixote-Marchetti", "birth_date": "1961-07-23",
        "email": "zoltan.qm@privacy-test.example", "phone": "+4915199988877",
        "address": "Zypressenweg 77, Potsdam", "nationality": "DE", "residence_country": "DE",
        "document_type": "passport", "document_number": with_check_digit("QZ7730551"),
        "document_country": "DE", "document_expiry": "2031-05-01", "onboarded_at": onboarded,
        "twofa_enabled": True,
    }  # fmt: skip
    seller = {
        "customer_id": SELLER, "customer_type": "business", "role": "seller",
        "full_name": "Quixote Trading Kommanditgesellschaft", "email": "office@quixote-trading.example",
        "phone": "+4930777666555", "address": "Hafenstrasse 999, Rostock", "residence_country": "DE",
        "document_type": "business_registration", "document_number": "DOC-RG-55443322",
        "business_registration_number": "HRB-778899-ROSTOCK", "business_registered_at": "2011-04-05",
        "industry": "wholesale", "onboarded_at": onboarded, "declared_monthly_volume_usd": 25000.0,
    }  # fmt: skip
    return {BUYER: buyer, SELLER: seller}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _scanned(folder: Path) -> dict[str, bytes]:
    files = _files(folder)
    if "pseudonymise" not in inspect.signature(OnlineFeatureStore).parameters:
        # the feature state keeps raw device ids and IPs until features.online takes a pseudonymiser
        # (issue 9, another slice); every other file is scanned
        files = {n: b for n, b in files.items() if not n.startswith("features.sqlite")}
    return files


def _found(files: dict[str, bytes], values) -> list[str]:
    return [f"{v!r} in {name}" for v in values for name, raw in files.items() if str(v).encode() in raw]


@pytest.fixture(scope="module")
def sent(tmp_path_factory, champion, seeded_state):
    """A state that has onboarded two customers and scored their orders; the Scorer is closed."""
    folder = fresh_state(seeded_state, tmp_path_factory.mktemp("privacy") / "state")
    template = champion.held_out.iloc[-1].to_dict()
    when = champion.held_out["occurred_at"].max()
    profiles = _personal(when)
    scorer = Scorer.from_registry(state_dir=folder)
    try:
        decisions = {cid: [scorer.onboard(p).decision_id] for cid, p in profiles.items()}
        orders = []
        for i, device in enumerate((*DEVICES, DEVICES[0])):
            body = order_request(template, transaction_id=f"PRIV-T-{i}")
            body.update(buyer_id=BUYER, seller_id=SELLER, device_id=device, ip_address=IP)
            body["occurred_at"] = (when + pd.Timedelta(seconds=i + 1)).isoformat()
            decisions[BUYER].append(scorer.score(body).decision_id)
            orders.append(body["transaction_id"])
        event = {"kind": "account_event", "event_id": "PRIV-E-1", "customer_id": BUYER,
                 "occurred_at": (when + pd.Timedelta(seconds=10)).isoformat(), "event_type": "login",
                 "device_id": DEVICES[1], "ip_address": IP}  # fmt: skip
        scorer.apply_events([event])
    finally:
        scorer.close()
    personal = [
        profiles[c][k]
        for c in profiles
        for k in (
            "full_name",
            "email",
            "phone",
            "address",
            "document_number",
            "birth_date",
            "business_registration_number",
        )  # fmt: skip
        if profiles[c].get(k)
    ]
    return {"folder": folder, "profiles": profiles, "decisions": decisions, "orders": orders,
            "personal": [*personal, *DEVICES, IP]}  # fmt: skip


def _seeded_values(champion, n: int = 25) -> list[str]:
    """Personal values of seeded customers and devices (names left out: some are planted list look-alikes)."""
    customers = pd.read_parquet(champion.history / "customers.parquet").head(n)
    values = [
        v
        for c in ("email", "phone", "address", "document_number")
        for v in customers[c].dropna()
        if len(v) >= 8
    ]
    devices = pd.read_parquet(champion.history / "transactions.parquet")["device_id"].dropna().unique()[:n]
    return [*values, *devices]


def test_no_personal_value_sent_is_in_any_state_file(sent, champion) -> None:
    files = _scanned(sent["folder"])
    assert "profiles.sqlite" in files and "history.sqlite" in files and "decisions.sqlite" in files
    assert not _found(files, sent["personal"])
    assert not _found(files, _seeded_values(champion))
    assert not [n for n in files if n.endswith("pii_salt")]  # no secret kept in the state folder


def test_export_lists_what_was_sent(sent, state_secrets, capsys) -> None:
    assert main(["privacy", "export", BUYER, "--state", str(sent["folder"])]) == 0
    exported = json.loads(capsys.readouterr().out)
    sent_profile = sent["profiles"][BUYER]
    for key in ("full_name", "email", "phone", "address", "document_number"):
        assert exported["profile"][key] == sent_profile[key], key
    assert exported["profile"]["birth_date"].startswith(sent_profile["birth_date"])
    assert [r["transaction_id"] for r in exported["history"]["transactions"]] == sent["orders"]
    pseudonymise = Pseudonymiser(state_secrets.salt)
    assert [r["device_id"] for r in exported["history"]["transactions"]] == [
        pseudonymise(d) for d in (*DEVICES, DEVICES[0])
    ]
    assert [r["event_id"] for r in exported["history"]["account_events"]] == ["PRIV-E-1"]
    assert [d["decision_id"] for d in exported["decisions"]] == sent["decisions"][BUYER]
    assert exported["decisions"][0]["kind"] == "onboard" and exported["decisions"][1]["role"] == ["buyer"]
    seller = export_customer(sent["folder"], SELLER, state_secrets)
    assert seller["profile"]["full_name"] == sent["profiles"][SELLER]["full_name"]
    assert [r["transaction_id"] for r in seller["history"]["transactions"]] == sent["orders"]
    assert {tuple(d["role"]) for d in seller["decisions"]} == {("customer",), ("seller",)}


def test_privacy_commands_refuse_a_state_a_service_holds(sent, state_secrets, capsys) -> None:
    scorer = Scorer.from_registry(state_dir=sent["folder"])
    try:
        with pytest.raises(StateLocked, match="in use by a running service"):
            export_customer(sent["folder"], BUYER, state_secrets)
        assert main(["privacy", "erase", BUYER, "--state", str(sent["folder"])]) == 2
        assert "stop the service first" in capsys.readouterr().err
    finally:
        scorer.close()


def test_erase_removes_the_personal_data_and_the_log_still_verifies(sent, state_secrets, capsys) -> None:
    folder = sent["folder"]
    before = verify_path(folder / "decisions.sqlite")
    old_pseudonyms = [Pseudonymiser(state_secrets.salt)(d) for d in DEVICES]
    assert main(["privacy", "erase", BUYER, "--state", str(folder)]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["history"]["device_pseudonyms_replaced"] == {"transactions": 3, "account_events": 1}
    assert set(record["profile"]["columns"]) == {
        "full_name", "birth_date", "email", "phone", "address", "document_number"
    }  # fmt: skip
    after = verify_path(folder / "decisions.sqlite")
    assert after.ok and after.records == before.records
    assert main(["audit", "verify", "--log", str(folder / "decisions.sqlite")]) == 0
    capsys.readouterr()
    files = _scanned(folder)
    buyer_values = [v for k, v in sent["profiles"][BUYER].items() if k in record["profile"]["columns"]]
    assert not _found(files, [*buyer_values, *DEVICES, *old_pseudonyms])
    exported = export_customer(folder, BUYER, state_secrets)
    assert all(exported["profile"][c] is None for c in record["profile"]["columns"])
    assert exported["profile"]["residence_country"] == "DE"  # what is not personal stays
    assert all(r["device_id"].startswith("erased-") for r in exported["history"]["transactions"])
    assert [e["customer_id"] for e in exported["erasures"]] == [BUYER]
    assert exported["erasures"][0]["removed"]["history"]["device_pseudonyms_replaced"]["transactions"] == 3
    # the seller is untouched, and the service starts again on the erased state
    assert export_customer(folder, SELLER, state_secrets)["profile"]["full_name"] is not None
    scorer = Scorer.from_registry(state_dir=folder)
    try:
        assert scorer.profiles.get(BUYER)[1]["full_name"] is None
    finally:
        scorer.close()
    with pytest.raises(KeyError, match="holds nothing about customer 'NOBODY'"):
        erase_customer(folder, "NOBODY", state_secrets)


def test_a_wrong_state_key_or_a_secrets_file_in_the_state_is_refused(sent, tmp_path, monkeypatch) -> None:
    folder = sent["folder"]
    with pytest.raises(StateKeyError, match="not the key this state was written with"):
        Scorer.from_registry(state_dir=folder, state_key=os.urandom(32))
    inside = folder / "secrets.json"
    try:
        write_secrets_file(inside)
        monkeypatch.delenv("KYCRISK_PII_SALT")
        monkeypatch.delenv("KYCRISK_STATE_KEY")
        monkeypatch.setenv(SECRETS_FILE_ENV, str(inside))
        with pytest.raises(SecretsError, match="inside the state folder"):
            Scorer.from_registry(state_dir=folder)
    finally:
        inside.unlink()
    monkeypatch.delenv(SECRETS_FILE_ENV)
    monkeypatch.setenv("KYCRISK_API_KEY", "a-key-for-this-test-only")
    assert main(["serve", "--state", str(folder)]) == 2  # refused before the server is started


def test_secrets_init_writes_a_private_file_once(tmp_path, capsys) -> None:
    target = tmp_path / "conf" / "secrets.json"
    assert main(["secrets", "init", str(target)]) == 0
    out = capsys.readouterr().out
    values = json.loads(target.read_text())
    assert set(values) == {"KYCRISK_PII_SALT", "KYCRISK_STATE_KEY", "KYCRISK_DECISION_LOG_KEY"}
    assert (target.stat().st_mode & 0o777) == 0o600
    assert not [v for v in values.values() if v in out]  # the values are never printed
    assert main(["secrets", "init", str(target)]) == 2
    assert "already exists" in capsys.readouterr().err


def test_a_bad_stored_profile_is_quarantined_and_the_service_keeps_serving(
    tmp_path, champion, seeded_state, state_secrets, caplog
) -> None:
    folder = fresh_state(seeded_state, tmp_path / "state")
    held = champion.held_out.to_dict("records")
    bad_date, corrupt = held[0]["seller_id"], held[1]["buyer_id"]
    good = next(r for r in held if {r["buyer_id"], r["seller_id"]}.isdisjoint({bad_date, corrupt}))
    cipher = ProfileCipher(state_secrets.state_key)
    with closing(sqlite3.connect(folder / "profiles.sqlite")) as conn, conn:
        (version,) = conn.execute(
            "SELECT version FROM profiles WHERE customer_id = ?", (bad_date,)
        ).fetchone()
        profile = cipher.open("profile", bad_date, version, conn.execute(
            "SELECT profile FROM profiles WHERE customer_id = ?", (bad_date,)).fetchone()[0])  # fmt: skip
        profile["document_expiry"] = "9999-12-31"  # validly encrypted, but no engine can hold the date
        conn.execute(
            "UPDATE profiles SET profile = ? WHERE customer_id = ?",
            (cipher.seal("profile", bad_date, version, profile), bad_date),
        )
        conn.execute(
            "UPDATE profiles SET screening = substr(screening, 1, 20) || zeroblob(8) WHERE customer_id = ?",
            (corrupt,),
        )
    scorer = Scorer.from_registry(state_dir=folder)
    try:
        assert {q["customer_id"] for q in scorer.profiles.quarantined()} == {bad_date, corrupt}
        with pytest.raises(UnknownCustomer):
            scorer.score(order_request(held[0]))
        assert scorer.score(order_request(good)).decision_id
        # warm_profiles guards the Pipeline step too: a profile that reached memory unchecked
        sample = next(
            cid for cid, *_ in scorer.profiles.items() if cid not in {good["buyer_id"], good["seller_id"]}
        )
        version, profile, screen = scorer.profiles.get(sample)
        scorer.profiles._cache[sample] = (
            version + 1,
            {**profile, "document_expiry": pd.Timestamp("9999-12-31", tz="UTC")},
            screen,
        )
        with caplog.at_level("WARNING", logger="serving.profiles"):
            scorer.warm_profiles()
        assert scorer.profiles.get(sample) is None
        assert f"customer {sample} quarantined" in caplog.text and "9999" not in caplog.text
    finally:
        scorer.close()
    shutil.rmtree(folder)
