"""Tests of serving.decision_log: round trip, chain verification, every kind of tampering, restarts,
concurrent writers (threads and processes) and personal-data minimisation."""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import random
import sqlite3
import struct
import threading
import time
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

import training.policy  # loaded before fork(): the children need not import pandas
from features.contracts import TABLES
from serving.decision_log import (
    DEFAULT_PII_FIELDS,
    DecisionLog,
    DecisionRecord,
    DuplicateDecisionError,
    new_decision_id,
    verify_path,
)
from serving.decision_log.canonical import decode_json, encode_json
from serving.decision_log.personal import MASKED_COLUMNS, PII_COLUMNS, mask, minimise_request, pseudonymise

SALT = b"test-salt-0123456789abcdef"
KEY = b"test-hmac-key-0123456789abcdef"

PERSON = {
    "buyer_full_name": "Anna Müller",
    "buyer_email": "anna.mueller@example.com",
    "buyer_document_number": "C01X00T478",
    "buyer_phone": "+4915123456789",
    "buyer_address": "Hauptstraße 1, Berlin",
    "buyer_birth_date": "1990-04-01",
    "ip_address": "203.0.113.7",
}


def decision(i: int = 0, **overrides) -> dict:
    fields = {
        "kind": "score",
        "request": {"transaction_id": f"t{i}", "amount": 10.0 + i, "currency": "EUR", **PERSON},
        "features": {"buyer_amount_sum_24h": 0.1 * i, "buyer_doc_expired": math.nan, "buyer_country": "DE"},
        "models": {"kycrisk-fraud": "3"},
        "feature_set": "fraud_v1",
        "policy_version": "1",
        "score": 0.01 * (i % 100),
        "tier": "low",
        "action": "approve",
        "reasons": [{"code": "SCORE_LOW", "message": "Low score.", "decisive": True}],
    }
    return fields | overrides


@pytest.fixture
def log(tmp_path: Path) -> DecisionLog:
    # NORMAL: these tests are about the chain, not fsync; the default (FULL) is used where
    # the file is reopened
    with DecisionLog(tmp_path / "audit" / "decisions.db", salt=SALT, synchronous="NORMAL") as opened:
        yield opened


def filled(log: DecisionLog, n: int = 8) -> list[DecisionRecord]:
    return log.append_many(decision(i) for i in range(n))


