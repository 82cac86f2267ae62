"""The real BentoML server in a subprocess, called over HTTP: happy path, bad input, auth, OpenAPI."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from serving.schemas import MAX_BATCH, MAX_BODY_BYTES, ErrorResponse
from serving.server_process import Server, ServerError
from tests.serving.conftest import fresh_state, order_request

pytestmark = pytest.mark.filterwarnings("ignore")

API_KEY = "test-scoring-key-0123456789"
AUDITOR_KEY = "test-auditor-key-0123456789"


def server_env(mlflow_store, state: Path) -> dict[str, str]:
    """The environment of a test server on ``state`` (a copy of the seeded state)."""
    return {
        **os.environ,
        "MLFLOW_TRACKING_URI": mlflow_store.tracking_uri,
        "KYCRISK_STATE_DIR": str(state),
        "KYCRISK_API_KEY": API_KEY,
        "KYCRISK_AUDITOR_KEY": AUDITOR_KEY,
        "KYCRISK_RISK_TIER": "optional",  # these tests serve the fraud champion only
        "BENTOML_DO_NOT_TRACK": "true",
    }


@contextlib.contextmanager
def running_server(mlflow_store, seeded_state, folder: Path) -> Iterator[Server]:
    """The real ``bentoml serve`` on a fresh copy of the seeded state, stopped (process tree) at exit."""
    state = fresh_state(seeded_state, folder / "state")
    server = Server("bentoml", server_env(mlflow_store, state), folder / "server.log")
    try:
        try:
            server.start(timeout=180)
        except ServerError as exc:
            pytest.fail(str(exc))
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory, champion, mlflow_store, seeded_state) -> Iterator[Server]:
    with running_server(mlflow_store, seeded_state, tmp_path_factory.mktemp("service")) as server:
        yield server


@pytest.fixture(scope="module")
def server(service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.base_url, timeout=30) as client:
        yield client


SCORING = {"X-API-Key": API_KEY}
AUDIT = {"Authorization": f"Bearer {AUDITOR_KEY}"}


def _order(champion, i: int = 0, tid: str | None = None) -> dict:
    return order_request(champion.held_out.iloc[i].to_dict(), transaction_id=tid)


def assert_error(response: httpx.Response, status: int, *fields: str) -> dict:
    """``response`` is ``status`` in the one error shape, naming at least ``fields``; its ``error``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = ErrorResponse.model_validate_json(response.content).error  # the documented schema
    assert error.status == status and error.code and error.message, response.text
    assert set(response.json()) == {"error"}, response.text
    named = [p.field for p in error.problems]
    for field in fields:
        assert field in named, (field, response.text)
    return response.json()["error"]


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
    assert_error(server.get("/decisions/01NOSUCHDECISION", headers=AUDIT), 404)


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
    ("change", "status", "field"),
    [
        ({"amount": -3.0}, 400, "amount"),
        ({"quantity": "lots"}, 400, "quantity"),
        ({"occurred_at": "not a time"}, 400, "occurred_at"),
        ({"currency": "XXX"}, 400, "currency"),
        ({"buyer_id": None}, 400, "buyer_id"),
        ({"seller_id": "NO-SUCH-CUSTOMER"}, 422, "seller_id"),
    ],
)
def test_bad_input_is_a_4xx_naming_the_field(server, champion, change, status, field) -> None:
    response = server.post("/score", json={**_order(champion, 5, "BAD"), **change}, headers=SCORING)
    assert_error(response, status, field)


def test_missing_field_and_oversize_requests_are_refused(server, champion) -> None:
    order = _order(champion, 5, "BAD-2")
    del order["amount"]
    assert_error(server.post("/score", json=order, headers=SCORING), 400, "amount")
    too_many = {"orders": [_order(champion, 5, f"X{i}") for i in range(MAX_BATCH + 1)]}
    assert_error(server.post("/score_batch", json=too_many, headers=SCORING), 400, "orders")
    huge = server.post(
        "/score", content=b" " * 3_000_000, headers={**SCORING, "content-type": "application/json"}
    )
    assert_error(huge, 413, "body")


def _profile(**change) -> dict:
    return {"customer_id": "HTTP-C2", "customer_type": "individual", "role": "buyer",
            "onboarded_at": "2026-06-01T00:00:00Z", **change}  # fmt: skip


