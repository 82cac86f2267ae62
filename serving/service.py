"""The BentoML HTTP service: a thin ``@bentoml.service`` class over ``serving.scorer.Scorer``.

Start it with ``bentoml serve serving.service:KycRiskService --port 3000`` (from the repository
root, or with the project installed), or ``kycrisk serve``.

Endpoints (OpenAPI spec at ``/docs.json``, Swagger UI at ``/``):

- ``POST /score``: one order (the ``transactions`` contract) → score, tier, action, reasons;
- ``POST /score_batch``: ``{"orders": [...]}``, at most 1,000 orders, scored in order;
- ``POST /onboard``: one KYC profile (the ``customers`` contract) → screening, tier, action;
- ``POST /events``: ``{"events": [...]}``, account events (``"kind": "account_event"``) and
  labels (``"kind": "label"``), at most 1,000;
- ``GET /decisions/{decision_id}``: a logged decision (auditors).

Reason contributions are exact TreeSHAP contributions in **log-odds**, not probabilities.

Configuration (environment variables):

- ``KYCRISK_API_KEY``: key for the scoring endpoints (``POST``), sent as ``X-API-Key: <key>`` or
  ``Authorization: Bearer <key>``. Required: the service refuses to start without it unless
  ``KYCRISK_AUTH=off`` (local experiments only).
- ``KYCRISK_AUDITOR_KEY``: separate key for ``GET /decisions/...``; without it decision reads are
  refused (401). The scoring key never reads decisions.
- ``KYCRISK_STATE_DIR``: folder of the sqlite state (features, profiles, decision log, watchlist);
  default ``./state``.
- ``MLFLOW_TRACKING_URI`` (or ``KYCRISK_TRACKING_URI``): where the ``champion`` of ``kycrisk-fraud``
  is loaded from (default: the project's ``mlflow/`` store).
- ``KYCRISK_WATCHLIST``: watchlist file (parquet/CSV) for onboarding screening; default the copy in
  the state dir written by seeding.
- ``KYCRISK_SEED_DATA``: a data folder to seed from when the profile store is empty (customers,
  screening, and a replay of the history into the feature state).
- ``KYCRISK_PII_SALT`` (required), ``KYCRISK_STATE_KEY`` (required), ``KYCRISK_DECISION_LOG_KEY``
  (optional): the pseudonym salt, the key of personal data at rest and the decision log's HMAC key,
  each from its variable or from the secrets file ``KYCRISK_SECRETS_FILE`` names (JSON, mode 0600,
  outside the state folder; ``kycrisk secrets init FILE`` writes one). The service refuses to start
  without a salt and a state key (see ``serving.secrets_config``).
- ``KYCRISK_MAX_BODY_BYTES``: request body limit (default 2,000,000 bytes; larger → 413).
- ``KYCRISK_RISK_TIER``: ``required`` (default: the service refuses to start without a trusted
  ``kycrisk-risk-tier`` champion, as without a ``kycrisk-fraud`` one) or ``optional`` (onboarding
  then decides by the hard rules and a simple score, and says so in its reasons).
- ``KYCRISK_THREADS``: threads serving requests in the one worker process (default 4).
- ``KYCRISK_TRACE_SCORING``: ``on`` to create OpenTelemetry spans for ``/score`` and
  ``/score_batch`` too (default off: no exporter is configured by default and the spans cost about
  15% throughput); those paths are also left out of BentoML's access log, since the decision log
  records every decision (refused requests are logged as warnings).
- ``KYCRISK_MAX_FUTURE_SECONDS``: how far ahead of the service clock an event may be dated
  (default 300); later ones are refused (422), so one mis-dated order cannot make every later
  order "late" for the feature state.
- ``KYCRISK_CLOCK_START``: run a simulated clock from this ISO 8601 instant (replays, and the demo
  on synthetic data dated after today); default the real clock.

One worker process (``workers=1``): the online feature state lives in the Scorer's memory.

Bad input is a 4xx naming the field (400 for schema errors with pydantic's ``loc``, 422 for an
unknown customer or an out-of-order event); a missing or wrong key is a 401.
"""

from __future__ import annotations

import gc
import hmac
import json
import logging
import os
from http import HTTPStatus
from pathlib import Path
from typing import Any

import bentoml
from fastapi import FastAPI, Header, HTTPException
from pydantic import ValidationError

from serving.decision_log import encode_json
from serving.schemas import (
    MAX_BODY_BYTES,
    EventsRequest,
    EventsResponse,
    OnboardResponse,
    Order,
    Profile,
    ScoreBatchRequest,
    ScoreBatchResponse,
    ScoreResponse,
)
from serving.scorer import Clock, Scorer, ScorerError
from serving.secrets_config import load_secrets

log = logging.getLogger(__name__)

decisions_app = FastAPI(title="kycrisk decision log (auditors)")


def risk_tier_setting() -> str:
    value = os.environ.get("KYCRISK_RISK_TIER", "required").strip().lower()
    if value not in ("required", "optional"):
        raise ValueError(f"KYCRISK_RISK_TIER must be 'required' or 'optional', got {value!r}")
    return value