def raw(path: Path) -> sqlite3.Connection:
    """A raw connection as an attacker with write access has it (triggers dropped)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP TRIGGER decisions_no_update")
    conn.execute("DROP TRIGGER decisions_no_delete")
    return conn


def rows(conn: sqlite3.Connection) -> list[dict]:
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM decisions ORDER BY seq")]
    finally:
        conn.row_factory = None


def rehash(row: dict, key: bytes | None = None) -> str:
    """An attacker's recomputation of a row's hash, from the documented canonical form."""
    fields = {
        k: (json.loads(v) if k in ("request", "features", "models", "reasons") else v) for k, v in row.items()
    }
    fields.pop("hash")
    data = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    import hmac

    return hashlib.sha256(data).hexdigest() if key is None else hmac.new(key, data, "sha256").hexdigest()


def insert(conn: sqlite3.Connection, row: dict) -> None:
    names = ", ".join(row)
    conn.execute(f"INSERT INTO decisions ({names}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))


# --- round trip -------------------------------------------------------------------------------


def test_append_get_round_trip_is_exact(log: DecisionLog) -> None:
    rng = random.Random(7)
    # random bit patterns: every finite float64 must come back bit for bit
    floats = [struct.unpack("<d", struct.pack("<Q", rng.getrandbits(64)))[0] for _ in range(200)]
    floats = [f for f in floats if math.isfinite(f)] + [0.1, 1 / 3, -0.0, 5e-324, 1.7976931348623157e308]
    features = {f"f{i}": v for i, v in enumerate(floats)}
    features |= {
        "nan": math.nan,
        "inf": math.inf,
        "ninf": -math.inf,
        "missing": None,
        "np_float32": np.float32(0.1),
        "np_int": np.int64(2**53 + 1),
        "np_bool": np.bool_(True),
        "pd_na": pd.NA,
        "country": "DE",
        "at": pd.Timestamp("2026-01-02 03:04:05.123456", tz="UTC"),
        "on": date(2026, 1, 2),
    }
    record = log.append(decision(features=features, score=np.float64(0.123456789012345678)))
    got = log.get(record.decision_id)
    assert got == record
    assert got.seq == 1 and got.prev_hash == log.genesis and len(got.hash) == 64
    for i, v in enumerate(floats):
        assert struct.pack("<d", got.features[f"f{i}"]) == struct.pack("<d", v)
    assert math.isnan(got.features["nan"]) and got.features["missing"] is None  # NaN is not null
    assert got.features["inf"] == math.inf and got.features["ninf"] == -math.inf
    assert got.features["np_float32"] == float(np.float32(0.1))  # widened exactly, not re-rounded
    assert got.features["np_int"] == 2**53 + 1 and got.features["np_bool"] is True
    assert got.features["pd_na"] is None
    assert got.features["at"] == datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert got.features["on"] == date(2026, 1, 2)
    assert got.score == 0.123456789012345678
    assert got.created.tzinfo is not None and got.created_at.endswith("Z")
    # NaN is stored as an explicit tag in standard JSON (no bare NaN token)
    stored = sqlite3.connect(log.path).execute("SELECT features FROM decisions").fetchone()[0]
    assert '"nan":{"$float":"nan"}' in stored and "NaN" not in stored
    json.loads(stored, parse_constant=lambda c: pytest.fail(f"non-standard JSON token {c}"))


def test_encoding_helpers_round_trip_and_refuse_ambiguous_values() -> None:
    value = {"b": [1, 2.5, math.nan, None, "ü"], "a": {"x": -math.inf}}
    text = encode_json(value)
    assert text == '{"a":{"x":{"$float":"-inf"}},"b":[1,2.5,{"$float":"nan"},null,"ü"]}'
    back = decode_json(text)
    assert back["a"]["x"] == -math.inf and math.isnan(back["b"][2])
    for bad in ({"$float": "nan"}, {1: "x"}, {1, 2}, b"bytes", np.datetime64("2026-01-01")):
        with pytest.raises((TypeError, ValueError)):
            encode_json({"v": bad})


def test_unknown_decision_id_is_none(log: DecisionLog) -> None:
    filled(log, 2)
    assert log.get("01NOSUCHDECISION0000000000") is None


def test_ids_are_unique_and_time_sortable(log: DecisionLog) -> None:
    ids = [new_decision_id() for _ in range(1000)]
    assert len(set(ids)) == 1000 and all(len(i) == 26 for i in ids)
    assert ids[0][:10] <= ids[-1][:10]  # the first 10 characters are the millisecond time
    record = log.append(decision(decision_id="order-42"))
    assert log.get("order-42") == record
    with pytest.raises(DuplicateDecisionError):
        log.append(decision(decision_id="order-42"))
    assert len(log) == 1 and log.verify().ok


def test_invalid_input_is_refused(log: DecisionLog) -> None:
    with pytest.raises(ValidationError):
        log.append(decision(tier="extreme"))
    with pytest.raises(ValidationError):
        log.append(decision(action="shrug"))
    with pytest.raises(ValidationError):
        log.append(decision(score=math.nan))
    with pytest.raises(ValidationError):
        log.append(decision(models={}))
    with pytest.raises(ValidationError):
        log.append(decision(hash="0" * 64))  # the log computes seq, time and hashes, not the caller
    assert len(log) == 0


def test_append_many_is_one_transaction(log: DecisionLog) -> None:
    records = log.append_many(decision(i) for i in range(5))
    assert [r.seq for r in records] == [1, 2, 3, 4, 5]
    assert all(b.prev_hash == a.hash for a, b in zip(records, records[1:], strict=False))
    with pytest.raises(DuplicateDecisionError):  # the 2nd id repeats the 1st: nothing is written
        log.append_many([decision(decision_id="dup"), decision(decision_id="dup")])
    assert len(log) == 5
    assert [r.seq for r in log.iter_records(start_seq=4)] == [4, 5]
    assert list(log.iter_records(start_seq=2, end_seq=3)) == records[1:3]


def test_records_are_immutable(log: DecisionLog) -> None:
    record = log.append(decision())
    with pytest.raises(ValidationError):
        record.score = 0.99  # type: ignore[misc]
    record.features["buyer_country"] = "XX"  # a decoded copy: the log does not change
    assert log.get(record.decision_id).features["buyer_country"] == "DE"
    assert not any(hasattr(log, name) for name in ("update", "delete", "remove"))
    conn = sqlite3.connect(log.path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE decisions SET score = 0.99")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM decisions")


# --- verification -----------------------------------------------------------------------------


def test_verify_clean_log(log: DecisionLog) -> None:
    assert log.verify().ok and log.head() == (0, log.genesis)
    records = filled(log, 20)
    report = log.verify()
    assert report.ok and report.records == 20 and report.first_broken_seq is None
    assert (report.head_seq, report.head_hash) == log.head() == (20, records[-1].hash)
    assert "OK - 20 records" in str(report)
    assert json.loads(report.to_json())["ok"] is True
    assert all(r.compute_hash() == r.hash for r in records)


def test_fast_canonical_form_equals_the_documented_one(log: DecisionLog) -> None:
    log.append(decision(request={"name": 'Zoë \u2028 "q" \\ \x01', "n": [1, 2.5e-8, None]}))
    filled(log, 3)
    for row in rows(sqlite3.connect(log.path)):
        assert rehash(row) == row["hash"]


def test_edited_record_is_detected(log: DecisionLog) -> None:
    filled(log)
    raw(log.path).execute("UPDATE decisions SET score = 0.0, action = 'approve' WHERE seq = 4")
    report = verify_path(log.path)
    assert not report.ok and report.first_broken_seq == 4
    assert report.problems[0].kind == "edited" and len(report.problems) == 1
    assert "BROKEN at seq 4 (edited)" in str(report)
    assert json.loads(report.to_json())["first_broken_seq"] == 4


def test_deleted_record_is_detected(log: DecisionLog) -> None:
    filled(log)
    raw(log.path).execute("DELETE FROM decisions WHERE seq = 5")
    report = log.verify()
    assert not report.ok and report.first_broken_seq == 6
    assert report.problems[0].kind == "deleted" and "records 5 are missing" in report.reason


def test_deleted_first_record_is_detected(log: DecisionLog) -> None:
    filled(log)
    raw(log.path).execute("DELETE FROM decisions WHERE seq = 1")
    assert log.verify().problems[0].kind == "deleted"


def test_forged_record_with_recomputed_hash_is_detected(log: DecisionLog) -> None:
    filled(log)
    conn = raw(log.path)
    stored = rows(conn)
    # an alternative "seq 3" appended at the end: its own hash is right, its chaining is not
    forged = dict(stored[2], seq=9, decision_id="forged", action="approve", prev_hash=stored[1]["hash"])
    forged["hash"] = rehash(forged)
    insert(conn, forged)
    report = log.verify()
    assert not report.ok and report.first_broken_seq == 9
    assert report.problems[0].kind == "inserted" and "chains to seq 2" in report.reason


def test_duplicate_seq_is_detected(log: DecisionLog) -> None:
    filled(log)
    conn = raw(log.path)
    # rebuild the table without its primary key, then add a second seq 5 chained like the first
    conn.execute("ALTER TABLE decisions RENAME TO old")
    conn.execute("CREATE TABLE decisions AS SELECT * FROM old")
    conn.execute("DROP TABLE old")
    fifth = rows(conn)[4]
    forged = dict(fifth, decision_id="forged", score=0.0)
    forged["hash"] = rehash(forged)
    insert(conn, forged)
    report = verify_path(log.path)
    assert not report.ok and report.problems[0].kind == "inserted" and report.first_broken_seq == 5


def test_swapped_records_are_detected(log: DecisionLog) -> None:
    filled(log)
    conn = raw(log.path)
    conn.execute("UPDATE decisions SET seq = -1 WHERE seq = 3")
    conn.execute("UPDATE decisions SET seq = 3 WHERE seq = 4")
    conn.execute("UPDATE decisions SET seq = 4 WHERE seq = -1")
    report = log.verify()
    assert not report.ok and report.first_broken_seq == 3
    assert report.problems[0].kind == "reordered" and "written as seq 4" in report.reason
    assert [p.seq for p in report.problems] == [3, 4]  # no knock-on report for seq 5


def test_hmac_chain_detects_a_fully_recomputed_forgery(tmp_path: Path) -> None:
    def forge(path: Path, key: bytes | None) -> None:
        """Edit seq 3 and recompute every hash from there on, as an attacker without the key can."""
        conn = raw(path)
        stored = rows(conn)
        prev = stored[1]["hash"]
        for row in stored[2:]:
            if row["seq"] == 3:
                row["action"], row["score"] = "approve", 0.0
            row["prev_hash"] = prev
            row["hash"] = prev = rehash(row, key)
            conn.execute("UPDATE decisions SET action=?, score=?, prev_hash=?, hash=? WHERE seq=?",
                         (row["action"], row["score"], row["prev_hash"], row["hash"], row["seq"]))  # fmt: skip

    plain = DecisionLog(tmp_path / "plain.db", salt=SALT)
    filled(plain)
    anchor = plain.head()
    forge(plain.path, None)
    assert plain.verify().ok  # the limit of an unkeyed chain: a full rewrite verifies...
    anchored = plain.verify(anchors=[anchor])
    assert not anchored.ok and anchored.problems[0].kind == "anchor"  # ...unless a head was published

    keyed = DecisionLog(tmp_path / "keyed.db", key=KEY, salt=SALT)
    filled(keyed)
    assert keyed.verify().ok and keyed.verify().keyed
    forge(keyed.path, b"attacker-guess-0123456789")  # no key, or a guess: hashes cannot match
    report = verify_path(keyed.path, key=KEY)
    assert not report.ok and report.first_broken_seq == 3 and report.problems[0].kind == "edited"
    assert "HMAC-SHA256" in str(report)


def test_keyed_log_needs_its_key(tmp_path: Path) -> None:
    path = tmp_path / "keyed.db"
    DecisionLog(path, key=KEY, salt=SALT).append(decision())
    assert verify_path(path).problems[0].kind == "key"
    assert verify_path(path, key=b"another-key-0123456789").problems[0].kind == "key"
    with pytest.raises(ValueError, match="key id"):
        DecisionLog(path, key=b"another-key-0123456789")
    with pytest.raises(ValueError, match="keyed log"):
        DecisionLog(path, salt=SALT).append(decision(1))
    with pytest.raises(ValueError, match="unkeyed"):
        DecisionLog(tmp_path / "plain.db").__class__(tmp_path / "plain.db", key=KEY)


def test_truncated_tail_is_detected_only_with_an_anchor(log: DecisionLog) -> None:
    filled(log)
    anchor = log.head()
    raw(log.path).execute("DELETE FROM decisions WHERE seq > 6")
    assert log.verify().ok  # a shorter chain is still a chain
    report = log.verify(anchors=[anchor])
    assert not report.ok and report.problems[0].kind == "truncated"
    assert log.verify(anchors=[(6, rows(sqlite3.connect(log.path))[5]["hash"])]).anchors_checked == 1


def test_verify_path_missing_or_foreign_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        verify_path(tmp_path / "nothing.db")
    assert not (tmp_path / "nothing.db").exists()
    (tmp_path / "notes.db").write_text("not sqlite " * 100)
    report = verify_path(tmp_path / "notes.db")
    assert not report.ok and report.problems[0].kind == "format" and "CANNOT VERIFY (format)" in str(report)


def test_policy_decision_logs_as_is(log: DecisionLog) -> None:
    policy = training.policy.TierPolicy(medium_threshold=0.3, high_threshold=0.7, version="p-7")
    made = policy.decide(0.8, {"doc_typo_likely": True})
    record = log.append(
        decision(
            score=made.probability,
            tier=made.tier,
            action=made.action,
            reasons=made.reasons,
            policy_version="p-7",
        )
    )
    assert record.reasons == made.to_dict()["reasons"] and record.action == "reject"


# --- restarts and concurrent writers ----------------------------------------------------------


def test_reopening_continues_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with DecisionLog(path, salt=SALT) as first:
        last = filled(first, 3)[-1]
    with DecisionLog(path, salt=SALT) as second:
        record = second.append(decision(3))
        assert record.seq == 4 and record.prev_hash == last.hash
        assert second.verify().ok and second.verify().records == 4


def test_threads_share_one_chain(tmp_path: Path) -> None:
    for group in (False, True):
        log = DecisionLog(
            tmp_path / f"threads-{group}.db", salt=SALT, group_commit=group, synchronous="NORMAL"
        )
        ids: list[str] = []

        def work(worker: int, log: DecisionLog = log, ids: list[str] = ids) -> None:
            for i in range(40):
                ids.append(log.append(decision(worker * 100 + i)).decision_id)

        threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        report = log.verify()
        assert report.ok and report.records == 160 and len(set(ids)) == 160
        assert {r.decision_id for r in log.iter_records()} == set(ids)


def _append_from_process(path: str, worker: int, n: int, barrier) -> None:
    log = DecisionLog(path, key=KEY, salt=SALT, synchronous="NORMAL")
    barrier.wait()
    for i in range(n):
        log.append(decision(worker * 1000 + i, decision_id=f"w{worker}-{i}"))
        time.sleep(0.0005)  # a request stream, not a burst: both writers are active at once
    log.close()


def test_two_processes_append_to_one_valid_chain(tmp_path: Path) -> None:
    path = tmp_path / "shared" / "log.db"
    DecisionLog(path, key=KEY, salt=SALT).close()
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(target=_append_from_process, args=(str(path), w, 100, barrier)) for w in (1, 2)
    ]
    for p in workers:
        p.start()
    for p in workers:
        p.join(timeout=60)
    assert [p.exitcode for p in workers] == [0, 0]
    report = verify_path(path, key=KEY)
    assert report.ok and report.records == 200 and report.head_seq == 200
    log = DecisionLog(path, key=KEY)
    records = list(log.iter_records())
    assert {r.decision_id for r in records} == {f"w{w}-{i}" for w in (1, 2) for i in range(100)}
    owners = [r.decision_id[:2] for r in records]
    assert sum(a != b for a, b in zip(owners, owners[1:], strict=False)) > 1  # really interleaved


# --- personal data ----------------------------------------------------------------------------


def test_default_pii_fields_follow_the_contracts() -> None:
    expected = {
        c.name for t in ("customers", "transactions", "account_events") for c in TABLES[t].columns if c.pii
    }
    assert expected == PII_COLUMNS and set(MASKED_COLUMNS) <= PII_COLUMNS
    for name in ("full_name", "email", "document_number", "ip_address"):
        assert {name, f"buyer_{name}", f"seller_{name}"} <= DEFAULT_PII_FIELDS
    assert "buyer_country" not in DEFAULT_PII_FIELDS and "amount" not in DEFAULT_PII_FIELDS


def test_stored_request_holds_no_raw_personal_data(log: DecisionLog) -> None:
    request = {**PERSON, "amount": 10.0, "seller": {"email": "shop@example.org"}, "note": "call 198.51.100.4"}
    before = json.dumps(request)
    record = log.append(decision(request=request))
    assert json.dumps(request) == before  # the caller's dict is not modified
    stored = sqlite3.connect(log.path).execute("SELECT request FROM decisions").fetchone()[0]
    for value in (*PERSON.values(), "Müller", "mueller", "C01X00T478", "shop@example.org", "198.51.100.4"):
        assert value not in stored
    got = record.request
    assert got["amount"] == 10.0
    assert got["buyer_email"]["masked"] == "a***@example.com"
    assert got["buyer_document_number"]["masked"] == "****T478"
    assert got["buyer_phone"]["masked"] == "+******89"
    assert set(got["buyer_full_name"]) == {"pseudonym"}  # names get no hint
    assert got["seller"]["email"]["pseudonym"] == pseudonymise("shop@example.org", SALT)
    assert set(got["note"]) == {"pseudonym"}


def test_pseudonyms_are_stable_and_salted() -> None:
    a = pseudonymise("Anna Müller", SALT)
    assert a == pseudonymise("  anna   MÜLLER ", SALT) and len(a) == 32
    assert a != pseudonymise("Anna Müller", b"another-salt-0123456789")
    assert a != pseudonymise("Anna Muller", SALT)
    assert pseudonymise(date(1990, 4, 1), SALT) == pseudonymise("1990-04-01", SALT)
    with pytest.raises(ValueError):
        pseudonymise("x", b"short")


def test_same_customer_matches_across_records(log: DecisionLog) -> None:
    first, second = log.append(decision(1)), log.append(decision(2))
    assert first.request["buyer_email"] == second.request["buyer_email"]
    other = DecisionLog(log.path.with_name("other.db"), salt=b"another-salt-0123456789").append(decision(1))
    assert other.request["buyer_email"]["pseudonym"] != first.request["buyer_email"]["pseudonym"]


def test_minimise_request_is_idempotent_and_keeps_nulls() -> None:
    once = minimise_request(
        {**PERSON, "buyer_phone": None, "aliases": ["A", "B"]}, {"aliases", *DEFAULT_PII_FIELDS}, salt=SALT
    )
    assert once["buyer_phone"] is None and len(once["aliases"]) == 2
    assert minimise_request(once, salt=SALT) == once


def test_masks() -> None:
    assert mask("anna@example.com") == "a***@example.com"
    assert mask("L898902C3") == "****02C3"
    assert mask("12345", "document") == "****45"
    assert mask("+442079460958") == "+******58"


def test_raw_personal_data_is_refused(tmp_path: Path) -> None:
    unsalted = DecisionLog(tmp_path / "log.db")
    with pytest.raises(ValueError, match="raw personal data"):
        unsalted.append(decision())
    safe = decision(request={"transaction_id": "t1", "amount": 3.0})
    assert unsalted.append(safe).seq == 1
    with pytest.raises(ValueError, match="features hold raw personal data"):
        unsalted.append(decision(request={}, features={"buyer_email": "anna@example.com"}))
    with pytest.raises(ValueError, match="features hold raw personal data"):
        unsalted.append(decision(request={}, features={"buyer_contact": "anna@example.com"}))
    assert len(unsalted) == 1