def _event(order: dict, **change) -> dict:
    return {"kind": "account_event", "event_id": "HTTP-E9", "customer_id": order["buyer_id"],
            "occurred_at": order["occurred_at"], "event_type": "login", **change}  # fmt: skip


def _label(**change) -> dict:
    return {"kind": "label", "label_id": "HTTP-L9", "entity_type": "transaction", "entity_id": "T-1",
            "label": "fraud", "known_at": "2026-06-01T00:00:00Z", **change}  # fmt: skip


# Out-of-range values of every kind on every POST endpoint: 400 naming the field, never a 500 and
# never applied (the same ids are then accepted once valid, in test_refused_requests_change_nothing).
OUT_OF_RANGE = [
    ("/score", lambda o: {**o, "occurred_at": "3000-01-01T00:00:00Z"}, "occurred_at"),
    ("/score", lambda o: {**o, "occurred_at": "0001-01-01T00:00:00Z"}, "occurred_at"),
    ("/score", lambda o: {**o, "occurred_at": "0001-01-01T00:00:00+03:04"}, "occurred_at"),
    ("/score", lambda o: {**o, "occurred_at": 1_780_000_000}, "occurred_at"),  # an integer epoch
    ("/score", lambda o: {**o, "occurred_at": "2026-06-01"}, "occurred_at"),  # a date for a datetime
    ("/score", lambda o: {**o, "occurred_at": "2026-06-01T12:00:00"}, "occurred_at"),  # no time zone
    ("/score", lambda o: {**o, "amount": 1.7e308, "unit_price": 1.7e308}, "amount"),
    ("/score", lambda o: {**o, "unit_price": 1.7e308}, "unit_price"),
    ("/score", lambda o: {**o, "quantity": 10**9}, "quantity"),
    ("/score", lambda o: {**o, "amount": "12.5"}, "amount"),  # numbers are not strings
    ("/score", lambda o: {**o, "transaction_id": "T\x00NUL"}, "transaction_id"),
    ("/score", lambda o: {**o, "transaction_id": "T\x1b[31mRED"}, "transaction_id"),
    ("/score", lambda o: {**o, "transaction_id": "T\u202eEVIL"}, "transaction_id"),
    ("/score", lambda o: {**o, "transaction_id": " T1"}, "transaction_id"),
    ("/score", lambda o: {**o, "device_id": "dev\u2066ice"}, "device_id"),
    ("/score_batch", lambda o: {"orders": [o, {**o, "occurred_at": "9999-12-31T00:00:00Z"}]}, "orders[1].occurred_at"),
    ("/score_batch", lambda o: {"orders": [{**o, "amount": 1.7e308}]}, "orders[0].amount"),
    ("/events", lambda o: {"events": [_event(o), _event(o, occurred_at="3000-01-01T00:00:00Z")]}, "events[1].occurred_at"),
    ("/events", lambda o: {"events": [_event(o), _event(o, occurred_at="0001-01-01T00:00:00Z")]}, "events[1].occurred_at"),
    ("/events", lambda o: {"events": [_label(known_at="3000-01-01T00:00:00Z")]}, "events[0].known_at"),
    ("/events", lambda o: {"events": [_label(label_id="L\x00")]}, "events[0].label_id"),
    ("/onboard", lambda o: _profile(birth_date="0001-01-01"), "birth_date"),
    ("/onboard", lambda o: _profile(document_expiry="9999-12-31"), "document_expiry"),
    ("/onboard", lambda o: _profile(onboarded_at="3000-01-01T00:00:00Z"), "onboarded_at"),
    ("/onboard", lambda o: _profile(onboarded_at="0001-01-01T00:00:00Z"), "onboarded_at"),
    ("/onboard", lambda o: _profile(email_first_seen_at="0001-01-01T00:00:00+03:04"), "email_first_seen_at"),
    ("/onboard", lambda o: _profile(declared_monthly_volume_usd=1.7e308), "declared_monthly_volume_usd"),
    ("/onboard", lambda o: _profile(twofa_enabled="yes"), "twofa_enabled"),
    ("/onboard", lambda o: _profile(birth_date="1990-02-30"), "birth_date"),
]


