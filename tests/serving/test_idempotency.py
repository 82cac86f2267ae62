"""Retries and all-or-nothing requests in the Scorer: replays, 409s naming fields, concurrent duplicates."""

from __future__ import annotations

import sqlite3
import threading

import pandas as pd
import pytest

from serving.scorer import IdempotencyConflict, Scorer, ScorerError
from tests.serving.conftest import fresh_state, order_request


@pytest.fixture(scope="module")
def scorer(tmp_path_factory, champion, seeded_state):
    folder = fresh_state(seeded_state, tmp_path_factory.mktemp("idem") / "state")
    scorer = Scorer.from_registry(state_dir=folder)
    yield scorer
    scorer.close()


def _order(champion, tid: str, i: int = 0) -> dict:
    return order_request(champion.held_out.iloc[i].to_dict(), transaction_id=tid)


def _count(scorer: Scorer, sql: str, *params) -> int:
    conn = sqlite3.connect(scorer.decisions.path)
    try:
        return conn.execute(sql, params).fetchone()[0]
    finally:
        conn.close()


def _decisions_of(scorer: Scorer, tid: str) -> int:
    return _count(
        scorer, "SELECT count(*) FROM decisions WHERE json_extract(request, '$.transaction_id') = ?", tid
    )


def test_a_retry_returns_the_original_decision_and_a_changed_body_is_a_conflict(scorer, champion) -> None:
    order = _order(champion, "IDEM-1")
    first = scorer.score(order)
    again = [scorer.score(order) for _ in range(2)]
    assert not first.replayed and all(a.replayed for a in again)
    assert {a.decision_id for a in again} == {first.decision_id}
    assert all(a.fraud_probability == first.fraud_probability for a in again)
    assert _decisions_of(scorer, "IDEM-1") == 1
    before = scorer.features.compute(_order(champion, "IDEM-PROBE"))
    with pytest.raises(IdempotencyConflict) as err:
        scorer.score({**order, "amount": order["amount"] * 2, "quantity": order["quantity"] + 1})
    assert err.value.status == 409
    assert [field for field, _ in err.value.problems] == ["amount", "quantity"]
    assert _decisions_of(scorer, "IDEM-1") == 1
    assert scorer.features.compute(_order(champion, "IDEM-PROBE")) == before  # the state kept the first


def test_concurrent_duplicates_give_one_decision(scorer, champion) -> None:
    order = _order(champion, "IDEM-CONC", 1)
    results, barrier = [], threading.Barrier(8)

    def send() -> None:
        barrier.wait()
        results.append(scorer.score(order))

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.decision_id for r in results}) == 1
    assert sum(not r.replayed for r in results) == 1
    assert _decisions_of(scorer, "IDEM-CONC") == 1


def test_a_retried_batch_replays_and_a_changed_order_refuses_the_batch(scorer, champion) -> None:
    batch = [_order(champion, f"IDEM-B{i}", i) for i in range(5)]
    first = scorer.score_batch(batch)
    again = scorer.score_batch(batch)
    assert [a.decision_id for a in again] == [f.decision_id for f in first]
    assert all(a.replayed for a in again) and not any(f.replayed for f in first)
    # a batch mixing a retry with new orders: the retry replays, the new ones are decided
    mixed = scorer.score_batch([batch[0], _order(champion, "IDEM-B-NEW", 6)])
    assert mixed[0].replayed and mixed[0].decision_id == first[0].decision_id and not mixed[1].replayed
    changed = [*batch[:3], {**batch[3], "currency": "GBP" if batch[3]["currency"] != "GBP" else "EUR"}]
    with pytest.raises(IdempotencyConflict) as err:
        scorer.score_batch([*changed, _order(champion, "IDEM-B-NEVER", 7)])
    assert err.value.problems[0][0] == "orders[3].currency"
    assert _decisions_of(scorer, "IDEM-B-NEVER") == 0
    assert scorer.score(_order(champion, "IDEM-B-NEVER", 7)).replayed is False  # nothing kept of it


