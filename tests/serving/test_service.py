"""The real BentoML server in a subprocess, called over HTTP: happy path, bad input, auth, OpenAPI."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from serving.schemas import MAX_BATCH
from tests.serving.conftest import fresh_state, order_request

pytestmark = pytest.mark.filterwarnings("ignore")

API_KEY = "test-scoring-key-0123456789"
AUDITOR_KEY = "test-auditor-key-0123456789"
BENTOML = Path(sys.executable).with_name("bentoml")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, champion, mlflow_store, seeded_state):
    state = fresh_state(seeded_state, tmp_path_factory.mktemp("service") / "state")
    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_store.tracking_uri,
        "KYCRISK_STATE_DIR": str(state),
        "KYCRISK_API_KEY": API_KEY,
        "KYCRISK_AUDITOR_KEY": AUDITOR_KEY,
        "KYCRISK_RISK_TIER": "optional",  # these tests serve the fraud champion only
        "BENTOML_DO_NOT_TRACK": "true",
    }
    log_file = (state / "server.log").open("w")
    proc = subprocess.Popen(
        [str(BENTOML), "serve", "serving.service:KycRiskService", "--port", str(port), "--host", "127.0.0.1"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited: {(state / 'server.log').read_text()[-3000:]}")
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready in 90 s: {(state / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        with httpx.Client(base_url=base, timeout=30) as client:
            yield client
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log_file.close()


SCORING = {"X-API-Key": API_KEY}
AUDIT = {"Authorization": f"Bearer {AUDITOR_KEY}"}


def _order(champion, i: int = 0, tid: str | None = None) -> dict:
    return order_request(champion.held_out.iloc[i].to_dict(), transaction_id=tid)


def test_score_then_read_the_decision_as_auditor(server, champion) -> None:
    response = server.post("/score", json=_order(champion, 0), headers=SCORING)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) >= {
        "decision_id",
        "fraud_probability",
        "risk_tier",
        "action",
        "reasons",
        "models",
        "feature_set",
    }
    assert body["models"] == {"kycrisk-fraud": champion.version}
    assert any(r["source"] == "model" and r["message"] for r in body["reasons"])
    decision = server.get(f"/decisions/{body['decision_id']}", headers=AUDIT)
    assert decision.status_code == 200, decision.text
    record = decision.json()
    assert record["decision_id"] == body["decision_id"] and record["action"] == body["action"]
    assert server.get("/decisions/01NOSUCHDECISION", headers=AUDIT).status_code == 404


def test_batch_onboard_and_events(server, champion) -> None:
    orders = [_order(champion, i) for i in range(1, 4)]
    response = server.post("/score_batch", json={"orders": orders}, headers=SCORING)
    assert response.status_code == 200, response.text
    assert [r["transaction_id"] for r in response.json()["results"]] == [o["transaction_id"] for o in orders]
    profile = {"customer_id": "HTTP-C1", "customer_type": "business", "role": "seller", "full_name": "Acme Ltd",
               "residence_country": "DE", "industry": "retail", "onboarded_at": "2026-06-01T00:00:00Z"}  # fmt: skip
    onboard = server.post("/onboard", json=profile, headers=SCORING)
    assert onboard.status_code == 200, onboard.text
    assert any(r["code"] == "RULES_ONLY" for r in onboard.json()["reasons"])
    event = {"kind": "account_event", "event_id": "HTTP-E1", "customer_id": orders[0]["buyer_id"],
             "occurred_at": orders[-1]["occurred_at"], "event_type": "login"}  # fmt: skip
    events = server.post("/events", json={"events": [event]}, headers=SCORING)
    assert events.status_code == 200, events.text


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": -3.0}, "amount"),
        ({"quantity": "lots"}, "quantity"),
        ({"occurred_at": "not a time"}, "occurred_at"),
        ({"currency": "XXX"}, "currency"),
        ({"buyer_id": None}, "buyer_id"),
        ({"seller_id": "NO-SUCH-CUSTOMER"}, "seller_id"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(server, champion, change, field) -> None:
    response = server.post("/score", json={**_order(champion, 5, "BAD"), **change}, headers=SCORING)
    assert 400 <= response.status_code < 500, response.text
    assert field in response.text


def test_missing_field_and_oversize_requests_are_refused(server, champion) -> None:
    order = _order(champion, 5, "BAD-2")
    del order["amount"]
    response = server.post("/score", json=order, headers=SCORING)
    assert response.status_code == 400 and "amount" in response.text
    too_many = {"orders": [_order(champion, 5, f"X{i}") for i in range(MAX_BATCH + 1)]}
    response = server.post("/score_batch", json=too_many, headers=SCORING)
    assert response.status_code == 400 and "orders" in response.text
    huge = server.post(
        "/score", content=b" " * 3_000_000, headers={**SCORING, "content-type": "application/json"}
    )
    assert huge.status_code == 413


def test_keys_are_required_and_separate(server, champion) -> None:
    order = _order(champion, 6, "AUTH-1")
    assert server.post("/score", json=order).status_code == 401
    assert server.post("/score", json=order, headers={"X-API-Key": "wrong"}).status_code == 401
    assert server.post("/score", json={"nonsense": 1}).status_code == 401  # auth before validation
    assert server.post("/score", json=order, headers=AUDIT).status_code == 401
    ok = server.post("/score", json=order, headers={"Authorization": f"Bearer {API_KEY}"})
    assert ok.status_code == 200, ok.text
    decision_id = ok.json()["decision_id"]
    assert server.get(f"/decisions/{decision_id}").status_code == 401
    assert server.get(f"/decisions/{decision_id}", headers=SCORING).status_code == 401
    assert server.get(f"/decisions/{decision_id}", headers=AUDIT).status_code == 200


def test_openapi_documents_the_endpoints_and_log_odds(server) -> None:
    spec = server.get("/docs.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in ("/score", "/score_batch", "/onboard", "/events", "/decisions/{decision_id}"):
        assert path in paths, path
    assert "log-odds" in spec.text.lower()
