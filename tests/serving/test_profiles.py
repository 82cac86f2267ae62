"""The encrypted profile store, the state folder's lock, the secrets from configuration, the history pseudonyms.

Fast tests on real sqlite files (no model): what the files hold as raw bytes, rows edited by hand
(a validly encrypted row with a date pandas cannot hold, a corrupted ciphertext, a row moved onto
another customer, a row written in clear), and every refusal's message.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest

from serving.history import CustomerHistory
from serving.privacy import Pseudonymiser
from serving.profiles import (
    ProfileCipher,
    ProfileStore,
    StateKeyError,
    StateLock,
    StateLocked,
)
from serving.secrets_config import (
    SECRETS_FILE_ENV,
    STATE_KEY_ENV,
    Secrets,
    SecretsError,
    load_secrets,
    parse_state_key,
    resolve_secrets,
    write_secrets_file,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))


def _profile(cid: str, **changes) -> dict:
    base = {
        "customer_id": cid,
        "customer_type": "individual",
        "role": "buyer",
        "full_name": f"Zoltan Quixote-{cid}",
        "birth_date": pd.Timestamp("1961-07-23", tz="UTC"),
        "email": f"zq.{cid.lower()}@privacy-test.example",
        "phone": "+4915199988877",
        "address": "Zypressenweg 77, Potsdam",
        "nationality": "DE",
        "residence_country": "DE",
        "document_type": "passport",
        "document_number": f"X{cid}99887",
        "document_country": "DE",
        "document_expiry": pd.Timestamp("2031-05-01", tz="UTC"),
        "onboarded_at": pd.Timestamp("2025-01-02T03:04:05", tz="UTC"),
        "twofa_enabled": True,
        "declared_monthly_volume_usd": 1500.0,
    }
    return base | changes


SCREEN = {"screen_score": 0.2, "screen_status": "clear", "screen_list_type": None}


def _raw_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file())


def _store(folder: Path, key: bytes = KEY, **kwargs) -> ProfileStore:
    return ProfileStore(folder / "profiles.sqlite", key, **kwargs)


def test_profiles_round_trip_encrypted_and_never_in_clear_on_disk(tmp_path) -> None:
    store = _store(tmp_path)
    assert store.put_many([(_profile("C1"), SCREEN), (_profile("C2"), {"screen_entry_id": "WL-0042"})]) == [
        1,
        1,
    ]
    assert store.put_many([(_profile("C1", phone="+4915100000001"), SCREEN)]) == [2]
    store.close()
    store = _store(tmp_path)
    try:
        version, profile, screening = store.get("C1")
        assert version == 2 and profile["phone"] == "+4915100000001"
        assert profile["birth_date"] == pd.Timestamp("1961-07-23", tz="UTC")
        assert screening["screen_status"] == "clear" and store.get("C2")[2]["screen_entry_id"] == "WL-0042"
    finally:
        store.close()
    raw = _raw_bytes(tmp_path)
    for value in (
        "Zoltan",
        "privacy-test.example",
        "+49151",
        "Zypressenweg",
        "XC199887",
        "1961-07-23",
        "WL-0042",
    ):
        assert value.encode() not in raw, value


def test_a_wrong_state_key_is_a_clear_error_at_open(tmp_path) -> None:
    _store(tmp_path).close()
    with pytest.raises(StateKeyError, match=f"{STATE_KEY_ENV}.*not the key this state was written with"):
        _store(tmp_path, OTHER_KEY)


def test_put_many_refuses_a_profile_the_store_could_not_load_again(tmp_path) -> None:
    store = _store(tmp_path)
    try:
        with pytest.raises(ValueError, match="customer 'C9': document_expiry is outside") as caught:
            store.put_many([(_profile("C8"), SCREEN), (_profile("C9", document_expiry="9999-12-31"), SCREEN)])
        assert "9999" not in str(caught.value)  # the column and the range, never the value
        with pytest.raises(ValueError, match="declared_monthly_volume_usd is not a finite number"):
            store.put_many([(_profile("C9", declared_monthly_volume_usd=float("inf")), SCREEN)])
        assert len(store) == 0 and store.get("C8") is None  # all or nothing
    finally:
        store.close()


def test_bad_rows_are_quarantined_with_their_reason_and_the_others_served(tmp_path, caplog) -> None:
    store = _store(tmp_path)
    store.put_many([(_profile(c), SCREEN) for c in ("GOOD", "CORRUPT", "MOVED", "SOURCE")])
    store.close()
    cipher = ProfileCipher(KEY)
    path = tmp_path / "profiles.sqlite"
    with closing(sqlite3.connect(path)) as conn, conn:
        # a validly encrypted row (own cipher, right key and binding) whose date pandas cannot hold
        bad = {k: v for k, v in _profile("BADDATE").items()} | {"document_expiry": "9999-12-31"}
        conn.execute(
            "INSERT INTO profiles VALUES ('BADDATE', 1, ?, ?, 'x')",
            (cipher.seal("profile", "BADDATE", 1, bad), cipher.seal("screening", "BADDATE", 1, SCREEN)),
        )
        (blob,) = conn.execute("SELECT profile FROM profiles WHERE customer_id = 'CORRUPT'").fetchone()
        flipped = blob[:-5] + bytes([blob[-5] ^ 0x01]) + blob[-4:]
        conn.execute("UPDATE profiles SET profile = ? WHERE customer_id = 'CORRUPT'", (flipped,))
        # another customer's valid ciphertext copied onto MOVED: bound to SOURCE, it must not open
        conn.execute(
            "UPDATE profiles SET profile = (SELECT profile FROM profiles WHERE customer_id = 'SOURCE') "
            "WHERE customer_id = 'MOVED'"
        )
    with caplog.at_level(logging.WARNING, logger="serving.profiles"):
        store = _store(tmp_path)
    try:
        assert sorted(c for c, *_ in store.items()) == ["GOOD", "SOURCE"]
        reasons = {q["customer_id"]: q["reason"] for q in store.quarantined()}
        assert set(reasons) == {"BADDATE", "CORRUPT", "MOVED"}
        assert "document_expiry is outside the contract's range" in reasons["BADDATE"]
        assert "fails to authenticate" in reasons["CORRUPT"] and "fails to authenticate" in reasons["MOVED"]
        logged = "\n".join(r.getMessage() for r in caplog.records)
        for cid in reasons:
            assert f"customer {cid} quarantined" in logged
        assert "9999" not in logged and "Zoltan" not in logged and "privacy-test" not in logged
        # a quarantined customer can be onboarded again
        assert store.put_many([(_profile("BADDATE"), SCREEN)]) == [1]
    finally:
        store.close()
    store = _store(tmp_path)  # the next start is clean: the quarantined rows stay out
    try:
        assert len(store) == 3 and len(store.quarantined()) == 3
    finally:
        store.close()


def test_rows_written_in_clear_are_encrypted_in_place(tmp_path) -> None:
    path = tmp_path / "profiles.sqlite"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE profiles (customer_id TEXT PRIMARY KEY, version INTEGER NOT NULL, "
            "profile TEXT NOT NULL, screening TEXT NOT NULL, updated_at TEXT NOT NULL)"
        )
        clear = json.dumps({"customer_id": "OLD", "role": "buyer", "full_name": "Zoltan Clearname"})
        conn.execute("INSERT INTO profiles VALUES ('OLD', 3, ?, ?, 'x')", (clear, json.dumps(SCREEN)))
    store = _store(tmp_path)
    store.close()
    assert b"Clearname" not in _raw_bytes(tmp_path)
    store = _store(tmp_path)
    try:
        assert store.get("OLD")[0] == 3 and store.get("OLD")[1]["full_name"] == "Zoltan Clearname"
    finally:
        store.close()


def test_the_state_lock_is_shared_by_services_and_exclusive_for_privacy_commands(tmp_path) -> None:
    first, second = _store(tmp_path), _store(tmp_path)
    with pytest.raises(StateLocked, match="in use by a running service.*stop the service first"):
        _store(tmp_path, exclusive=True)
    first.close()
    second.close()
    exclusive = StateLock(tmp_path, exclusive=True)
    try:
        with pytest.raises(StateLocked, match="locked by a running privacy command"):
            _store(tmp_path)
    finally:
        exclusive.release()
    _store(tmp_path).close()


def test_secrets_come_from_the_environment_or_a_private_file_outside_the_state(tmp_path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    with pytest.raises(
        SecretsError, match="KYCRISK_PII_SALT and KYCRISK_STATE_KEY not set.*kycrisk secrets init"
    ):
        load_secrets(state, {})
    written = write_secrets_file(tmp_path / "conf" / "secrets.json", state_dir=state)
    file = tmp_path / "conf" / "secrets.json"
    assert (file.stat().st_mode & 0o777) == 0o600
    assert load_secrets(state, {SECRETS_FILE_ENV: str(file)}) == written
    with pytest.raises(SecretsError, match="already exists: refusing to overwrite"):
        write_secrets_file(file)
    # the environment wins over the file, variable by variable
    env_salt = "s" * 20
    mixed = load_secrets(state, {SECRETS_FILE_ENV: str(file), "KYCRISK_PII_SALT": env_salt})
    assert mixed.salt == env_salt.encode() and mixed.state_key == written.state_key
    # explicit values win over both
    explicit = resolve_secrets(state, state_key=OTHER_KEY, environ={SECRETS_FILE_ENV: str(file)})
    assert explicit.state_key == OTHER_KEY and explicit.salt == written.salt
    os.chmod(file, 0o644)
    with pytest.raises(SecretsError, match="mode 0644.*chmod 600"):
        load_secrets(state, {SECRETS_FILE_ENV: str(file)})
    inside = state / "secrets.json"
    with pytest.raises(SecretsError, match="inside the state folder"):
        write_secrets_file(inside, state_dir=state)
    inside.write_text(file.read_text())
    os.chmod(inside, 0o600)
    with pytest.raises(SecretsError, match="is inside the state folder"):
        load_secrets(state, {SECRETS_FILE_ENV: str(inside)})
    with pytest.raises(SecretsError, match="does not exist"):
        load_secrets(state, {SECRETS_FILE_ENV: str(tmp_path / "missing.json")})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"KYCRISK_PII_SALT": "x" * 20, "KYCRISK_STATE_KEY": "x" * 20, "PASSWORD": "p"}))
    os.chmod(bad, 0o600)
    with pytest.raises(SecretsError, match=r"unknown keys \['PASSWORD'\]"):
        load_secrets(state, {SECRETS_FILE_ENV: str(bad)})
    with pytest.raises(SecretsError, match="KYCRISK_PII_SALT must be at least 16 bytes"):
        load_secrets(state, {"KYCRISK_PII_SALT": "short", STATE_KEY_ENV: KEY.hex()})
    assert "salt" not in repr(written).replace("Secrets()", "")  # repr never shows a value
    assert written.salt.decode() not in repr(written)


def test_state_keys_are_hex_or_base64_of_32_bytes() -> None:
    assert parse_state_key(KEY.hex()) == KEY
    assert parse_state_key(base64.b64encode(KEY).decode()) == KEY
    assert parse_state_key(base64.urlsafe_b64encode(OTHER_KEY).decode()) == OTHER_KEY
    for bad in ("", "00" * 16, "not a key", base64.b64encode(b"x" * 31).decode()):
        with pytest.raises(SecretsError, match="must be 32 random bytes"):
            parse_state_key(bad)
    with pytest.raises(SecretsError, match="must be 32 bytes"):
        Secrets(salt=b"s" * 16, state_key=b"k" * 16)


def test_history_stores_device_pseudonyms_that_keep_equality(tmp_path) -> None:
    pseudonymise = Pseudonymiser(b"a salt of enough bytes")
    assert pseudonymise("dev-1") == pseudonymise("dev-1") != pseudonymise("DEV-1")  # exact, not normalised
    assert pseudonymise(None) is None and pseudonymise(float("nan")) is None
    assert Pseudonymiser(b"another salt, also long")("dev-1") != pseudonymise("dev-1")
    when = pd.Timestamp("2026-01-01", tz="UTC")
    orders = pd.DataFrame(
        {
            "transaction_id": ["T1", "T2", "T3"],
            "occurred_at": [when, when + pd.Timedelta(hours=1), when + pd.Timedelta(hours=2)],
            "buyer_id": ["A", "B", "A"],
            "seller_id": ["S", "S", "S"],
            "device_id": ["dev-shared-77", "dev-shared-77", None],
        }
    )
    with CustomerHistory(tmp_path / "history.sqlite", pseudonymise) as history:
        history.add_transactions(orders)  # the bulk path
        history.add_account_events(
            [{"event_id": "E1", "customer_id": "A", "occurred_at": when, "device_id": "dev-own-88"}]
        )  # the request path
        customers = pd.DataFrame(
            {"customer_id": ["A", "B", "S"], "phone": None, "address": None, "email": None}
        )
        rows = history.rows_for("A", customers)
        shared = pseudonymise("dev-shared-77")
        assert set(rows["transactions"]["device_id"].dropna()) == {shared}
        assert sorted(rows["customers"]["customer_id"]) == ["A", "B"]  # the device link holds
        assert list(rows["account_events"]["device_id"]) == [pseudonymise("dev-own-88")]
        assert history.erase_devices("A") == {"transactions": 1, "account_events": 1}
        after = history.rows_for("A", customers)
        assert sorted(after["customers"]["customer_id"]) == ["A"]  # no longer linked to B
        erased = history.customer_rows("A")
        assert all(
            r["device_id"] is None or r["device_id"].startswith("erased-")
            for r in erased["transactions"]
            if r["buyer_id"] == "A"
        )
        assert history.customer_rows("B")["transactions"][0]["device_id"] == shared  # B's own row keeps it
    raw = _raw_bytes(tmp_path)
    assert b"dev-shared-77" not in raw and b"dev-own-88" not in raw
    assert pseudonymise("dev-own-88").encode() not in raw  # the erased pseudonym is not left on disk
