"""kill -9 of the real BentoML server: every request is in every store or in none, retries replay.

The server runs as a subprocess on a copy of the seeded state; the test kills its whole process
tree with SIGKILL while requests are in flight, starts it again on the same state, and reads the
state files directly (read-only sqlite) to check that the feature state, the customer history and
the decision log (with its idempotency journal) hold exactly the same orders: those the service
committed. Then the same requests are sent again: committed ones come back as replays with the
same decision ids, the others are decided now, once.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from serving.decision_log import ANCHORS_ENV, verify_path
from serving.server_process import Server, ServerError
from tests.serving.conftest import fresh_state, order_request
from tests.serving.test_service import SCORING, server_env

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.slow]


def _read(path: Path, sql: str) -> set[str]:
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {row[0] for row in conn.execute(sql)}
    finally:
        conn.close()


def _stores(state: Path, ids: set[str]) -> dict[str, set[str]]:
    """The ids among ``ids`` that each store holds."""
    return {
        "features": ids & _read(state / "features.sqlite", "SELECT event_id FROM events WHERE kind = 'txn'"),
        "history": ids & _read(state / "history.sqlite", "SELECT transaction_id FROM transactions"),
        "journal": ids
        & {k.split(":", 1)[1] for k in _read(state / "decisions.sqlite", "SELECT key FROM idempotency")},
        "decided": ids
        & {
            txn
            for txn in _read(
                state / "decisions.sqlite",
                "SELECT json_extract(request, '$.transaction_id') FROM decisions WHERE kind = 'score'",
            )
        },
    }


def _kill(server: Server) -> None:
    for proc in server.processes():
        try:
            proc.kill()
        except Exception:  # already gone
            pass
    server.proc.wait(timeout=30)


def _start(env: dict, log: Path) -> Server:
    server = Server("bentoml", env, log)
    try:
        server.start(timeout=180)
    except ServerError as exc:
        pytest.fail(str(exc))
    return server


def _orders(champion, prefix: str, n: int) -> list[dict]:
    rows = champion.held_out.to_dict("records")
    return [order_request(rows[i % len(rows)], transaction_id=f"{prefix}-{i:04d}") for i in range(n)]


def test_kill_9_leaves_every_request_whole_and_retries_replay(
    tmp_path, champion, mlflow_store, seeded_state
) -> None:
    state = fresh_state(seeded_state, tmp_path / "state")
    env = server_env(mlflow_store, state)
    anchors = tmp_path / "anchors.jsonl"  # outside the state folder
    env[ANCHORS_ENV] = str(anchors)
    rng = random.Random()  # a new moment each run: over the runs, every phase of a request gets hit
    server = _start(env, tmp_path / "server-0.log")
    summary = []
    try:
        # 0. poison inputs (the campaign's reproductions) are refused and change nothing: the
        # restarts below must come up and serve (start() waits for /readyz)
        base = _orders(champion, "POISON", 1)[0]
        poison = [
            ("/score", {**base, "amount": 1.7e308, "unit_price": 1.7e308}),
            ("/score", {**base, "occurred_at": "3000-01-01T00:00:00Z"}),
            ("/score_batch", {"orders": [{**base, "occurred_at": "0001-01-01T00:00:00Z"}]}),
            ("/events", {"events": [{"kind": "account_event", "event_id": "P-1", "customer_id": base["buyer_id"],
                                     "occurred_at": "1900-01-01T00:00:00Z", "event_type": "login"}]}),
            ("/events", {"events": [{"kind": "label", "label_id": "P-2", "entity_type": "transaction",
                                     "entity_id": "T-1", "label": "fraud", "known_at": "3000-01-01T00:00:00Z"}]}),
            ("/onboard", {"customer_id": "P-C1", "customer_type": "individual", "role": "buyer",
                          "document_expiry": "9999-12-31", "onboarded_at": "2026-06-01T00:00:00Z"}),
            ("/onboard", {"customer_id": "P-C2", "customer_type": "individual", "role": "buyer",
                          "birth_date": "0001-01-01", "onboarded_at": "3000-01-01T00:00:00Z"}),
        ]  # fmt: skip
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            for path, body in poison:
                answer = client.post(path, json=body, headers=SCORING)
                assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)

        # 1. a batch of 1,000 orders, killed while it is being decided (or just after)
        batch = _orders(champion, "KB", 1000)
        ids = {o["transaction_id"] for o in batch}
        answers: list[httpx.Response | Exception] = []

        def send() -> None:
            try:
                with httpx.Client(base_url=server.base_url, timeout=120) as client:
                    answers.append(client.post("/score_batch", json={"orders": batch}, headers=SCORING))
            except Exception as exc:  # the connection dies with the server
                answers.append(exc)

        sender = threading.Thread(target=send)
        sender.start()
        time.sleep(rng.uniform(0.5, 5.0))  # a 1,000-order batch takes about 1-4 s here
        _kill(server)
        sender.join(timeout=60)
        server = _start(env, tmp_path / "server-1.log")  # recovery runs before /readyz answers
        held = _stores(state, ids)
        sizes = {store: len(found) for store, found in held.items()}
        assert set(sizes.values()) in ({0}, {1000}), f"a batch was cut by kill -9: {sizes}"
        assert len({frozenset(v) for v in held.values()}) == 1, sizes
        committed = sizes["journal"] == 1000
        summary.append(("batch", committed))
        with httpx.Client(base_url=server.base_url, timeout=120) as client:
            again = client.post("/score_batch", json={"orders": batch}, headers=SCORING)
        assert again.status_code == 200, again.text
        results = again.json()["results"]
        assert all(r["replayed"] is committed for r in results)
        if committed and isinstance(answers[0], httpx.Response) and answers[0].status_code == 200:
            first = [r["decision_id"] for r in answers[0].json()["results"]]
            assert [r["decision_id"] for r in results] == first
        assert {store: len(found) for store, found in _stores(state, ids).items()} == dict.fromkeys(held, 1000)

        # 2. single orders from 8 clients, killed under load: every acknowledged one is kept
        orders = _orders(champion, "KS", 2000)
        acked: dict[str, str] = {}
        lock = threading.Lock()
        stop = threading.Event()

        def client_loop(part: list[dict]) -> None:
            with httpx.Client(base_url=server.base_url, timeout=30) as client:
                for order in part:
                    if stop.is_set():
                        return
                    try:
                        r = client.post("/score", json=order, headers=SCORING)
                    except Exception:
                        return  # the server is gone
                    if r.status_code == 200:
                        with lock:
                            acked[order["transaction_id"]] = r.json()["decision_id"]

        threads = [threading.Thread(target=client_loop, args=(orders[k::8],)) for k in range(8)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(2.0, 4.0))
        _kill(server)
        stop.set()
        for t in threads:
            t.join(timeout=60)
        server = _start(env, tmp_path / "server-2.log")
        ids = {o["transaction_id"] for o in orders}
        held = _stores(state, ids)
        assert acked, "no order was acknowledged before the kill"
        assert set(acked) <= held["decided"], "an acknowledged decision was lost"
        assert held["features"] == held["history"] == held["journal"] == held["decided"], {
            k: len(v) for k, v in held.items()
        }
        summary.append(("single", len(acked), len(held["decided"])))
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            for order in orders[:300]:
                r = client.post("/score", json=order, headers=SCORING)
                assert r.status_code == 200, r.text
                tid = order["transaction_id"]
                assert r.json()["replayed"] is (tid in held["decided"])
                if tid in acked:
                    assert r.json()["decision_id"] == acked[tid]
    finally:
        server.stop()  # a clean stop (SIGTERM): the service closes its state and anchors the head
    report = verify_path(state / "decisions.sqlite", anchors=anchors)
    summary.append(("log", report.records, report.unanchored_records))
    print("kill -9 rounds:", summary, report)
    assert report.ok, report
    assert report.unanchored_records == 0  # the close anchor covers the tail
