"""A bare Starlette app over the same ``Scorer``: the reference that ``kycrisk bench serve`` measures BentoML against.

This is a **benchmark reference, not a second product API**: the product's HTTP API is the BentoML
service (``serving.service``), with its OpenAPI spec, batch, onboarding, events and auditor routes.
This app serves only ``POST /score`` (plus ``GET /readyz`` for start-up polling), with what the
service does on that path and nothing else, so that the difference between the two is the framework:

- the same ``serving.service.Guard`` ASGI middleware (API key, body size limit) and environment
  variables (``KYCRISK_STATE_DIR``, ``MLFLOW_TRACKING_URI`` or ``KYCRISK_TRACKING_URI``,
  ``KYCRISK_API_KEY``, ``KYCRISK_AUTH``, ``KYCRISK_WATCHLIST``, ``KYCRISK_SEED_DATA``,
  ``KYCRISK_MAX_BODY_BYTES``, ``KYCRISK_CLOCK_START``, ``KYCRISK_MAX_FUTURE_SECONDS``);
- the same validation (``serving.schemas.Order``: 400 with pydantic's error list) and the same
  JSON answer (``ScoreResponse.model_dump_json``); a ``ScorerError`` is a 422 ``{"error": ...}``;
- the Scorer runs in worker threads behind a limiter of ``serving.service.THREADS`` threads, as
  BentoML runs a sync API (``threads=THREADS``), so the event loop keeps accepting and parsing
  while orders are scored;
- uvicorn with the options BentoML's worker passes (auto loop and HTTP parser: uvloop and httptools, backlog 2048, keep-alive
  5 s, no server header) and no access log;
- the same start-up as the service (``serving.service.finish_startup``).

Start it with ``python -m serving.bench.bare_app --port 3001`` (``--host`` defaults to 127.0.0.1).
"""

from __future__ import annotations

import argparse
import logging
import os
from http import HTTPStatus
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from serving.schemas import MAX_BODY_BYTES, Order
from serving.scorer import Clock, Scorer, ScorerError
from serving.service import THREADS, Guard, finish_startup, risk_tier_setting

log = logging.getLogger(__name__)


def load_scorer() -> Scorer:
    """The Scorer configured by the service's environment variables (see ``serving.service``)."""
    scorer = Scorer.from_registry(
        os.environ.get("KYCRISK_TRACKING_URI") or None,
        state_dir=Path(os.environ.get("KYCRISK_STATE_DIR", "state")),
        watchlist=os.environ.get("KYCRISK_WATCHLIST") or None,
        clock=Clock.from_env(),
        risk_tier=risk_tier_setting(),
    )
    seed = os.environ.get("KYCRISK_SEED_DATA")
    if seed and len(scorer.profiles) == 0:
        log.info("seeding from %s: %s", seed, scorer.seed(seed))
    return scorer


def create_app(scorer: Scorer) -> Any:
    """The ASGI app: ``Guard`` around a Starlette app with ``POST /score`` and ``GET /readyz``.

    Args:
        scorer: the loaded Scorer (the app never closes it).

    Returns:
        The ASGI application.
    """
    api_key = os.environ.get("KYCRISK_API_KEY") or None
    auth_off = os.environ.get("KYCRISK_AUTH", "").lower() == "off"
    if api_key is None and not auth_off:
        raise RuntimeError(
            "KYCRISK_API_KEY is not set: set it (or KYCRISK_AUTH=off for local experiments only)"
        )
    limiter = anyio.CapacityLimiter(THREADS)  # as many request threads as the BentoML service

    async def score(request: Request) -> Response:
        body = await request.body()
        try:
            order = Order.model_validate_json(body)
        except ValidationError as exc:
            detail = exc.errors(include_context=False, include_input=False)
            return JSONResponse(
                {"error": f"{exc.error_count()} validation error for {exc.title}", "detail": detail},
                status_code=HTTPStatus.BAD_REQUEST,
            )
        try:
            result = await anyio.to_thread.run_sync(scorer.score, order, limiter=limiter)
        except ScorerError as exc:
            message = f"{exc.field}: {exc}" if exc.field else str(exc)
            return JSONResponse({"error": message}, status_code=HTTPStatus.UNPROCESSABLE_ENTITY)
        return Response(result.model_dump_json(), media_type="application/json")

    async def readyz(request: Request) -> Response:
        return Response(b"", status_code=200)

    app = Starlette(routes=[Route("/score", score, methods=["POST"]), Route("/readyz", readyz)])
    return Guard(
        app,
        max_bytes=int(os.environ.get("KYCRISK_MAX_BODY_BYTES", MAX_BODY_BYTES)),
        api_key=api_key,
        auth_off=auth_off,
    )


def main(argv: list[str] | None = None) -> None:
    """Load the Scorer, then serve the app with uvicorn until interrupted."""
    import uvicorn

    parser = argparse.ArgumentParser(
        prog="python -m serving.bench.bare_app", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=3001, help="port (default 3001)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scorer = load_scorer()
    app = create_app(scorer)
    finish_startup()
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        # "auto", as BentoML's worker leaves them: uvloop and httptools when installed
        loop="auto",
        http="auto",
        lifespan="off",
        backlog=2048,
        timeout_keep_alive=5,
        server_header=False,
        access_log=False,
        log_config=None,
    )
    try:
        uvicorn.Server(config).run()
    finally:
        scorer.close()


if __name__ == "__main__":
    main()
