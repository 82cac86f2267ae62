"""Tests of the decision log's anchors and header: truncation, rewrites, forged appends, downgrades
and swapped files are caught with real sqlite edits, the header cannot be changed in place, and
``kycrisk audit verify --anchors`` gives the documented exit codes."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from serving.decision_log import (
    KEY_ENV,
    Anchor,
    DecisionLog,
    genesis_hash,
    read_anchors,
    verify_path,
)
from tests.serving.test_decision_log import KEY, SALT, decision, insert, raw, rehash, rows
from serving.cli import main as kycrisk

EVERY = 10


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    """The log in a state folder, the anchors file in a separate audit folder."""
    (tmp_path / "audit").mkdir()
    return tmp_path / "state" / "decisions.sqlite", tmp_path / "audit" / "anchors.jsonl"


def written(log_path: Path, anchors: Path, n: int = 30, key: bytes | None = None) -> Path:
    """A log of ``n`` records appended one by one and closed cleanly (anchored every 10 and on close)."""
    with DecisionLog(
        log_path, key=key, salt=SALT, synchronous="NORMAL", anchors=anchors, anchor_every=EVERY
    ) as log:
        for i in range(n):
            log.append(decision(i))
    return log_path


def rewrite(conn: sqlite3.Connection, stored: list[dict], key: bytes | None, genesis: str) -> None:
    """Rechain ``stored`` (already edited) from ``genesis`` and write every row back, as an attacker can."""
    prev = genesis
    for row in stored:
        row["prev_hash"] = prev
        row["hash"] = prev = rehash(row, key)
        conn.execute(
            "UPDATE decisions SET action=?, score=?, prev_hash=?, hash=? WHERE seq=?",
            (row["action"], row["score"], row["prev_hash"], row["hash"], row["seq"]),
        )


def append_forgery(path: Path) -> None:
    """Append a well-chained copy of the last record that approves, as an attacker without the key can."""
    conn = raw(path)
    last = rows(conn)[-1]
    forged = dict(last, seq=last["seq"] + 1, decision_id="forged", action="approve", prev_hash=last["hash"])
    forged["hash"] = rehash(forged)
    insert(conn, forged)
    conn.close()


def unseal(path: Path) -> sqlite3.Connection:
    """``raw`` with the header's triggers dropped as well."""
    conn = raw(path)
    for name in ("meta_no_update", "meta_no_delete", "meta_no_insert"):
        conn.execute(f"DROP TRIGGER {name}")
    return conn


# --- writing anchors ----------------------------------------------------------------------------


def test_anchors_are_written_on_open_every_n_records_and_on_close(places) -> None:
    log_path, anchors = places
    written(log_path, anchors, 25)
    lines = anchors.read_text().splitlines()
    parsed = read_anchors(anchors)
    assert [(a.event, a.seq) for a in parsed] == [("open", 0), ("every", 10), ("every", 20), ("close", 25)]
    assert all(json.loads(line) == a.model_dump() for line, a in zip(lines, parsed, strict=True))
    meta = dict(sqlite3.connect(log_path).execute("SELECT name, value FROM meta"))
    first = parsed[0]
    assert first.hash == genesis_hash(meta) and first.log_id == meta["log_id"] and len(first.log_id) == 32
    assert (first.chain, first.key_id, first.format_version) == ("sha256", None, "2")
    assert first.log_created_at == meta["created_at"] and first.log == str(log_path.resolve())
    stored = {r["seq"]: r["hash"] for r in rows(sqlite3.connect(log_path))}
    assert all(stored[a.seq] == a.hash for a in parsed[1:])
    report = verify_path(log_path, anchors=anchors)
    assert report.ok and report.anchors_checked == 4 and report.unanchored_records == 0
    assert report.log_id == meta["log_id"] and "4 anchor(s) matched" in str(report)


def test_reopening_anchors_again_and_anchor_on_demand(places) -> None:
    log_path, anchors = places
    written(log_path, anchors, 3)
    with DecisionLog(log_path, salt=SALT, anchors=anchors) as log:
        log.append(decision(3))
        manual = log.anchor()
        assert (manual.event, manual.seq) == ("manual", 4) and log.last_anchor == manual
        assert log.verify().ok and log.verify().anchors_checked == 3  # its own file: seqs 0, 3 and 4
    assert [a.event for a in read_anchors(anchors)] == ["open", "close", "open", "manual", "close"]
    with pytest.raises(ValueError, match="without an anchors file"):
        DecisionLog(log_path, salt=SALT).anchor()


