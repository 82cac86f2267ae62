"""The load side of ``kycrisk bench serve``: the order stream every contender receives, and the
closed-loop load generator that runs in its own process.

Split from ``serving.bench.serve`` (seeding, servers, rounds, the report) because this code runs
in the spawned load-generator process and on the client side only: it never imports the Scorer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import math
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TEMPLATES = 4096  # distinct real rows resampled into the order stream


# --- the order stream ---------------------------------------------------------------------------


def order_templates(data_dir: Path, n: int = TEMPLATES, seed: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Real orders to resample, and the time after which new orders are accepted.

    Args:
        data_dir: the data folder the state was seeded from.
        n: how many rows to sample (with replacement when the data has fewer).
        seed: random seed.

    Returns:
        ``(templates, start_us)``: JSON-ready ``Order`` fields of ``n`` random transactions rows
        (``transaction_id`` and ``occurred_at`` are replaced per order), and the newest event time
        of the data (transactions and account events: the feature state's watermark) in
        microseconds since the epoch.
    """
    import numpy as np
    import pandas as pd

    from features.online import timestamp_us
    from serving.schemas import Order, request_body

    txns = pd.read_parquet(data_dir / "transactions.parquet", columns=list(Order.model_fields))
    newest = [txns["occurred_at"].max()]
    events = data_dir / "account_events.parquet"
    if events.is_file():
        newest.append(pd.read_parquet(events, columns=["occurred_at"])["occurred_at"].max())
    start_us = max(timestamp_us(t) for t in newest if t is not pd.NaT)
    rng = np.random.default_rng(seed)
    rows = txns.iloc[rng.choice(len(txns), size=n, replace=len(txns) < n)]
    templates = [request_body(rec, Order.model_fields) for rec in rows.to_dict("records")]
    Order.model_validate(templates[0])  # fail here, not in the servers, if the data and schema disagree
    return templates, start_us


def iso_utc(t_us: int) -> str:
    """An ISO 8601 UTC time from microseconds since the epoch."""
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=t_us)).isoformat()


class OrderStream:
    """Order ``i`` of the stream: template ``i % len(templates)`` with a new id and time (thread-safe).

    Args:
        templates: JSON-ready ``Order`` fields (``order_templates``).
        start_us: orders come after this time (microseconds since the epoch).
        spacing_ms: event time between consecutive orders.
        first: index of the first order ``next_body`` hands out.
    """

    def __init__(
        self, templates: Sequence[Mapping[str, Any]], start_us: int, spacing_ms: float, first: int = 0
    ):
        self.templates = templates
        self.start_us = start_us
        self.spacing_ms = spacing_ms
        self.first = first
        self._next = first
        self._lock = threading.Lock()

    def order(self, i: int) -> dict[str, Any]:
        """Order ``i`` as a JSON-ready dict."""
        t = self.start_us + round((i + 1) * self.spacing_ms * 1000)
        return {
            **self.templates[i % len(self.templates)],
            "transaction_id": f"BENCH-{i:09d}",
            "occurred_at": iso_utc(t),
        }

    def next_body(self) -> bytes:
        """The next order of the stream as a JSON request body."""
        with self._lock:
            i = self._next
            self._next += 1
        return json.dumps(self.order(i)).encode()

    @property
    def issued(self) -> int:
        """Index of the next order to hand out."""
        return self._next


# --- statistics ----------------------------------------------------------------------------------


