"""The serving half of ``kycrisk demo``: seed a state, start the real service, replay the last day through its API.

After the demo has trained and promoted the models, ``run``:

1. splits the generated data at ``end - hours`` (``end`` = the last order): everything known
   before the cut is the history a running service would hold; it is written as a data folder
   (``<workdir>/serve/history``) and seeded into a fresh state (``<workdir>/serve/state``);
2. starts ``bentoml serve serving.service:KycRiskService`` on 127.0.0.1 (a subprocess with its
   own random API and auditor keys, the state's secrets from ``<workdir>/secrets.json``, outside the
   state folder (written by ``serving.secrets_config.write_secrets_file`` on the first run, mode
   0600), and a simulated clock at ``end``: the synthetic data is dated after today, see
   ``serving.clock.Clock``);
3. replays the last ``hours`` through the HTTP API in time order, as the platform would call it:
   account events and labels with ``POST /events``, every order with ``POST /score``;
4. onboards three new customers with ``POST /onboard``: an ordinary one, one with an honest
   transposition typo in the passport number, and one named like a sanctioned watchlist entry;
5. prints approve, review and reject examples with their reasons, reads one decision back with
   the auditor key (``GET /decisions/{id}``), stops the server, verifies the decision log's hash
   chain and replays one decision from the log.

Everything goes through a real server and a real HTTP client (httpx); nothing is mocked.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from features.documents import with_check_digit
from features.io import load_valid_dataset
from serving.decision_log import ANCHORS_ENV, verify_path
from serving.replay import replay_decision
from serving.schemas import MAX_BATCH, AccountEvent, Label, Order, request_body
from serving.scorer import Scorer
from serving.secrets_config import (
    KEY_ENV,
    SALT_ENV,
    SECRETS_FILE_ENV,
    STATE_KEY_ENV,
    Secrets,
    load_secrets,
    write_secrets_file,
)
from serving.server_process import Server

log = logging.getLogger(__name__)

# request fields, in the order of the API's schemas
ORDER_FIELDS = tuple(Order.model_fields)
EVENT_FIELDS = tuple(f for f in AccountEvent.model_fields if f != "kind")
LABEL_FIELDS = tuple(f for f in Label.model_fields if f != "kind")
# httpx and httpcore log every request at INFO ("HTTP Request: POST .../score 200 OK"): the replay
# sends thousands, which would bury the examples. The demo keeps their warnings and errors.
REQUEST_LOGGERS = ("httpx", "httpcore")
REPLAY_MILESTONES = 4  # progress lines while replaying: at each quarter of the requests


@contextlib.contextmanager
def quiet_request_logs() -> Iterator[None]:
    """Raise the per-request loggers (``REQUEST_LOGGERS``) to WARNING for the block, then restore them."""
    loggers = [logging.getLogger(name) for name in REQUEST_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(max(logger.level, logging.WARNING))
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def split_history(tables: dict[str, pd.DataFrame], cut: pd.Timestamp, folder: Path) -> dict[str, int]:
    """Write what was known before ``cut`` as a data folder (the contracts' parquet files)."""
    folder.mkdir(parents=True, exist_ok=True)
    kept = {
        "customers": tables["customers"],
        "watchlist": tables["watchlist"],
        "transactions": tables["transactions"][tables["transactions"]["occurred_at"] < cut],
        "account_events": tables["account_events"][tables["account_events"]["occurred_at"] < cut],
        "labels": tables["labels"][tables["labels"]["known_at"] < cut],
    }
    for name, table in kept.items():
        table.to_parquet(folder / f"{name}.parquet", index=False)
    return {name: len(table) for name, table in kept.items()}


def replay_stream(tables: dict[str, pd.DataFrame], cut: pd.Timestamp) -> list[tuple[str, dict[str, Any]]]:
    """The requests of the period after ``cut``, in time order: ("order" | "event", JSON body)."""
    items: list[tuple[pd.Timestamp, int, str, dict[str, Any]]] = []
    orders = tables["transactions"][tables["transactions"]["occurred_at"] >= cut]
    for row in orders.to_dict("records"):
        items.append((row["occurred_at"], 1, "order", request_body(row, ORDER_FIELDS, drop_missing=True)))
    events = tables["account_events"][tables["account_events"]["occurred_at"] >= cut]
    for row in events.to_dict("records"):
        items.append(
            (
                row["occurred_at"],
                0,
                "event",
                {"kind": "account_event", **request_body(row, EVENT_FIELDS, drop_missing=True)},
            )
        )
    end = tables["transactions"]["occurred_at"].max()
    # labels known after the last order have not happened yet at the replay's "now"
    labels = tables["labels"][(tables["labels"]["known_at"] >= cut) & (tables["labels"]["known_at"] <= end)]
    for row in labels.to_dict("records"):
        items.append(
            (
                row["known_at"],
                0,
                "event",
                {"kind": "label", **request_body(row, LABEL_FIELDS, drop_missing=True)},
            )
        )
    items.sort(key=lambda item: (item[0], item[1]))
    return [(kind, body) for _, _, kind, body in items]


def new_profiles(tables: dict[str, pd.DataFrame], now: pd.Timestamp) -> dict[str, dict[str, Any]]:
    """Three onboarding requests: an ordinary customer, an honest passport typo, a sanctions look-alike."""
    customers = tables["customers"]
    base = customers[(customers["customer_type"] == "individual") & (customers["role"] == "buyer")]
    base = base[base["document_type"] == "passport"].iloc[0].to_dict()
    when = (now - pd.Timedelta(minutes=1)).isoformat()
    ordinary = request_body(base, base, drop_missing=True)
    ordinary.update(
        customer_id="C-DEMO-ORDINARY", full_name="Anna Schmidt", email="anna.schmidt@example.org",
        phone="+4915112345678", address="Hauptstrasse 5, Berlin", nationality="DE", residence_country="DE",
        document_country="DE", document_number=with_check_digit("C01X00T47"),
        document_expiry=(now + pd.Timedelta(days=2000)).date().isoformat(),
        email_first_seen_at=(now - pd.Timedelta(days=3000)).isoformat(),
        onboarded_at=when, last_kyc_review_at=when, twofa_enabled=True,
    )  # fmt: skip
    number = with_check_digit("C01X00T48")
    typo = number[:-3] + number[-2] + number[-3] + number[-1]  # two neighbours swapped by the typist
    if typo == number:  # pragma: no cover - the chosen body has different neighbours
        raise AssertionError("the typo example needs two different adjacent characters")
    honest_typo = dict(
        ordinary, customer_id="C-DEMO-TYPO", full_name="Jonas Weber", email="jonas.weber@example.org",
        phone="+4915187654321", address="Lindenweg 12, Hamburg", document_number=typo,
    )  # fmt: skip
    watchlist = tables["watchlist"]
    entry = watchlist[(watchlist["list_type"] == "sanction") & watchlist["birth_date"].notna()].iloc[0]
    lookalike = dict(
        ordinary, customer_id="C-DEMO-LISTED", full_name=str(entry["full_name"]),
        birth_date=pd.Timestamp(entry["birth_date"]).date().isoformat(), nationality=str(entry["country"]),
        residence_country=str(entry["country"]), document_country=str(entry["country"]),
        email="trade.office@example.net", phone="+4930999888777", address="Am Markt 1, Leipzig",
    )  # fmt: skip
    return {
        "ordinary customer": ordinary,
        "honest passport typo": honest_typo,
        "sanctions look-alike": lookalike,
    }


def _check(response: httpx.Response) -> dict[str, Any]:
    if response.status_code != 200:
        raise RuntimeError(
            f"{response.request.method} {response.request.url.path}: {response.status_code} {response.text}"
        )
    return response.json()


def _show(decision: dict[str, Any], title: str, out: Callable[[str], None], n_reasons: int = 4) -> None:
    score = decision.get("fraud_probability", decision.get("risk_score"))
    out(f"  {title}: tier {decision['risk_tier']}, action {decision['action']}, score {score:.4f}, "
        f"decision {decision['decision_id']}")  # fmt: skip
    for reason in decision["reasons"][:n_reasons]:
        contribution = reason.get("contribution")
        weight = f" [{contribution:+.2f} log-odds]" if contribution is not None else ""
        decisive = {True: " (decisive)", False: " (not decisive)"}.get(reason.get("decisive"), "")
        out(f"    - {reason['code']}{weight}{decisive}: {reason['message']}")


def _pick(decisions: list[tuple[dict[str, Any], dict[str, Any]]], action: str) -> tuple[dict, dict] | None:
    found = [d for d in decisions if d[1]["action"] == action]
    if not found:
        return None
    # the clearest example: the highest score for review/reject, the lowest for approve
    key = lambda d: d[1]["fraud_probability"]  # noqa: E731
    return min(found, key=key) if action == "approve" else max(found, key=key)


def demo_secrets(path: Path, state: Path) -> Secrets:
    """The demo state's secrets: ``path`` (outside ``state``) when it exists, else a new file written there."""
    if not path.is_file():
        write_secrets_file(path, state_dir=state)
    # read back through the same checks as the service (mode 0600, outside the state folder)
    return load_secrets(state, {SECRETS_FILE_ENV: str(path)})


def run(
    data_dir: str | Path,
    workdir: str | Path,
    *,
    tracking_uri: str | None = None,
    hours: float = 24.0,
    out: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Seed, serve, replay the last ``hours`` of ``data_dir`` through the API, verify the log, stop.

    Args:
        data_dir: the generated data folder the models were trained on.
        workdir: where ``serve/history``, ``serve/state`` and ``serve/server.log`` are written
            (the state is recreated on each run).
        tracking_uri: MLflow store holding the champions (default: the project's).
        hours: how much of the end of the data to replay through the API.
        out: where the human-readable lines go.

    Returns:
        Figures: requests sent, decisions by action, timings, log verification and replay results.
    """
    serve_dir = Path(workdir) / "serve"
    state, history = serve_dir / "state", serve_dir / "history"
    # the log's anchors live beside the state, never inside it (a new state: a new anchors file)
    anchors = Path(workdir) / "anchors.jsonl"
    if state.exists():
        shutil.rmtree(state)
    anchors.unlink(missing_ok=True)
    started = time.perf_counter()
    tables = dict(load_valid_dataset(Path(data_dir)))
    end = tables["transactions"]["occurred_at"].max()
    cut = end - pd.Timedelta(hours=hours)
    kept = split_history(tables, cut, history)
    stream = replay_stream(tables, cut)
    state_secrets = demo_secrets(Path(workdir) / "secrets.json", state)
    out(f"seeding the service state with everything known before {cut.isoformat()} ({history})")
    scorer = Scorer.from_registry(
        tracking_uri, state_dir=state, salt=state_secrets.salt, state_key=state_secrets.state_key,
        decision_log_key=state_secrets.decision_log_key,
    )  # fmt: skip
    counts = scorer.seed(history)
    scorer.close()
    seeded_s = time.perf_counter() - started
    out(f"service state seeded with everything known before {cut.isoformat()} in {seeded_s:.1f} s: {counts}")
    keys = {"KYCRISK_API_KEY": secrets.token_urlsafe(24), "KYCRISK_AUDITOR_KEY": secrets.token_urlsafe(24)}
    env = {
        **keys,
        SECRETS_FILE_ENV: str((Path(workdir) / "secrets.json").resolve()),
        "KYCRISK_STATE_DIR": str(state.resolve()),
        ANCHORS_ENV: str(anchors.resolve()),
        "KYCRISK_CLOCK_START": (end + pd.Timedelta(seconds=1)).isoformat(),
    }
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    # the secrets file alone configures the server's secrets: none inherited from this environment
    inherited = {k: v for k, v in os.environ.items() if k not in (SALT_ENV, STATE_KEY_ENV, KEY_ENV)}
    server = Server("bentoml", {**inherited, "BENTOML_DO_NOT_TRACK": "true", **env}, serve_dir / "server.log")
    result: dict[str, Any] = {"history": kept, "seeded": counts, "seed_s": round(seeded_s, 1)}
    try:
        ready_s = server.start()
        out(
            f"service started at {server.base_url} in {ready_s:.1f} s (keys in the environment of the server only)"
        )
        scoring = {"X-API-Key": keys["KYCRISK_API_KEY"]}
        decisions: list[tuple[dict[str, Any], dict[str, Any]]] = []
        n_events = 0
        n_orders = sum(kind == "order" for kind, _ in stream)
        out(
            f"replaying the last {hours:g} h through the API: {n_orders} orders (POST /score) and "
            f"{len(stream) - n_orders} account events and labels (POST /events, up to {MAX_BATCH} a request)"
        )
        milestones = {len(stream) * k // REPLAY_MILESTONES: k for k in range(1, REPLAY_MILESTONES) if stream}
        replay_started = time.perf_counter()
        with quiet_request_logs(), httpx.Client(base_url=server.base_url, timeout=60) as client:
            pending: list[dict[str, Any]] = []
            for i, (kind, body) in enumerate([*stream, ("flush", {})]):
                if i in milestones:
                    out(f"  {milestones[i] * 100 // REPLAY_MILESTONES}%: {len(decisions)} orders scored, "
                        f"{n_events} events sent, {time.perf_counter() - replay_started:.0f} s")  # fmt: skip
                if kind != "event" and pending:
                    _check(client.post("/events", json={"events": pending}, headers=scoring))
                    n_events, pending = n_events + len(pending), []
                if kind == "event":
                    pending.append(body)
                    if len(pending) == MAX_BATCH:
                        _check(client.post("/events", json={"events": pending}, headers=scoring))
                        n_events, pending = n_events + len(pending), []
                elif kind == "order":
                    decisions.append((body, _check(client.post("/score", json=body, headers=scoring))))
            replay_s = time.perf_counter() - replay_started
            actions = Counter(d["action"] for _, d in decisions)
            out(
                f"replayed the last {hours:g} h through the API: {len(decisions)} orders (POST /score) and "
                f"{n_events} account events and labels (POST /events) in {replay_s:.1f} s; actions {dict(actions)}"
            )
            out("examples (reasons: rules and score first, then the largest TreeSHAP contributions):")
            for action in ("approve", "review", "reject", "report"):
                picked = _pick(decisions, action)
                if picked is not None:
                    order, decision = picked
                    what = f"{order['amount']:.2f} {order['currency']} of {order['goods_category']}"
                    _show(decision, f"{action.upper()} order {order['transaction_id']} ({what})", out)
            onboarded = {}
            for title, profile in new_profiles(tables, end).items():
                decision = _check(client.post("/onboard", json=profile, headers=scoring))
                onboarded[title] = decision
                _show(decision, f"ONBOARD {title}", out, n_reasons=3)
            audited = (
                decisions[-1][1]["decision_id"]
                if decisions
                else next(iter(onboarded.values()))["decision_id"]
            )
            record = _check(
                client.get(
                    f"/decisions/{audited}",
                    headers={"Authorization": f"Bearer {keys['KYCRISK_AUDITOR_KEY']}"},
                )
            )
            out(f"auditor read decision {audited}: seq {record['seq']}, hash {record['hash'][:16]}..., "
                f"{len(record['features'])} logged features")  # fmt: skip
        result.update(
            ready_s=round(ready_s, 1), replay_s=round(replay_s, 1), orders=len(decisions), events=n_events,
            actions=dict(actions), onboarded={k: (v["risk_tier"], v["action"]) for k, v in onboarded.items()},
        )  # fmt: skip
    finally:
        server.stop()
    report = verify_path(state / "decisions.sqlite", key=state_secrets.decision_log_key, anchors=anchors)
    out(f"service stopped; decision log: {report}")
    replayed = replay_decision(state / "decisions.sqlite", audited)
    out(f"audit replay of {audited}: {'matches' if replayed.matches else 'DOES NOT MATCH'}")
    result.update(log_ok=report.ok, log_records=report.records, replay_matches=replayed.matches)
    return result


__all__ = ["demo_secrets", "new_profiles", "replay_stream", "run", "split_history"]