@pytest.mark.parametrize(("path", "make", "field"), OUT_OF_RANGE, ids=[f"{p}:{f}" for p, _, f in OUT_OF_RANGE])
def test_out_of_range_values_are_400s_naming_the_field(server, champion, path, make, field) -> None:
    body = make(_order(champion, 7, "RANGE-1"))
    assert_error(server.post(path, json=body, headers=SCORING), 400, field)


def test_refused_requests_change_nothing(server, champion) -> None:
    order = _order(champion, 8, "RANGE-OK")
    assert_error(server.post("/score", json={**order, "occurred_at": "3000-01-01T00:00:00Z"}, headers=SCORING),
                 400, "occurred_at")  # fmt: skip
    assert server.post("/score", json=order, headers=SCORING).status_code == 200
    event = _event(order, event_id="HTTP-E-NOKIND")
    del event["kind"]  # the documented default: an account event
    assert server.post("/events", json={"events": [event]}, headers=SCORING).status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [("/score", b"{not json", "body"), ("/score", b"[]", "body"), ("/score", b'"an order"', "body"),
     ("/score", b"", "body"), ("/score_batch", b"{not json", "body"), ("/score_batch", b"", "body"),
     ("/score_batch", b'{"orders": 5}', "orders"), ("/events", b'{"events": [5]}', "events[0]")],
)  # fmt: skip
def test_body_level_errors_name_the_body(server, path, body, field) -> None:
    response = server.post(path, content=body, headers={**SCORING, "content-type": "application/json"})
    error = assert_error(response, 400, field)
    assert error["problems"] and all(p["field"] for p in error["problems"]), response.text


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "multipart/form-data", "multipart/form-data; boundary=x", "application/x-www-form-urlencoded",
     "application/json; charset=latin-1", None],
)  # fmt: skip
def test_post_bodies_must_be_json(server, champion, content_type) -> None:
    body = json.dumps(_order(champion, 9, "CT-1")).encode()
    for path in ("/score", "/score_batch", "/onboard", "/events"):
        headers = {**SCORING, **({"content-type": content_type} if content_type else {})}
        request = server.build_request("POST", path, content=body, headers=headers)
        request.headers.pop("content-type", None)  # httpx sets none for raw content; the header
        request.headers.update({"content-type": content_type} if content_type else {})
        assert_error(server.send(request), 415)


def test_json_with_utf8_charset_is_accepted(server, champion) -> None:
    body = json.dumps(_order(champion, 9, "CT-OK")).encode()
    response = server.post("/score", content=body, headers={**SCORING, "content-type": "application/json; charset=UTF-8"})
    assert response.status_code == 200, response.text


def test_every_status_has_the_one_shape(server, champion) -> None:
    assert_error(server.post("/score", json=_order(champion, 10, "SHAPE-1")), 401)
    assert_error(server.get("/decisions/anything"), 401)
    assert_error(server.get("/decisions/01NOSUCH", headers=AUDIT), 404)
    assert_error(server.get("/no/such/path"), 404)
    error = assert_error(server.get("/score", headers=SCORING), 405)
    assert error["code"] == "method_not_allowed"
    assert_error(server.post("/score", json={**_order(champion, 10, "SHAPE-2"), "buyer_id": "NOBODY"},
                             headers=SCORING), 422, "buyer_id")  # fmt: skip
    many = {"orders": [_order(champion, 10, "SHAPE-3"), {**_order(champion, 11, "SHAPE-4"), "seller_id": "NOBODY"}]}
    assert_error(server.post("/score_batch", json=many, headers=SCORING), 422)


def _tree_rss(service: Server) -> int:
    total = 0
    for proc in service.processes():
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def test_chunked_oversize_upload_is_refused_while_reading(service) -> None:
    """300 MB announced as chunked: a 413 once the limit is passed, the rest never read (flat RSS)."""
    before = _tree_rss(service)
    chunk = b" " * (1 << 20)
    sent = 0
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(
            b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"X-API-Key: {API_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        sock.setblocking(False)
        answer = b""
        while sent < 300 << 20:
            readable, writable, _ = select.select([sock], [sock], [], 5)
            if readable:
                data = sock.recv(65536)
                answer += data
                if not data or b"\r\n\r\n" in answer:
                    break
            elif writable:
                try:
                    sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass  # the server stopped reading: the answer is on its way
                sent += len(chunk)
            else:
                break
        sock.setblocking(True)
        deadline = time.monotonic() + 10
        while b"\r\n\r\n" not in answer and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError, ConnectionResetError):
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:300]
    assert sent < 100 << 20, f"{sent / 2**20:.0f} MB sent before the answer"
    after = _tree_rss(service)
    assert after - before < 50 * 2**20, f"server tree RSS grew {(after - before) / 2**20:.0f} MB"
    assert MAX_BODY_BYTES < 100 << 20


