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
- ``KYCRISK_MAX_BODY_BYTES``: request body limit (default 2,000,000 bytes; larger → 413), counted
  while the body streams in (chunked uploads included): reading stops at the limit.
- ``KYCRISK_RISK_TIER``: ``required`` (default: the service refuses to start without a trusted
  ``kycrisk-risk-tier`` champion, as without a ``kycrisk-fraud`` one) or ``optional`` (onboarding
  then decides by the hard rules and a simple score, and says so in its reasons).
- ``KYCRISK_THREADS``: threads serving requests in the one worker process (default 4).
- ``KYCRISK_TRACE_SCORING``: ``on`` to create OpenTelemetry spans for ``/score`` and
  ``/score_batch`` too (default off: no exporter is configured by default and the spans cost about
  15% throughput). BentoML's access log is off (the decision log and its journal record every
  request that changed the state; refused requests are logged as warnings); ``/metrics`` counts
  every endpoint.
- ``KYCRISK_MAX_FUTURE_SECONDS``: how far ahead of the service clock an event may be dated
  (default 300); later ones are refused (422), so one mis-dated order cannot make every later
  order "late" for the feature state.
- ``KYCRISK_CLOCK_START``: run a simulated clock from this ISO 8601 instant (replays, and the demo
  on synthetic data dated after today); default the real clock.

One worker process (``workers=1``): the online feature state lives in the Scorer's memory.

Every error, on every endpoint (the ``/decisions`` app included) and every status, has one shape
(``serving.schemas.ErrorResponse``)::

    {"error": {"status": 400, "code": "invalid_request", "message": "2 problems in the request",
               "problems": [{"field": "orders[3].amount", "reason": "Input should be greater than 0"},
                            {"field": "orders[3].occurred_at", "reason": "must be ... within [...)"}]}}

``field`` is the path in the body (``orders[3].amount``, ``events[1].occurred_at``) or ``body`` for
the body as a whole (invalid JSON, wrong top-level type, too large); ``problems`` is empty when no
field is at fault. Statuses: 400 schema errors (bounds from ``features.contracts``), 401 missing or
wrong key, 404 unknown decision or path, 405 wrong method, 409 a reused id with a different body,
413 body over the limit, 415 a POST body that is not ``application/json`` (charset, if given, must
be utf-8), 422 a schema-valid request the state refuses (unknown customer, out-of-order event),
500 only as the last resort (the cause is in the server log). Refused requests are logged at
WARNING with method, path, status and the field paths and reasons, never values nor a traceback.

``GET /docs.json`` is an OpenAPI 3.1 document built from the request and response models
(``openapi_document``): every status above is declared with the error schema, the request bodies
are required, and the time fields carry patterns that spell out their contract ranges.
"""

from __future__ import annotations

import copy
import functools
import gc
import hmac
import json
import logging
import os
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any

import bentoml
from fastapi import FastAPI, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from serving.clock import Clock
from serving.decision_log.canonical import encode_json
from serving.errors import ScorerError
from serving.schemas import (
    MAX_BODY_BYTES,
    ErrorResponse,
    EventsRequest,
    EventsResponse,
    OnboardResponse,
    Order,
    Profile,
    ScoreBatchRequest,
    ScoreBatchResponse,
    ScoreResponse,
)
from serving.scorer import Scorer
from serving.secrets_config import load_secrets

log = logging.getLogger(__name__)

decisions_app = FastAPI(title="kycrisk decision log (auditors)")

ERROR_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    500: "internal_error",
    503: "unavailable",
}
INTERNAL_ERROR = "an unexpected error occurred; the cause is in the server log"


def error_body(status: int, message: str, problems: Iterable[tuple[str, str]] = ()) -> bytes:
    """The JSON of the one error shape (``serving.schemas.ErrorResponse``).

    Args:
        status: the HTTP status code.
        message: one plain-language sentence (never a value from the request).
        problems: ``(field path, reason)`` pairs; ``body`` names the body as a whole.
    """
    code = ERROR_CODES.get(status, "client_error" if status < 500 else "internal_error")
    problems = [{"field": field or "body", "reason": reason} for field, reason in problems]
    return json.dumps(
        {"error": {"status": status, "code": code, "message": message, "problems": problems}}
    ).encode()


def field_path(loc: Sequence[Any]) -> str:
    """A pydantic ``loc`` as a field path: ``("orders", 3, "amount")`` → ``orders[3].amount``.

    The discriminated union of ``/events`` puts the chosen model's tag after the index
    (``("events", 1, "label", "known_at")``); it is not a field and is left out. An empty ``loc``
    (invalid JSON, a body that is not an object) is the body itself: ``body``.
    """
    loc = list(loc)
    if len(loc) >= 3 and loc[0] == "events" and isinstance(loc[1], int) and loc[2] in ("account_event", "label"):
        del loc[2]
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def validation_problems(errors: Iterable[dict[str, Any]]) -> list[tuple[str, str]]:
    """``(field path, reason)`` of pydantic errors (``errors(include_input=False)``: never values)."""
    return [(field_path(e.get("loc") or ()), str(e.get("msg", "invalid")).removeprefix("Value error, "))
            for e in errors]  # fmt: skip


def _problems_message(problems: Sequence[tuple[str, str]]) -> str:
    if len(problems) == 1:
        return f"invalid request: {problems[0][0]}: {problems[0][1]}"
    return f"{len(problems)} problems in the request"


class _ClientErrorTracebacks(logging.Filter):
    """Drop BentoML's ERROR records (with traceback) for client errors: Guard logs those itself.

    BentoML's ``log_exception`` logs every 400 at ERROR with the ``ValidationError`` traceback, whose
    text quotes pydantic's ``input_value`` (a full phone number, a birth date).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, ValidationError | json.JSONDecodeError | UnicodeDecodeError):
            return False
        status = getattr(getattr(exc, "error_code", None), "value", 500)
        return not (isinstance(exc, bentoml.exceptions.BentoMLException) and status < 500)


