"""``kycrisk bench train`` at a small size: every figure is there and the ratio is what it says."""

from __future__ import annotations

import pytest

from training.bench.train import run


def test_bench_train_measures_our_fit_beside_plain_lightgbm() -> None:
    out = run(n_transactions=30_000, days=120, seed=0, log_to_mlflow=False)
    assert out["transactions"] > 20_000
    assert out["train_rows"] > 0
    assert out["pipeline_fit_best_s"] > 0 and out["plain_lgbm_train_s"] > 0
    assert out["wrapper_overhead_ratio"] == pytest.approx(
        out["pipeline_fit_best_s"] / out["plain_lgbm_train_s"], rel=1e-3
    )
    # the training's peak is part of the whole run's, which also covers the reference runs
    assert 0 < out["training_peak_rss_mb"] <= out["peak_rss_mb"]
    assert 0.5 < out["auc_roc"] <= 1.0
    assert "mlflow_log_s" not in out  # not asked for
