"""`kycrisk bench serve` on the test champion: a short real run (servers, load generator), never a speed check."""

from __future__ import annotations

import math

import psutil
import pytest

from serving.bench.load import OrderStream, order_templates
from serving.bench.serve import BenchError, run
from serving.schemas import Order

pytestmark = pytest.mark.filterwarnings("ignore")


def test_order_stream_makes_new_valid_orders_after_the_data(champion) -> None:
    templates, start_us = order_templates(champion.history, n=64)
    stream = OrderStream(templates, start_us, spacing_ms=5.0)
    orders = [Order.model_validate(stream.order(i)) for i in range(100)]
    assert len({o.transaction_id for o in orders}) == 100
    times = [o.occurred_at for o in orders]
    assert times == sorted(times) and times[0].timestamp() * 1e6 > start_us
    history_ids = {t["transaction_id"] for t in templates}
    assert not history_ids & {o.transaction_id for o in orders}


def test_missing_data_says_to_run_the_demo(tmp_path) -> None:
    with pytest.raises(BenchError, match="kycrisk demo"):
        run(tmp_path / "no-data", workdir=tmp_path / "work")


def _stamps(folder) -> dict:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_short_run_reports_every_figure_and_stops_the_servers(
    champion, seeded_state, mlflow_store, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("KYCRISK_RISK_TIER", "optional")  # the servers get this package's fraud champion only
    before = _stamps(seeded_state)
    result = run(
        champion.history,
        state=seeded_state,
        tracking_uri=mlflow_store.tracking_uri,
        seconds=1.0,
        warmup_seconds=0.5,
        clients=(1, 2),
        in_process_orders=40,
        workdir=tmp_path / "bench",
    )
    for part in ("score", "lookup_score_reasons"):
        figures = result["in_process"][part]
        assert figures["n"] == 20 and all(math.isfinite(figures[k]) for k in ("p50_ms", "p99_ms", "max_ms"))
    assert set(result["servers"]) == {"bare", "bentoml"}
    for name, entry in result["servers"].items():
        assert set(entry["phases"]) == {"1", "2"}, name
        for phase in entry["phases"].values():
            assert phase["errors"] == 0, (name, phase["error_samples"])
            assert phase["requests"] > 0 and phase["throughput_rps"] > 0
            assert all(math.isfinite(phase[k]) for k in ("p50_ms", "p99_ms", "max_ms", "client_cpu_cores"))
        assert entry["pids"] and entry["left_running"] == []
        for pid in entry["pids"]:  # the leader, and BentoML's worker in its own process group
            assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert result["load_generator"]["ceiling_rps"] > 0
    assert {"bentoml_vs_bare_throughput_1_clients", "bentoml_p99_over_p50_1_client"} <= set(result["ratios"])
    assert all(isinstance(t["pass"], bool) for t in result["targets"])
    assert _stamps(seeded_state) == before  # contenders got copies: the seeded state is untouched