def quiet_client_error_tracebacks() -> None:
    """Install ``_ClientErrorTracebacks`` on the logger of BentoML's ``log_exception`` (once)."""
    logger = logging.getLogger("bentoml._internal.server.http_app")
    if not any(isinstance(f, _ClientErrorTracebacks) for f in logger.filters):
        logger.addFilter(_ClientErrorTracebacks())


async def _shaped_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return JSONResponse(json.loads(error_body(exc.status_code, message)), status_code=exc.status_code,
                        headers=exc.headers)  # fmt: skip


async def _shaped_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    problems = validation_problems(
        {"loc": tuple(e.get("loc", ()))[1:], "msg": e.get("msg")} for e in exc.errors()
    )  # loc[0] is "path", "query", "header" or "body"
    return JSONResponse(json.loads(error_body(400, _problems_message(problems), problems)), status_code=400)


decisions_app.add_exception_handler(StarletteHTTPException, _shaped_http_error)
decisions_app.add_exception_handler(RequestValidationError, _shaped_validation_error)


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
# Observability. BentoML's access log is off: every request that changed the state is in the
# tamper-evident decision log and its journal, and ``Guard`` logs every refusal (without values);
# an access line per order costs throughput and would repeat that. It must be off rather than
# skipping paths, because BentoML's metrics middleware skips the access log's skip paths too, and
# /metrics must count every endpoint. BentoML also creates OpenTelemetry spans for every request
# even when no exporter is configured, so the scoring paths are not traced unless
# KYCRISK_TRACE_SCORING=on (set it together with an exporter). Measured with `kycrisk bench serve`
# (16 clients): about +20% throughput.
HIGH_VOLUME_PATHS = ("/score", "/score_batch")
_TRACE_SCORING = os.environ.get("KYCRISK_TRACE_SCORING", "").lower() in ("1", "on", "true", "yes")
OBSERVABILITY: dict[str, Any] = {
    "logging": {"access": {"enabled": False, "skip_paths": ["/metrics", "/healthz", "/livez", "/readyz"]}},
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
    the state added while serving is still collected. Measured in ``serving.bench.serve``.
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


def _same(value: Any) -> Any:
    return value


SCORING_PATHS = ("/score", "/score_batch", "/onboard", "/events")
AUDITOR_PREFIX = "/decisions/"


JSON_MEDIA_TYPE = "application/json"


def media_type_problem(content_type: str | None) -> str | None:
    """Why a POST body's ``Content-Type`` is refused (415), or None for ``application/json``.

    Parameters other than ``charset=utf-8`` are refused too: JSON is UTF-8 (RFC 8259), and
    ``multipart/form-data`` (with or without a boundary) never reaches BentoML's form parser.
    """
    if not content_type:
        return f"the request needs Content-Type: {JSON_MEDIA_TYPE}"
    media, *params = (part.strip() for part in content_type.split(";"))
    if media.lower() != JSON_MEDIA_TYPE:
        return f"only {JSON_MEDIA_TYPE} bodies are accepted"
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() != "charset" or value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return f"only {JSON_MEDIA_TYPE} with an optional charset=utf-8 is accepted"
    return None


class _BodyTooLarge(Exception):
    pass


class Guard:
    """ASGI middleware in front of BentoML: API keys (401), content type (415), body limit (413),
    the one error shape on every error answer, refusal logging and the OpenAPI document.

    Checking keys first means an unauthenticated caller learns nothing about the schema. The scoring
    key opens ``SCORING_PATHS``; only the auditor key opens ``/decisions/...``; health, metrics and
    the OpenAPI document stay open. The body is read here, counted as it streams in, and refused as
    soon as it passes ``max_bytes`` (a chunked upload has no ``Content-Length`` to check up front), so
    at most ``max_bytes`` are ever held; BentoML then reads the buffered copy. Error answers of
    BentoML, Starlette's router and the ``/decisions`` app are rewritten into the error shape (their
    own is a list, a bare string or plain text): only answers with a status >= 400 are held back.

    Args:
        app: the ASGI app (BentoML's).
        max_bytes: the body limit.
        api_key: the scoring key (``KYCRISK_API_KEY``).
        auditor_key: the decision-read key (``KYCRISK_AUDITOR_KEY``).
        auth_off: no key for the scoring paths (``KYCRISK_AUTH=off``, local experiments only).
        openapi: returns the OpenAPI document served at ``GET /docs.json``.
    """

    def __init__(self, app: Any, max_bytes: int = MAX_BODY_BYTES, api_key: str | None = None,
                 auditor_key: str | None = None, auth_off: bool = False,
                 openapi: Any = None):  # fmt: skip
        self.app = app
        self.max_bytes = int(max_bytes)
        self.api_key, self.auditor_key, self.auth_off = api_key, auditor_key, auth_off
        self.openapi = openapi
        quiet_client_error_tracebacks()

    @staticmethod
    async def _answer(send: Any, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        kept = [(k, v) for k, v in headers if k.lower() not in (b"content-type", b"content-length")]
        headers = [*kept, (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status == 401 and not any(k.lower() == b"www-authenticate" for k, _ in headers):
            headers.append((b"www-authenticate", b"Bearer"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _log_refusal(scope: dict, status: int, message: str, problems: Sequence[tuple[str, str]]) -> None:
        # logged here: BentoML's access log is off (OBSERVABILITY); field paths and reasons
        # only, never the values (they may be personal data) and no traceback for a client error
        where = "; ".join(f"{field}: {reason}" for field, reason in problems) or message
        level = logging.ERROR if status >= 500 else logging.WARNING
        log.log(level, "refused %s %s: %d %s: %s", scope.get("method"), scope.get("path"), status,
                ERROR_CODES.get(status, "error"), where)  # fmt: skip

    async def _refuse(self, scope: dict, send: Any, status: int, message: str,
                      problems: Sequence[tuple[str, str]] = ()) -> None:  # fmt: skip
        self._log_refusal(scope, status, message, problems)
        await self._answer(send, status, error_body(status, message, problems))

    def _refusal(self, scope: dict, headers: dict[str, str]) -> tuple[int, str, list] | None:
        path, method = scope.get("path", ""), scope.get("method", "")
        presented = _presented_key(headers)
        if path.startswith(AUDITOR_PREFIX):
            if not _key_ok(presented, self.auditor_key):
                return 401, "missing or wrong auditor key", []
        elif path.rstrip("/") in SCORING_PATHS and not self.auth_off:
            if not _key_ok(presented, self.api_key):
                return 401, "missing or wrong API key", []
        if method == "POST" and path.rstrip("/") in SCORING_PATHS:
            problem = media_type_problem(headers.get("content-type"))
            if problem is not None:
                return 415, problem, []
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            return 413, self._too_large, [("body", self._too_large)]
        return None

    @property
    def _too_large(self) -> str:
        return f"request body too large: at most {self.max_bytes} bytes"

    async def _read_body(self, receive: Any) -> tuple[list[dict], bool]:
        """The request's body messages, at most ``max_bytes`` of body; (messages, client disconnected)."""
        messages, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return messages, True
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                raise _BodyTooLarge
            messages.append(message)
            if not message.get("more_body", False):
                return messages, False

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope.get("method") in ("GET", "HEAD") and scope.get("path") == "/docs.json" and self.openapi:
            return await self._answer(send, 200, json.dumps(self.openapi()).encode())
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers") or []}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            return await self._refuse(scope, send, *refusal)
        try:
            messages, disconnected = await self._read_body(receive)
        except _BodyTooLarge:
            return await self._refuse(scope, send, 413, self._too_large, [("body", self._too_large)])
        if disconnected:
            return None  # the client is gone: nothing to answer
        if scope.get("method") == "POST" and scope.get("path", "").rstrip("/") in SCORING_PATHS and not any(
            m.get("body") for m in messages
        ):  # BentoML would read an empty body as {}: say what is missing instead
            reason = "a JSON request body is required"
            return await self._refuse(scope, send, 400, f"invalid request: body: {reason}", [("body", reason)])

        async def replay() -> dict:
            # the buffered body first, then whatever the server sends next (http.disconnect)
            return messages.pop(0) if messages else await receive()

        held: dict[str, Any] = {}

        async def shaped_send(message: dict) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held.update(start=message, body=b"")
                return None
            if "start" not in held:
                return await send(message)
            held["body"] += message.get("body", b"")
            if not message.get("more_body", False):
                status, headers = held["start"]["status"], held["start"].get("headers", [])
                body, message_text, problems = self._shape(status, held["body"])
                self._log_refusal(scope, status, message_text, problems)
                await self._answer(send, status, body, headers)
            return None

        await self.app(scope, replay, shaped_send)

    @staticmethod
    def _shape(status: int, body: bytes) -> tuple[bytes, str, list[tuple[str, str]]]:
        """An error answer in the one shape: (body, message, problems), from whatever the app sent."""
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("error"), dict) and "status" in data["error"]:
            error = data["error"]  # already shaped (ScorerError answers, the /decisions app)
            return body, str(error.get("message")), [(p["field"], p["reason"]) for p in error.get("problems", [])]
        if status >= 500:
            return error_body(status, INTERNAL_ERROR), INTERNAL_ERROR, []
        if status == 400 and isinstance(data, dict) and isinstance(data.get("detail"), list):
            # BentoML's answer to a pydantic ValidationError (include_input=False: no values)
            problems = validation_problems(e for e in data["detail"] if isinstance(e, dict))
            message = _problems_message(problems) if problems else "invalid request"
            return error_body(status, message, problems), message, problems
        if isinstance(data, list) and data and isinstance(data[0], dict):
            data = data[0]  # BentoML's other 4xx: [{"error": "..."}]
        text = data.get("error") or data.get("detail") if isinstance(data, dict) else None
        message = text if isinstance(text, str) and text else HTTPStatus(status).phrase.lower()
        return error_body(status, message), message, []


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

    @bentoml.on_shutdown
    def close(self) -> None:
        """On a clean shutdown: the state closed, the decision log's head anchored (no record unanchored)."""
        self.scorer.close()

    def _check_key(self, ctx: bentoml.Context) -> None:
        if self.auth_off:
            return
        if not _key_ok(_presented_key(ctx.request.headers), self.api_key):
            raise _Unauthorized("missing or wrong API key")

    @staticmethod
    def _call(ctx: bentoml.Context, answer: Any, fn: Any, *args: Any) -> Any:
        """``answer(fn(*args))``; a ``ScorerError`` becomes its status (422, 409) in the error shape."""
        try:
            return answer(fn(*args))
        except ScorerError as exc:
            status = int(getattr(exc, "status", 422))
            ctx.response.status_code = status  # BentoML copies the context's status onto the answer
            body = error_body(status, str(exc), [(f or "body", r) for f, r in exc.problems])
            return JSONResponse(json.loads(body), status_code=status)

    @bentoml.api(route="/score")
    def score(self, order: Order, /, ctx: bentoml.Context) -> ScoreResponse:
        """Score one order: fraud probability, tier, action and reasons (contributions in log-odds)."""
        self._check_key(ctx)
        return self._call(ctx, _same, self.scorer.score, order)

    @bentoml.api(route="/score_batch")
    def score_batch(self, request: ScoreBatchRequest, /, ctx: bentoml.Context) -> ScoreBatchResponse:
        """Score up to 1,000 orders in order (each sees the earlier ones); contributions in log-odds."""
        self._check_key(ctx)
        return self._call(ctx, lambda r: ScoreBatchResponse(results=r), self.scorer.score_batch, request.orders)

    @bentoml.api(route="/onboard")
    def onboard(self, profile: Profile, /, ctx: bentoml.Context) -> OnboardResponse:
        """Onboard or update a customer: watchlist screening, hard rules, tier and action."""
        self._check_key(ctx)
        return self._call(ctx, _same, self.scorer.onboard, profile)

    @bentoml.api(route="/events")
    def events(self, request: EventsRequest, /, ctx: bentoml.Context) -> EventsResponse:
        """Apply account events and labels (up to 1,000) to the online feature state."""
        self._check_key(ctx)
        return self._call(ctx, lambda r: EventsResponse(**r), self.scorer.apply_events, request.events)

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


# Request and response models of the scoring endpoints, and the error statuses each can answer.
API_MODELS: dict[str, tuple[type[BaseModel], type[BaseModel]]] = {
    "/score": (Order, ScoreResponse),
    "/score_batch": (ScoreBatchRequest, ScoreBatchResponse),
    "/onboard": (Profile, OnboardResponse),
    "/events": (EventsRequest, EventsResponse),
}
API_ERROR_STATUSES = (400, 401, 409, 413, 415, 422, 500)
DECISION_ERROR_STATUSES = (400, 401, 404, 500)
SECURITY = [{"apiKey": []}, {"bearer": []}]


@functools.cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``GET /docs.json``.

    BentoML's own (``Service.openapi_spec``) claims 3.0.2 while pydantic writes JSON Schema 2020-12
    (3.1), documents its own error shapes, and leaves request bodies optional; this one keeps its
    infrastructure endpoints and the ``/decisions`` app's path, and declares the scoring endpoints
    from the models: required JSON bodies, every error status with ``ErrorResponse``, the keys as
    security schemes.
    """
    from pydantic.json_schema import models_json_schema

    ref = "#/components/schemas/{model}"
    keyed, defs = models_json_schema(
        [(m, "validation") for m, _ in API_MODELS.values()]
        + [(m, "serialization") for _, m in API_MODELS.values()]
        + [(ErrorResponse, "serialization")],
        ref_template=ref,
    )
    schemas = defs["$defs"]
    error_ref = keyed[(ErrorResponse, "serialization")]

    def errors(statuses: Iterable[int]) -> dict[str, Any]:
        return {
            str(s): {"description": HTTPStatus(s).phrase, "content": {JSON_MEDIA_TYPE: {"schema": error_ref}}}
            for s in statuses
        }

    base = copy.deepcopy(KycRiskService.openapi_spec.asdict())
    paths: dict[str, Any] = {}
    for path, item in base["paths"].items():
        if path in API_MODELS:
            request, response = API_MODELS[path]
            operation = item["post"]
            paths[path] = {"post": {
                "operationId": operation["operationId"], "description": operation["description"],
                "tags": operation["tags"], "security": SECURITY,
                "requestBody": {"required": True, "content": {JSON_MEDIA_TYPE: {
                    "schema": keyed[(request, "validation")]}}},
                "responses": {"200": {"description": "Successful Response", "content": {JSON_MEDIA_TYPE: {
                    "schema": keyed[(response, "serialization")]}}}, **errors(API_ERROR_STATUSES)},
            }}  # fmt: skip
        elif path.startswith("/decisions"):
            operation = item["get"]
            # the keys are documented as security schemes, not as header parameters
            operation["parameters"] = [p for p in operation.get("parameters", []) if p["in"] != "header"]
            operation["security"] = SECURITY
            operation["responses"] = {"200": operation["responses"]["200"], **errors(DECISION_ERROR_STATUSES)}
            paths[path] = {"get": operation}
        else:  # health, readiness, metrics
            operation = item["get"]
            if path == "/metrics":
                operation["responses"]["200"]["content"] = {"text/plain": {"schema": {"type": "string"}}}
            operation["responses"].update(errors((503, 500) if path == "/readyz" else (500,)))
            paths[path] = {"get": operation}
    return {
        "openapi": "3.1.0",
        "info": base["info"],
        "servers": base.get("servers", [{"url": "/"}]),
        "tags": base.get("tags", []),
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


KycRiskService.add_asgi_middleware(
    Guard,
    openapi=openapi_document,
    max_bytes=int(os.environ.get("KYCRISK_MAX_BODY_BYTES", MAX_BODY_BYTES)),
    api_key=os.environ.get("KYCRISK_API_KEY") or None,
    auditor_key=os.environ.get("KYCRISK_AUDITOR_KEY") or None,
    auth_off=os.environ.get("KYCRISK_AUTH", "").lower() == "off",
)