def threads_setting(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise ValueError(f"KYCRISK_THREADS must be a whole number >= 1, got {text!r}")
    return int(text)


THREADS = threads_setting(os.environ.get("KYCRISK_THREADS", "4"))  # request threads of the one worker process
# Observability of the high-volume scoring paths. Every decision is already in the tamper-evident
# decision log, so BentoML's access log skips them (``Guard`` logs the requests it refuses); and
# BentoML creates OpenTelemetry spans for every request even when no exporter is configured, so
# the scoring paths are not traced unless KYCRISK_TRACE_SCORING=on (set it together with an
# exporter). Measured with `kycrisk bench serve` (16 clients): about +20% throughput. The
# Prometheus metrics stay on.
HIGH_VOLUME_PATHS = ("/score", "/score_batch")
_TRACE_SCORING = os.environ.get("KYCRISK_TRACE_SCORING", "").lower() in ("1", "on", "true", "yes")
OBSERVABILITY: dict[str, Any] = {
    "logging": {"access": {"skip_paths": ["/metrics", "/healthz", "/livez", "/readyz", *HIGH_VOLUME_PATHS]}},
    **({} if _TRACE_SCORING else {"tracing": {"excluded_urls": [f"{p}$" for p in HIGH_VOLUME_PATHS]}}),
}


def finish_startup() -> None:
    """Hide the objects made at start-up from the garbage collector: call once the Scorer is loaded.

    The Scorer's online state is about 1.3 million GC-tracked objects on the demo data (5,000
    customers, 370,890 orders). A full (generation 2) collection walks all of them: 1.0-1.5 s on this
    2-core machine, one request stalled for that long; it runs whenever the objects promoted since
    the last one reach a quarter of them, sooner under BentoML (its middleware allocates about 2.6
    times as many tracked objects per request as a bare Starlette app). ``gc.freeze()`` moves everything
    alive now to the permanent generation, which collections skip (a full one then takes under 1 ms);
    the state added while serving is still collected. Measured in ``serving.bench_serve``.
    """
    gc.collect()  # garbage of loading (pandas frames, sqlite rows) goes now rather than frozen
    gc.freeze()


class _Unauthorized(bentoml.exceptions.BentoMLException):
    error_code = HTTPStatus.UNAUTHORIZED


def _presented_key(headers: Any) -> str | None:
    key = headers.get("x-api-key")
    if key:
        return key
    auth = headers.get("authorization") or ""
    scheme, _, token = auth.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _key_ok(presented: str | None, expected: str | None) -> bool:
    return bool(presented) and bool(expected) and hmac.compare_digest(presented.encode(), expected.encode())


SCORING_PATHS = ("/score", "/score_batch", "/onboard", "/events")
AUDITOR_PREFIX = "/decisions/"


class Guard:
    """ASGI middleware run before BentoML parses a body: body size limit (413) and API keys (401).

    Checking keys here means an unauthenticated caller learns nothing about the schema (BentoML
    validates the body before the API method runs). The scoring key opens ``SCORING_PATHS``; only
    the auditor key opens ``/decisions/...``. Health, metrics and the OpenAPI spec stay open.
    """

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES, api_key: str | None = None,
                 auditor_key: str | None = None, auth_off: bool = False):  # fmt: skip
        self.app = app
        self.max_bytes = int(max_bytes)
        self.api_key, self.auditor_key, self.auth_off = api_key, auditor_key, auth_off

    @staticmethod
    async def _answer(send: Any, status: int, message: str) -> None:
        body = json.dumps({"error": message}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401:
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            path = scope.get("path", "")
            headers = {
                k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []
            }
            presented = _presented_key(headers)
            refusal = None
            if path.startswith(AUDITOR_PREFIX):
                if not _key_ok(presented, self.auditor_key):
                    refusal = (401, "missing or wrong auditor key")
            elif path.rstrip("/") in SCORING_PATHS and not self.auth_off:
                if not _key_ok(presented, self.api_key):
                    refusal = (401, "missing or wrong API key")
            length = headers.get("content-length")
            if (
                refusal is None
                and length is not None
                and (not length.isdigit() or int(length) > self.max_bytes)
            ):
                refusal = (413, f"request body too large: at most {self.max_bytes} bytes")
            if refusal is not None:
                # logged here: the access log skips the scoring paths (OBSERVABILITY)
                client = scope.get("client") or ("?", "?")
                log.warning(
                    "refused %s %s from %s:%s: %d %s", scope.get("method"), path, *client[:2], *refusal
                )
                return await self._answer(send, *refusal)
        await self.app(scope, receive, send)


@bentoml.asgi_app(decisions_app, path="/decisions")
# One worker process: the online feature state is kept in memory (written through to sqlite), so two
# workers would each miss the other's orders. Within it, THREADS threads run the sync APIs: the
# Scorer holds its lock only to look up and apply an order's features, so deciding (LightGBM and
# TreeSHAP release the GIL) and the decision log's fsync (shared by group commit) overlap.
@bentoml.service(name="kycrisk", workers=1, threads=THREADS, traffic={"timeout": 60}, **OBSERVABILITY)
class KycRiskService:
    """kycrisk: fraud and KYC risk scoring for the marketplace.

    Every answer carries the calibrated fraud probability, the risk tier and action of the tier
    policy, the reasons (policy and hard-rule reasons, then the top exact TreeSHAP feature
    contributions; contributions are in LOG-ODDS, not probabilities), the model versions and the
    decision id under which the decision is kept in the tamper-evident decision log.
    Authenticate with `X-API-Key` (or `Authorization: Bearer`); decision reads need the auditor key.
    """

    def __init__(self) -> None:
        self.api_key = os.environ.get("KYCRISK_API_KEY") or None
        self.auditor_key = os.environ.get("KYCRISK_AUDITOR_KEY") or None
        self.auth_off = os.environ.get("KYCRISK_AUTH", "").lower() == "off"
        if self.api_key is None and not self.auth_off:
            raise RuntimeError(
                "KYCRISK_API_KEY is not set: set it (or KYCRISK_AUTH=off for local experiments only)"
            )
        state = Path(os.environ.get("KYCRISK_STATE_DIR", "state"))
        # before the models load: no salt or state key (or a refused secrets file) stops the start now
        secrets = load_secrets(state)
        uri = os.environ.get("KYCRISK_TRACKING_URI") or None
        self.scorer = Scorer.from_registry(
            uri,
            state_dir=state,
            salt=secrets.salt,
            state_key=secrets.state_key,
            decision_log_key=secrets.decision_log_key,
            watchlist=os.environ.get("KYCRISK_WATCHLIST") or None,
            clock=Clock.from_env(),
            risk_tier=risk_tier_setting(),
        )
        seed = os.environ.get("KYCRISK_SEED_DATA")
        if seed and len(self.scorer.profiles) == 0:
            log.info("seeding from %s: %s", seed, self.scorer.seed(seed))
        finish_startup()

    def _check_key(self, ctx: bentoml.Context) -> None:
        if self.auth_off:
            return
        if not _key_ok(_presented_key(ctx.request.headers), self.api_key):
            raise _Unauthorized("missing or wrong API key")

    @staticmethod
    def _call(fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ScorerError as exc:
            raise bentoml.exceptions.BentoMLException(
                f"{exc.field}: {exc}" if exc.field else str(exc), error_code=HTTPStatus.UNPROCESSABLE_ENTITY
            ) from exc
        except ValidationError:
            raise  # BentoML answers 400 with pydantic's error list (field locations)

    @bentoml.api(route="/score")
    def score(self, order: Order, /, ctx: bentoml.Context) -> ScoreResponse:
        """Score one order: fraud probability, tier, action and reasons (contributions in log-odds)."""
        self._check_key(ctx)
        return self._call(self.scorer.score, order)

    @bentoml.api(route="/score_batch")
    def score_batch(self, request: ScoreBatchRequest, /, ctx: bentoml.Context) -> ScoreBatchResponse:
        """Score up to 1,000 orders in order (each sees the earlier ones); contributions in log-odds."""
        self._check_key(ctx)
        return ScoreBatchResponse(results=self._call(self.scorer.score_batch, request.orders))

    @bentoml.api(route="/onboard")
    def onboard(self, profile: Profile, /, ctx: bentoml.Context) -> OnboardResponse:
        """Onboard or update a customer: watchlist screening, hard rules, tier and action."""
        self._check_key(ctx)
        return self._call(self.scorer.onboard, profile)

    @bentoml.api(route="/events")
    def events(self, request: EventsRequest, /, ctx: bentoml.Context) -> EventsResponse:
        """Apply account events and labels (up to 1,000) to the online feature state."""
        self._check_key(ctx)
        return EventsResponse(**self._call(self.scorer.apply_events, request.events))

    @decisions_app.get("/{decision_id}", summary="Read a logged decision (auditor key required)")
    def get_decision(
        self,
        decision_id: str,
        x_api_key: str | None = Header(default=None),
        authorization: str | None = Header(default=None),
    ) -> dict:
        """The decision log record: request (minimised), model features, versions, score, tier, action,
        reasons (contributions in log-odds), and its hash-chain fields."""
        presented = _presented_key({"x-api-key": x_api_key, "authorization": authorization})
        if not _key_ok(presented, self.auditor_key):
            raise HTTPException(status_code=401, detail="missing or wrong auditor key")
        record = self.scorer.get_decision(decision_id)
        if record is None:
            raise HTTPException(status_code=404, detail=f"decision_id {decision_id!r} is not in the log")
        # the log's exact JSON: NaN and times as tagged objects ({"$float": "nan"}), see serving.decision_log
        return json.loads(encode_json(record.model_dump()))


KycRiskService.add_asgi_middleware(
    Guard,
    max_bytes=int(os.environ.get("KYCRISK_MAX_BODY_BYTES", MAX_BODY_BYTES)),
    api_key=os.environ.get("KYCRISK_API_KEY") or None,
    auditor_key=os.environ.get("KYCRISK_AUDITOR_KEY") or None,
    auth_off=os.environ.get("KYCRISK_AUTH", "").lower() == "off",
)