def summarize(latencies_ms: Sequence[float]) -> dict[str, float]:
    """Latency percentiles in milliseconds: ``n``, ``p50``, ``p90``, ``p99``, ``max``, ``mean``."""
    import numpy as np

    if not latencies_ms:
        return {"n": 0, "p50_ms": math.nan, "p90_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}
    arr = np.asarray(latencies_ms, dtype=float)
    return {
        "n": int(arr.size),
        "p50_ms": round(float(np.percentile(arr, 50)), 3),
        "p90_ms": round(float(np.percentile(arr, 90)), 3),
        "p99_ms": round(float(np.percentile(arr, 99)), 3),
        "max_ms": round(float(arr.max()), 3),
        "mean_ms": round(float(arr.mean()), 3),
    }


# --- the load generator (runs in its own process) --------------------------------------------------


def _cpu_seconds(pids: Sequence[int]) -> float:
    import psutil

    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            cpu = psutil.Process(pid).cpu_times()
            total += cpu.user + cpu.system
    return total


def load_phase(
    port: int, api_key: str, templates: list[dict[str, Any]], start_us: int, spacing_ms: float,
    first: int, clients: int, seconds: float, server_pids: Sequence[int] = (), path: str = "/score",
) -> dict[str, Any]:  # fmt: skip
    """Closed-loop load: ``clients`` threads, each on its own keep-alive connection, for ``seconds``.

    Meant to run in a separate process (``run`` uses a spawned worker), so that the client's
    Python never competes with the server's for one GIL.

    Args:
        port: server port on 127.0.0.1.
        api_key: sent as ``X-API-Key``.
        templates, start_us, spacing_ms, first: the order stream (``OrderStream``) and where to
            continue it.
        clients: concurrent connections.
        seconds: duration of the phase.
        server_pids: the server's processes, for its CPU use.
        path: ``/score`` (POST an order) or ``/readyz`` (GET, the load generator's ceiling).

    Returns:
        ``clients``, ``elapsed_s``, ``latencies_ms`` (one per request), ``errors`` (and up to 3
        ``error_samples``), ``client_cpu_s`` (this process), ``server_cpu_s``, and ``next`` (the
        next order index of the stream); ``merge_rounds`` turns rounds of these into figures.
    """
    stream = OrderStream(templates, start_us, spacing_ms, first)
    headers = {"Content-Type": "application/json", "X-API-Key": api_key, "Connection": "keep-alive"}
    post = path == "/score"
    results: list[tuple[list[float], int, list[str]]] = []
    barrier = threading.Barrier(clients + 1)
    stop_at = [0.0]
    ends: list[float] = []

    def client() -> None:
        latencies: list[float] = []
        errors: list[str] = []
        n_errors = 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        barrier.wait()
        while True:
            body = stream.next_body() if post else None
            t0 = time.perf_counter()
            if t0 >= stop_at[0]:
                break
            try:
                conn.request("POST" if post else "GET", path, body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                status, data = -1, repr(exc).encode()
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            latencies.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                n_errors += 1
                if len(errors) < 3:
                    errors.append(f"{status}: {data[:300].decode(errors='replace')}")
        ends.append(time.perf_counter())
        conn.close()
        results.append((latencies, n_errors, errors))

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    server_cpu0 = _cpu_seconds(server_pids)
    cpu0 = time.process_time()
    started = time.perf_counter()
    stop_at[0] = started + seconds
    barrier.wait()
    for thread in threads:
        thread.join()
    elapsed = max(ends) - started if ends else seconds
    client_cpu = time.process_time() - cpu0
    server_cpu = _cpu_seconds(server_pids) - server_cpu0
    latencies = [x for lat, _, _ in results for x in lat]
    n_errors = sum(e for _, e, _ in results)
    samples = [s for _, _, errs in results for s in errs][:3]
    return {
        "clients": clients,
        "elapsed_s": elapsed,
        "latencies_ms": latencies,
        "errors": n_errors,
        "error_samples": samples,
        "client_cpu_s": client_cpu,
        "server_cpu_s": server_cpu if server_pids else None,
        "next": stream.issued,
    }


def merge_rounds(rounds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One phase's figures from its rounds (``load_phase`` results of one server and client count).

    Returns:
        ``clients``, ``seconds``, ``requests``, ``errors`` (and up to 3 ``error_samples``),
        ``throughput_rps`` (all requests over all rounds' time), latency summary over all requests,
        ``rounds_rps`` (each round's rate), ``client_cpu_cores``, ``client_cpu_us_per_request`` and
        ``server_cpu_cores`` (CPU seconds per second of load).
    """
    elapsed = sum(r["elapsed_s"] for r in rounds)
    latencies = [x for r in rounds for x in r["latencies_ms"]]
    n = len(latencies)
    client_cpu = sum(r["client_cpu_s"] for r in rounds)
    server = [r["server_cpu_s"] for r in rounds if r["server_cpu_s"] is not None]
    return {
        "clients": rounds[0]["clients"],
        "seconds": round(elapsed, 2),
        "requests": n,
        "errors": sum(r["errors"] for r in rounds),
        "error_samples": [s for r in rounds for s in r["error_samples"]][:3],
        "throughput_rps": round(n / elapsed, 1) if elapsed > 0 else 0.0,
        **summarize(latencies),
        "rounds_rps": [
            round(len(r["latencies_ms"]) / r["elapsed_s"], 1) for r in rounds if r["elapsed_s"] > 0
        ],
        "client_cpu_cores": round(client_cpu / elapsed, 3) if elapsed > 0 else 0.0,
        "client_cpu_us_per_request": round(1e6 * client_cpu / n, 1) if n else None,
        "server_cpu_cores": round(sum(server) / elapsed, 3) if server and elapsed > 0 else None,
    }


__all__ = [
    "TEMPLATES",
    "OrderStream",
    "iso_utc",
    "load_phase",
    "merge_rounds",
    "order_templates",
    "summarize",
]