def test_group_commit_threads_and_batches_anchor_records_that_verify(places) -> None:
    log_path, anchors = places
    log = DecisionLog(
        log_path, salt=SALT, synchronous="NORMAL", group_commit=True, anchors=anchors, anchor_every=EVERY
    )

    def work(worker: int) -> None:
        for i in range(40):
            log.append_receipt(decision(worker * 100 + i))

    threads = [threading.Thread(target=work, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    log.append_many(decision(1000 + i) for i in range(15))  # a batch counts all its records
    for t in threads:
        t.join()
    log.close()
    parsed = read_anchors(anchors)
    assert parsed[-1].event == "close" and parsed[-1].seq == 175
    assert sum(a.event == "every" for a in parsed) >= 175 // (EVERY + 15)  # at least one per batch or 10
    report = verify_path(log_path, anchors=anchors)
    assert report.ok and report.records == 175
    assert report.anchors_checked == len({a.seq for a in parsed}) and report.unanchored_records == 0


def test_a_failing_anchor_never_fails_a_logged_decision(places) -> None:
    log_path, anchors = places
    log = DecisionLog(log_path, salt=SALT, synchronous="NORMAL", anchors=anchors, anchor_every=5)
    anchors.unlink()
    anchors.mkdir()  # writing a line now fails (even as root)
    for i in range(12):
        log.append(decision(i))
    assert len(log) == 12 and isinstance(log.anchor_error, OSError)
    with pytest.raises(OSError):
        log.close()  # a shutdown that cannot anchor says so


# --- configuration ------------------------------------------------------------------------------


def test_anchors_inside_the_state_folder_are_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    for inside in (state / "anchors.jsonl", state / "sub" / "anchors.jsonl", state):
        with pytest.raises(ValueError, match="inside the decision log's folder"):
            DecisionLog(state / "decisions.sqlite", anchors=inside)
    with pytest.raises(ValueError, match="does not exist"):
        DecisionLog(state / "decisions.sqlite", anchors=tmp_path / "nowhere" / "anchors.jsonl")
    with pytest.raises(ValueError, match="anchor_every"):
        DecisionLog(state / "decisions.sqlite", anchors=tmp_path / "anchors.jsonl", anchor_every=0)
    assert list(state.iterdir()) == [] and not (tmp_path / "anchors.jsonl").exists()  # nothing created


def test_malformed_anchor_lines_are_refused_with_their_line_number(places) -> None:
    log_path, anchors = places
    written(log_path, anchors, 3)
    good = anchors.read_text()
    cases = {
        '{"seq": 3': "line 3: not JSON",
        '[3, "ab"]': "line 3: expected a JSON object",
        '{"seq": -1, "hash": "' + "a" * 64 + '"}': "line 3: seq",
        '{"seq": 3, "hash": "xyz"}': "line 3: hash",
        '{"seq": "3", "hash": "' + "a" * 64 + '"}': "line 3: seq",
        '{"seq": 3, "hash": "' + "a" * 64 + '", "sha": 1}': "line 3: sha",
    }
    for line, message in cases.items():
        anchors.write_text(good + line + "\n")
        with pytest.raises(ValueError, match=message):
            verify_path(log_path, anchors=anchors)
    with pytest.raises(ValueError, match=r"anchors\[1\]"):
        verify_path(log_path, anchors=[(1, "a" * 64), (2, "not a hash")])
    anchors.write_text(good + "\n\n")  # blank lines are fine
    assert verify_path(log_path, anchors=anchors).ok


def test_a_torn_last_line_does_not_swallow_the_next_anchor(places) -> None:
    log_path, anchors = places
    written(log_path, anchors, 3)
    with anchors.open("a") as f:
        f.write('{"seq": 3, "ha')  # a crash in the middle of a write
    written(log_path, anchors, 2)
    lines = anchors.read_text().splitlines()
    assert lines[-3] == '{"seq": 3, "ha' and json.loads(lines[-1])["seq"] == 5
    with pytest.raises(ValueError, match=f"line {len(lines) - 2}: not JSON"):
        read_anchors(anchors)


# --- what anchors catch -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "message"),
    [
        ("seq > 29", "the log ends at seq 29 but an anchor says seq 30 existed"),
        ("seq > 20", "the log ends at seq 20 but an anchor says seq 30 existed"),
        ("1 = 1", "the log is empty but an anchor says seq 10 existed (and 2 later anchor(s), up to seq 30)"),
    ],
    ids=["last record", "last 10", "all"],
)
def test_deleted_tail_is_detected_with_anchors(places, where: str, message: str) -> None:
    log_path, anchors = places
    written(log_path, anchors)
    raw(log_path).execute(f"DELETE FROM decisions WHERE {where}")
    assert verify_path(log_path).ok  # the limit of a chain: a shorter chain is a chain
    report = verify_path(log_path, anchors=anchors)
    assert not report.ok and report.problems[0].kind == "truncated" and message in report.reason


def test_appended_forgery_in_an_unkeyed_log_is_detected_with_anchors(places) -> None:
    log_path, anchors = places
    written(log_path, anchors)
    append_forgery(log_path)
    assert verify_path(log_path).ok  # a well-chained append: the chain alone cannot tell
    report = verify_path(log_path, anchors=anchors)
    assert not report.ok and report.first_broken_seq == 31 and report.problems[0].kind == "unanchored"
    assert "follow the anchor written when the log was last closed (seq 30)" in report.reason


def test_forgery_appended_while_the_service_was_down_is_detected_after_restart(places) -> None:
    log_path, anchors = places
    written(log_path, anchors)
    append_forgery(log_path)
    written(log_path, anchors, 5)  # the service starts again, chains onto the forgery, closes
    report = verify_path(log_path, anchors=anchors)
    assert not report.ok and report.first_broken_seq == 31 and report.problems[0].kind == "unanchored"
    assert "between a close anchor (seq 30) and the next open anchor (seq 31)" in report.reason


def test_edit_with_the_rest_rehashed_in_an_unkeyed_log_is_detected_with_anchors(places) -> None:
    log_path, anchors = places
    written(log_path, anchors)
    conn = raw(log_path)
    stored = rows(conn)
    stored[4]["action"], stored[4]["score"] = "approve", 0.0
    rewrite(conn, stored[4:], None, stored[3]["hash"])
    assert verify_path(log_path).ok
    report = verify_path(log_path, anchors=anchors)
    assert not report.ok and report.first_broken_seq == 10 and report.problems[0].kind == "anchor"
    assert [p.seq for p in report.problems] == [10, 20, 30]


def test_a_header_changed_in_place_breaks_the_chain_at_seq_1(places) -> None:
    log_path, anchors = places
    written(log_path, anchors, 5)
    unseal(log_path).execute(
        "UPDATE meta SET value = '2020-01-01T00:00:00.000000Z' WHERE name = 'created_at'"
    )
    report = verify_path(log_path)
    assert not report.ok and report.first_broken_seq == 1 and report.problems[0].kind == "header"
    anchored = verify_path(log_path, anchors=anchors)
    assert {p.kind for p in anchored.problems} >= {"header", "anchor"}  # and the seq-0 anchor differs


def test_the_header_triggers_refuse_changes(places) -> None:
    log_path, anchors = places
    written(log_path, anchors, 2, key=KEY)
    conn = sqlite3.connect(log_path, isolation_level=None)
    for statement in (
        "UPDATE meta SET value = 'sha256' WHERE name = 'chain'",
        "DELETE FROM meta WHERE name = 'key_id'",
        "INSERT INTO meta (name, value) VALUES ('note', 'x')",
    ):
        with pytest.raises(sqlite3.IntegrityError, match="header is written once"):
            conn.execute(statement)
    assert verify_path(log_path, key=KEY, anchors=anchors).ok


def test_keyed_log_downgraded_and_rehashed_is_detected(places) -> None:
    log_path, anchors = places
    written(log_path, anchors, key=KEY)
    # The attack: header to sha256 without key_id, genesis recomputed, every record rehashed.
    conn = unseal(log_path)
    conn.execute("UPDATE meta SET value = 'sha256' WHERE name = 'chain'")
    conn.execute("DELETE FROM meta WHERE name = 'key_id'")
    meta = dict(conn.execute("SELECT name, value FROM meta"))
    rewrite(conn, rows(conn), None, genesis_hash(meta))
    assert verify_path(log_path).ok  # unkeyed and without anchors, a downgrade cannot be told
    expected = verify_path(log_path, expect_keyed=True)
    assert (
        not expected.ok
        and expected.problems[0].kind == "downgrade"
        and "keyed log was expected" in expected.reason
    )
    assert verify_path(log_path, key=KEY).problems[0].kind == "downgrade"  # a key implies expect_keyed
    report = verify_path(log_path, anchors=anchors)
    assert not report.ok and report.problems[0].kind == "downgrade"
    assert "records a hmac-sha256 chain, key id" in report.reason and "says sha256" in report.reason
    assert {p.seq for p in report.problems if p.kind == "anchor"} >= {0, 10, 20}  # HMAC hashes anchored


def test_keyed_log_never_verifies_without_its_key(places) -> None:
    log_path, anchors = places
    written(log_path, anchors, 3, key=KEY)
    for key in (None, b"another-key-0123456789"):
        report = verify_path(log_path, key=key, anchors=anchors)
        assert not report.ok and report.verdict == "unverifiable" and report.problems[0].kind == "key"
    assert "needs its key" in verify_path(log_path).reason and "CANNOT VERIFY" in str(verify_path(log_path))
    assert verify_path(log_path, key=KEY, anchors=anchors, expect_keyed=True).verdict == "intact"


def test_swapped_or_recreated_file_is_detected(places, tmp_path: Path) -> None:
    log_path, anchors = places
    written(log_path, anchors, 12)
    for leftover in log_path.parent.iterdir():
        leftover.unlink()
    written(log_path, tmp_path / "other.jsonl", 12)  # recreated at the same path, anchored elsewhere
    report = verify_path(log_path, anchors=anchors)
    assert not report.ok and report.problems[0].kind == "swapped" and report.anchors_other_logs == 3
    # one anchors file may serve several logs: the others' anchors are skipped and counted
    shared = tmp_path / "shared.jsonl"
    shared.write_text(anchors.read_text() + (tmp_path / "other.jsonl").read_text())
    mixed = verify_path(log_path, anchors=shared)
    assert mixed.ok and mixed.anchors_other_logs == 3 and mixed.anchors_checked == 3


def test_hand_kept_heads_still_catch_a_rewrite(places) -> None:
    log_path, anchors = places
    written(log_path, anchors, 12)
    head = read_anchors(anchors)[-1]
    conn = raw(log_path)
    stored = rows(conn)
    stored[0]["score"] = 0.5
    meta = dict(conn.execute("SELECT name, value FROM meta"))
    rewrite(conn, stored, None, genesis_hash(meta))
    for kept in (
        [(head.seq, head.hash)],
        [{"seq": head.seq, "hash": head.hash}],
        [Anchor(seq=12, hash=head.hash)],
    ):
        report = verify_path(log_path, anchors=kept)
        assert not report.ok and report.first_broken_seq == 12 and report.problems[0].kind == "anchor"


def test_format_1_logs_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.executemany("INSERT INTO meta VALUES (?, ?)", [("format_version", "1"), ("chain", "sha256")])
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match="format '1' is not supported"):
        DecisionLog(path)
    report = verify_path(path)
    assert report.verdict == "unverifiable" and report.problems[0].kind == "format"