def test_events_are_all_or_nothing_and_retries_are_replays(scorer, champion) -> None:
    when = champion.held_out["occurred_at"].max()
    good = {"kind": "account_event", "event_id": "IDEM-E1", "customer_id": champion.held_out["buyer_id"][0],
            "occurred_at": when.isoformat(), "event_type": "password_reset"}  # fmt: skip
    # a login no feature reads, but older than the state accepts: refused, and so is the request
    late = {**good, "event_id": "IDEM-E2", "event_type": "login",
            "occurred_at": (when - pd.Timedelta(days=30)).isoformat()}  # fmt: skip
    history_before = scorer.history.counts()
    with pytest.raises(ScorerError) as err:
        scorer.apply_events([good, late])
    assert err.value.field == "events[1].occurred_at"
    assert scorer.history.counts() == history_before  # the valid event was not applied either
    assert scorer.apply_events([good]) == {"applied": 1, "ignored": 0, "replayed": 0}
    assert scorer.apply_events([good]) == {"applied": 0, "ignored": 1, "replayed": 1}
    with pytest.raises(IdempotencyConflict) as err:
        scorer.apply_events([{**good, "event_type": "device_change"}])
    assert err.value.problems[0][0] == "events[0].event_type"
    with pytest.raises(ScorerError) as err:
        scorer.apply_events([good, good])
    assert err.value.field == "events[1].event_id"


def test_a_failed_decision_leaves_no_trace(scorer, champion, monkeypatch) -> None:
    """A failure between staging and the commit (here: the log refuses the append) rolls memory back."""
    probe = _order(champion, "IDEM-FAIL-PROBE", 2)
    before = scorer.features.compute(probe)
    history_before = scorer.history.counts()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(scorer.decisions, "append_receipt", broken)
    with pytest.raises(OSError):
        scorer.score(_order(champion, "IDEM-FAIL", 2))
    monkeypatch.undo()
    assert scorer.features.compute(probe) == before
    assert scorer.history.counts() == history_before
    assert _decisions_of(scorer, "IDEM-FAIL") == 0
    assert scorer.score(_order(champion, "IDEM-FAIL", 2)).replayed is False


def _holds(folder, tid: str) -> dict[str, bool]:
    def has(file: str, sql: str) -> bool:
        conn = sqlite3.connect(folder / file)
        try:
            return conn.execute(sql, (tid,)).fetchone()[0] > 0
        finally:
            conn.close()

    return {
        "features": has("features.sqlite", "SELECT count(*) FROM events WHERE event_id = ?"),
        "history": has("history.sqlite", "SELECT count(*) FROM transactions WHERE transaction_id = ?"),
        "journal": has("decisions.sqlite", "SELECT count(*) FROM idempotency WHERE key = 'order:' || ?"),
    }


def test_a_commit_interrupted_before_the_stores_is_finished_at_the_next_start(
    tmp_path, champion, seeded_state
) -> None:
    folder = fresh_state(seeded_state, tmp_path / "state")
    scorer = Scorer.from_registry(state_dir=folder)
    order = _order(champion, "IDEM-CRASH", 3)

    def crash(*args, **kwargs):  # the process dies right after the commit (KeyboardInterrupt: not caught)
        raise KeyboardInterrupt

    scorer.commit.finish = crash
    with pytest.raises(KeyboardInterrupt):
        scorer.score(order)
    scorer.close()
    assert _holds(folder, "IDEM-CRASH") == {"features": False, "history": False, "journal": True}
    restarted = Scorer.from_registry(state_dir=folder)
    try:
        assert _holds(folder, "IDEM-CRASH") == {"features": True, "history": True, "journal": True}
        assert restarted.score(order).replayed
        assert not restarted.journal.pending()
    finally:
        restarted.close()


def test_an_outbox_row_that_cannot_be_applied_is_quarantined_and_the_state_starts(
    tmp_path, champion, seeded_state
) -> None:
    folder = fresh_state(seeded_state, tmp_path / "state")
    scorer = Scorer.from_registry(state_dir=folder)
    scorer.close()
    conn = sqlite3.connect(folder / "decisions.sqlite")
    conn.execute("INSERT INTO outbox (created_at, payload) VALUES ('2026-01-01T00:00:00Z', x'00ff00')")
    conn.commit()
    conn.close()
    restarted = Scorer.from_registry(state_dir=folder)
    try:
        (row,) = restarted.journal.quarantined()
        assert "cannot be opened" in row[1]
        assert not restarted.journal.pending()
        assert not restarted.score(_order(champion, "IDEM-AFTER-QUARANTINE", 4)).replayed
    finally:
        restarted.close()