def test_refusals_are_logged_without_values(server, service) -> None:
    phone, birth = "+491511234567899", "0001-01-01"
    body = _profile(customer_id="HTTP-LOG-1", phone=4_915_112_345_678_99, birth_date=birth, full_name="Zq\x07Xy")
    assert_error(server.post("/onboard", json=body, headers=SCORING), 400, "phone", "birth_date", "full_name")
    time.sleep(0.5)  # the log is written by the server process
    log = service.log_path.read_text(errors="replace")
    lines = [line for line in log.splitlines() if "HTTP-LOG-1" in line or ("/onboard" in line and "400" in line)]
    assert lines and any("WARNING" in line or "refused" in line for line in lines), log[-2000:]
    assert "birth_date" in log and "phone" in log
    for value in (phone[1:], "491511234567899", birth, "Zq"):
        assert value not in log, value
    assert "Traceback" not in log and "input_value" not in log


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
    import schemathesis
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    spec = server.get("/docs.json")
    assert spec.status_code == 200
    doc = spec.json()
    paths = doc["paths"]
    for path in ("/score", "/score_batch", "/onboard", "/events", "/decisions/{decision_id}"):
        assert path in paths, path
    assert "log-odds" in spec.text.lower()
    assert doc["openapi"] == "3.1.0"
    assert [str(e) for e in OPENAPI_31_VALIDATOR.iter_errors(doc)] == []
    schemathesis.openapi.from_dict(doc).validate()
    broken = json.loads(spec.text)  # the validator can fail: a response without its description
    del broken["paths"]["/score"]["post"]["responses"]["413"]["description"]
    assert list(OPENAPI_31_VALIDATOR.iter_errors(broken))
    for path in ("/score", "/score_batch", "/onboard", "/events"):
        post = paths[path]["post"]
        assert post["requestBody"]["required"] is True
        for status in ("400", "401", "409", "413", "415", "422", "500"):
            schema = post["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, status)
    for status in ("401", "404"):
        assert paths["/decisions/{decision_id}"]["get"]["responses"][status]["content"]
    schemas = doc["components"]["schemas"]
    occurred = schemas["Order"]["properties"]["occurred_at"]
    assert occurred["format"] == "date-time" and re.fullmatch(occurred["pattern"], "2026-06-01T12:00:00Z")
    assert not re.search(occurred["pattern"], "3000-01-01T00:00:00Z")
    assert schemas["Order"]["properties"]["amount"]["maximum"] == 1e12
    assert "kind" not in schemas["AccountEvent"].get("required", []) and "kind" in schemas["Label"]["required"]


def _request_count(client: httpx.Client, path: str) -> float:
    text = client.get("/metrics").text
    pattern = rf'^\w*request_total\{{[^}}]*endpoint="{re.escape(path)}"[^}}]*\}} ([0-9.e+]+)$'
    return sum(float(m) for m in re.findall(pattern, text, flags=re.M))


def test_metrics_count_this_server_only(service, server, tmp_path, mlflow_store, seeded_state) -> None:
    with running_server(mlflow_store, seeded_state, tmp_path) as other, httpx.Client(
        base_url=other.base_url, timeout=30
    ) as other_client:
        before, other_before = _request_count(server, "/onboard"), _request_count(other_client, "/onboard")
        for _ in range(7):
            assert server.post("/onboard", json=_profile()).status_code == 401
        assert _request_count(server, "/onboard") == before + 7
        assert _request_count(other_client, "/onboard") == other_before == 0
    assert _request_count(server, "/onboard") == before + 7  # the other's start did not wipe ours
    # the scoring paths are counted too (the access log is off, not skipping them)
    score_before = _request_count(server, "/score")
    for _ in range(3):
        assert server.post("/score", json={}).status_code == 401
    assert _request_count(server, "/score") == score_before + 3