# --- kycrisk audit verify -----------------------------------------------------------------------


def test_audit_verify_exit_codes(places, monkeypatch, capsys) -> None:
    log_path, anchors = places
    written(log_path, anchors, 12)
    monkeypatch.delenv(KEY_ENV, raising=False)
    base = ["audit", "verify", "--log", str(log_path)]
    assert kycrisk([*base, "--anchors", str(anchors)]) == 0
    assert kycrisk([*base, "--expect-keyed"]) == 1
    assert "(downgrade)" in capsys.readouterr().out
    anchors.write_text(anchors.read_text() + "not json\n")
    assert kycrisk([*base, "--anchors", str(anchors)]) == 2
    assert "line 4: not JSON" in capsys.readouterr().err
    assert kycrisk([*base, "--anchors", str(anchors.with_name("missing.jsonl"))]) == 2
    keyed = log_path.with_name("keyed.sqlite")
    written(keyed, anchors.with_name("keyed.jsonl"), 2, key=KEY)
    assert kycrisk(["audit", "verify", "--log", str(keyed)]) == 2
    assert "needs its key" in capsys.readouterr().out
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    assert (
        kycrisk(["audit", "verify", "--log", str(keyed), "--anchors", str(anchors.with_name("keyed.jsonl"))])
        == 0
    )
    monkeypatch.setenv(KEY_ENV, "short")
    assert kycrisk(["audit", "verify", "--log", str(keyed)]) == 2


def test_audit_verify_command_detects_a_cut_tail(places) -> None:
    log_path, anchors = places
    written(log_path, anchors)
    env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
    command = [
        Path(sys.executable).with_name("kycrisk"),
        "audit",
        "verify",
        "--log",
        log_path,
        "--anchors",
        anchors,
    ]
    intact = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert intact.returncode == 0 and "OK - 30 records" in intact.stdout
    raw(log_path).execute("DELETE FROM decisions WHERE seq > 20")
    cut = subprocess.run([*command, "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert cut.returncode == 1, cut.stderr
    report = json.loads(cut.stdout)
    assert report["verdict"] == "broken" and report["first_broken_seq"] == 30
    assert "the log ends at seq 20 but an anchor says seq 30 existed" in report["reason"]
