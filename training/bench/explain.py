"""Benchmark of per-request explanations: TreeSHAP latency against detection quality, by model size.

``run`` builds a synthetic, imbalanced fraud problem (by default 100,000 orders, 80 features
named like the real ones, 1.5% positives, signal in main effects and in interactions such as
"new device and a recent password reset"), trains one LightGBM model per (num_leaves,
max_depth) and reads models of fewer trees off it (``model_to_string(num_iteration=t)``: with
a fixed learning rate the first t trees are exactly the t-tree model). For every model size it
reports held-out ROC AUC and average precision next to single-row latencies measured the way
the service calls the model (one row at a time, ``num_threads=1``, a different row per call):

- ``predict`` (probability only) and ``pred_contrib`` (exact TreeSHAP) p50 / p99;
- the tree shape that drives the TreeSHAP cost: mean leaves and depth per tree, and
  ``cost = sum over trees of leaves × depth²`` (latency is roughly proportional to it).

Then, for the recommended size, it compares call paths (pandas frame per request, numpy row,
threads, shape check, float32, LightGBM's C single-row API) and the whole
``training.explain.Explainer.explain`` (dict in, score and reasons out).

Latencies on a shared machine are noisy: every measurement is repeated (``repeats`` rounds, the
sizes interleaved) and the median of the per-round percentiles is reported.
"""

from __future__ import annotations

import ctypes
import gc
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from training.explain import Explainer, reasons_for_row

# The service's budget is 2 ms p99 for feature lookup + score + reasons; half of it for the
# model call leaves room for the online feature lookup and the response.
DEFAULT_BUDGET_MS = 1.0
# Differences of average precision below this are within the noise of ~450 held-out positives.
DEFAULT_AP_TOLERANCE = 0.01

_WINDOWS = ("1h", "24h", "7d", "30d")


# --- The synthetic problem ----------------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def make_problem(
    n_rows: int = 100_000,
    n_features: int = 80,
    positive_rate: float = 0.015,
    seed: int = 0,
    signal: float = 2.0,
) -> tuple[pd.DataFrame, np.ndarray]:
    """A synthetic order table with realistic feature names and a planted fraud signal.

    About 30 features carry signal (main effects, thresholds and interactions); the others are
    correlated window variants and noise, as in a real feature set. Some values are missing
    (no history yet). Labels are drawn from a logistic model whose intercept is solved for
    ``positive_rate``.

    Args:
        n_rows: orders.
        n_features: columns (at least 40).
        positive_rate: share of fraud.
        seed: random seed.
        signal: scale of the planted effects against the unexplained noise (standard normal
            on the log-odds); 2.0 gives a held-out ROC AUC of about 0.94 and an average
            precision of about 0.35 (1.5% positives).

    Returns:
        ``(X, y)``: a float64 DataFrame with ``n_features`` columns and 0/1 labels.
    """
    if n_features < 40:
        raise ValueError("n_features must be at least 40")
    rng = np.random.default_rng(seed)
    n = n_rows
    f: dict[str, np.ndarray] = {}
    # Latent activity levels drive the correlated velocity windows.
    buyer_activity = rng.gamma(1.5, 0.6, n)
    seller_activity = rng.gamma(2.0, 5.0, n)
    account_age = rng.exponential(400, n)
    f["buyer_account_age_days"] = account_age
    new_account = account_age < 14
    for i, w in enumerate(_WINDOWS):
        scale = (1 / 24, 1, 7, 30)[i]
        f[f"buyer_txn_count_{w}"] = rng.poisson(buyer_activity * scale * 0.6).astype(float)
        f[f"seller_txn_count_{w}"] = rng.poisson(seller_activity * scale).astype(float)
        f[f"buyer_amount_sum_{w}"] = f[f"buyer_txn_count_{w}"] * rng.lognormal(4, 0.7, n)
    f["buyer_txn_count_1h"] += rng.poisson(0.05, n)
    mean_30d = np.where(f["buyer_txn_count_30d"] > 0, rng.lognormal(4, 0.6, n), np.nan)
    f["buyer_amount_mean_30d"] = mean_30d
    f["amount_usd"] = rng.lognormal(4.2, 0.9, n)
    f["buyer_amount_ratio_30d"] = f["amount_usd"] / mean_30d
    f["buyer_amount_ratio_all"] = f["amount_usd"] / np.where(
        account_age > 30, rng.lognormal(4, 0.5, n), np.nan
    )
    f["device_buyer_nunique_all"] = 1 + rng.poisson(0.15, n).astype(float)
    f["ip_buyer_nunique_7d"] = 1 + rng.poisson(0.3, n).astype(float)
    f["buyer_device_nunique_30d"] = 1 + rng.poisson(0.4, n).astype(float)
    f["buyer_device_txn_count_all"] = np.where(rng.random(n) < 0.12, 0, rng.poisson(8, n)).astype(float)
    f["pair_txn_count_all"] = np.where(rng.random(n) < 0.35, 0, rng.poisson(3, n)).astype(float)
    f["buyer_ipcountry_txn_count_all"] = np.where(rng.random(n) < 0.08, 0, rng.poisson(10, n)).astype(float)
    f["buyer_password_reset_count_24h"] = rng.poisson(0.02, n).astype(float)
    f["buyer_login_failed_count_1h"] = rng.poisson(0.05, n).astype(float)
    f["buyer_device_change_count_7d"] = rng.poisson(0.03, n).astype(float)
    f["seller_fraud_rate_30d_delay7d"] = rng.beta(0.5, 60, n)
    f["seller_buyer_nunique_7d"] = f["seller_txn_count_7d"] * rng.uniform(0.6, 1.0, n)
    f["unit_price_ratio"] = rng.lognormal(0, 0.5, n)
    f["buyer_name_email_similarity"] = np.clip(rng.beta(5, 1.5, n), 0, 1)
    f["buyer_nationality_risk"] = rng.choice([0.1, 0.6, 0.8, 1.0], n, p=[0.9, 0.07, 0.025, 0.005])
    f["seller_residence_risk"] = rng.choice([0.1, 0.6, 0.8], n, p=[0.93, 0.05, 0.02])
    f["buyer_doc_expired"] = (rng.random(n) < 0.03).astype(float)
    f["buyer_email_age_days"] = np.where(rng.random(n) < 0.2, np.nan, rng.exponential(800, n))
    f["seller_business_age_days"] = rng.exponential(1500, n)
    f["cross_border"] = (rng.random(n) < 0.4).astype(float)
    f["ip_country_mismatch"] = (rng.random(n) < 0.08).astype(float)
    f["hour"] = rng.integers(0, 24, n).astype(float)
    f["is_weekend"] = (rng.random(n) < 2 / 7).astype(float)
    f["buyer_screen_score"] = np.where(rng.random(n) < 0.05, rng.uniform(60, 100, n), 0.0)

    # Planted signal: main effects, thresholds, and interactions the trees have to find.
    takeover = (f["buyer_device_txn_count_all"] == 0) & (
        (f["buyer_password_reset_count_24h"] > 0) | (f["buyer_login_failed_count_1h"] > 1)
    )
    ratio = np.nan_to_num(f["buyer_amount_ratio_30d"], nan=1.0)
    z = signal * (
        1.1 * np.log1p(np.clip(ratio - 1, 0, None))
        + 0.6 * (f["device_buyer_nunique_all"] - 1)
        + 0.7 * (f["pair_txn_count_all"] == 0)
        + 2.5 * takeover
        + 1.4 * (f["unit_price_ratio"] < 0.4) * (f["seller_business_age_days"] < 200)
        + 25.0 * f["seller_fraud_rate_30d_delay7d"]
        + 0.9 * new_account * (f["buyer_name_email_similarity"] < 0.5)
        + 1.2 * (f["buyer_nationality_risk"] >= 0.8)
        + 0.8 * f["ip_country_mismatch"] * f["cross_border"]
        + 0.4 * ((f["hour"] < 6) | (f["hour"] >= 23))
        + 0.35 * np.clip(f["buyer_txn_count_1h"], 0, 5)
        + 0.6 * f["buyer_doc_expired"]
        + 0.5 * (f["buyer_screen_score"] > 85)
        + 0.3 * np.log1p(f["seller_buyer_nunique_7d"]) * (f["seller_business_age_days"] < 365)
    ) + rng.normal(0, 1.0, n)  # what no feature explains
    # Solve the intercept for the positive rate (bisection on the expected rate).
    lo, hi = -30.0, 10.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _sigmoid(z + mid).mean() < positive_rate else (lo, mid)
    y = (rng.random(n) < _sigmoid(z + (lo + hi) / 2)).astype(np.int64)

    # Padding: further window variants and weakly related history, as a real feature set has.
    extra = [
        ("device_txn_count", buyer_activity),
        ("ip_txn_count", buyer_activity * 1.5),
        ("seller_amount_sum", seller_activity * 80),
        ("buyer_seller_nunique", buyer_activity * 0.5),
        ("ip_buyer_nunique", np.ones(n)),
        ("device_fraud_rate", None),
        ("buyer_login_count", buyer_activity * 2),
    ]
    k = 0
    while len(f) < n_features:
        base, level = extra[k % len(extra)]
        window = _WINDOWS[(k // len(extra)) % len(_WINDOWS)]
        name = f"{base}_{window}" if k < 4 * len(extra) else f"noise_{k}"
        k += 1
        if name in f:
            continue
        if name.startswith("noise_"):
            f[name] = rng.normal(size=n)
        elif level is None:
            f[name] = rng.beta(0.3, 50, n)
        else:
            f[name] = rng.poisson(level * (1 + _WINDOWS.index(window))).astype(float)
    X = pd.DataFrame({name: np.asarray(v, dtype=np.float64) for name, v in list(f.items())[:n_features]})
    return X, y


# --- Timing ------------------------------------------------------------------------------------


def _percentiles(times: Sequence[float]) -> tuple[float, float]:
    ms = np.asarray(times) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def _time_calls(call: Callable[[int], Any], n_calls: int) -> tuple[float, float]:
    """p50 and p99 in ms of ``call(i)`` for i in 0..n_calls-1 (after a short warm-up)."""
    for i in range(min(20, n_calls)):
        call(i)
    times = []
    clock = time.perf_counter
    for i in range(n_calls):
        t0 = clock()
        call(i)
        times.append(clock() - t0)
    return _percentiles(times)


def _median_rounds(rounds: list[tuple[float, float]]) -> dict[str, float]:
    p50 = [r[0] for r in rounds]
    p99 = [r[1] for r in rounds]
    return {
        "p50_ms": float(np.median(p50)),
        "p99_ms": float(np.median(p99)),
        "p99_ms_max": float(np.max(p99)),
    }


def tree_shape(booster: lgb.Booster) -> dict[str, float]:
    """Mean leaves and depth per tree, and the TreeSHAP cost proxy ``cost`` = sum(leaves × depth²).

    Single-row ``pred_contrib`` latency grows about linearly with ``cost`` (see ``run``'s
    ``timing_notes``), so a training run can log it and refuse a model that would break the
    serving budget before anyone times it.

    Returns:
        Dict with ``trees``, ``mean_leaves``, ``mean_depth``, ``max_depth_seen`` and ``cost``.
    """
    leaves, depths = [], []

    def walk(node: dict, depth: int) -> tuple[int, int]:
        if "leaf_index" in node or "left_child" not in node:
            return 1, depth
        ln, ld = walk(node["left_child"], depth + 1)
        rn, rd = walk(node["right_child"], depth + 1)
        return ln + rn, max(ld, rd)

    for tree in booster.dump_model()["tree_info"]:
        n_leaves, depth = walk(tree["tree_structure"], 0)
        leaves.append(n_leaves)
        depths.append(depth)
    leaves_a, depths_a = np.asarray(leaves, float), np.asarray(depths, float)
    return {
        "trees": len(leaves),
        "mean_leaves": float(leaves_a.mean()),
        "mean_depth": float(depths_a.mean()),
        "max_depth_seen": int(depths_a.max()),
        "cost": float(np.sum(leaves_a * np.maximum(depths_a, 1) ** 2)),
    }


class _CSingleRow:
    """LightGBM's C single-row fast path (``LGBM_BoosterPredictForMatSingleRowFast``), for comparison.

    It skips the Python wrapper's per-call set-up; it uses LightGBM's private ctypes handle, so
    it is measured here, not used by the service.
    """

    _CONTRIB, _NORMAL, _FLOAT64 = 3, 0, 1

    def __init__(self, booster: lgb.Booster, contrib: bool):
        from lightgbm.basic import _LIB, _c_str, _safe_call

        self._lib, self._safe_call = _LIB, _safe_call
        ncol = booster.num_feature()
        self._config = ctypes.c_void_p()
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(self._CONTRIB if contrib else self._NORMAL),
                ctypes.c_int(0),
                ctypes.c_int(-1),
                ctypes.c_int(self._FLOAT64),
                ctypes.c_int32(ncol),
                _c_str("num_threads=1"),
                ctypes.byref(self._config),
            )
        )
        self._out = np.empty(ncol + 1 if contrib else 1, dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._len = ctypes.c_int64()

    def __call__(self, row: np.ndarray) -> np.ndarray:
        self._safe_call(
            self._lib.LGBM_BoosterPredictForMatSingleRowFast(
                self._config, row.ctypes.data_as(ctypes.c_void_p), ctypes.byref(self._len), self._out_ptr
            )
        )
        return self._out

    def close(self) -> None:
        if self._config:
            self._safe_call(self._lib.LGBM_FastConfigFree(self._config))
            self._config = ctypes.c_void_p()


# --- The benchmark -----------------------------------------------------------------------------


def _train(
    X: pd.DataFrame, y: np.ndarray, leaves: int, depth: int, trees: int, seed: int, threads: int
) -> lgb.Booster:
    params = {
        "objective": "binary",
        "learning_rate": 0.05,
        "num_leaves": leaves,
        "max_depth": depth,
        "min_data_in_leaf": 50,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "seed": seed,
        "deterministic": True,
        "num_threads": threads,
        "verbose": -1,
    }
    return lgb.train(params, lgb.Dataset(X, y, free_raw_data=True), num_boost_round=trees)


def _depth_for(leaves: int, limit: str) -> int:
    """``-1`` (unlimited) or the smallest depth that can hold ``leaves`` leaves."""
    return -1 if limit == "none" else max(1, math.ceil(math.log2(leaves + 1)))


def recommend(rows: list[dict], budget_ms: float, ap_tolerance: float) -> dict[str, Any]:
    """The cheapest model within the latency budget whose AP is within tolerance of the best one there.

    Args:
        rows: grid rows of ``run``.
        budget_ms: p99 limit of ``pred_contrib`` per row.
        ap_tolerance: AP a cheaper model may give up against the best model within budget.

    Returns:
        Dict with ``row`` (the chosen grid row or None), ``best_in_budget``, ``best_overall``
        and ``why`` (one sentence).
    """
    best_overall = max(rows, key=lambda r: r["ap"])
    fits = [r for r in rows if r["contrib_p99_ms"] <= budget_ms]
    if not fits:
        return {
            "row": None,
            "best_in_budget": None,
            "best_overall": best_overall,
            "why": f"no model size meets the {budget_ms} ms pred_contrib p99 budget",
        }
    best = max(fits, key=lambda r: r["ap"])
    good = [r for r in fits if r["ap"] >= best["ap"] - ap_tolerance]
    choice = min(good, key=lambda r: (r["contrib_p99_ms"], -r["ap"]))
    why = (
        f"{choice['trees']} trees × {choice['num_leaves']} leaves (max_depth {choice['max_depth']}): "
        f"pred_contrib p99 {choice['contrib_p99_ms']:.2f} ms within the {budget_ms} ms budget, AP "
        f"{choice['ap']:.3f} within {ap_tolerance} of the best in budget ({best['ap']:.3f}; best of all sizes "
        f"{best_overall['ap']:.3f} at {best_overall['contrib_p99_ms']:.2f} ms)"
    )
    return {"row": choice, "best_in_budget": best, "best_overall": best_overall, "why": why}


def _bootstrap_se(y: np.ndarray, scores: np.ndarray, seed: int, n_boot: int = 20) -> float:
    """Bootstrap standard error of the average precision (the same resamples for every model)."""
    rng = np.random.default_rng(seed + 1)
    values = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].any():
            values.append(average_precision_score(y[idx], scores[idx]))
    return float(np.std(values, ddof=1)) if len(values) > 1 else float("nan")


def _call_paths(
    booster: lgb.Booster, X_test: pd.DataFrame, n_calls: int, repeats: int
) -> dict[str, dict[str, float]]:
    names = list(X_test.columns)
    rows = np.ascontiguousarray(X_test.to_numpy(dtype=np.float64)[:n_calls])
    rows32 = rows.astype(np.float32)
    dicts = [dict(zip(names, r.tolist(), strict=True)) for r in rows]
    frame = X_test.iloc[:1].copy()
    explainer = Explainer(booster, num_threads=1)
    contribs = [explainer.contributions(rows[i : i + 1]) for i in range(min(len(rows), 200))]
    c_contrib, c_plain = _CSingleRow(booster, contrib=True), _CSingleRow(booster, contrib=False)

    def one(i: int) -> np.ndarray:
        return rows[i : i + 1]

    paths: dict[str, Callable[[int], Any]] = {
        "predict, numpy row, num_threads=1": lambda i: booster.predict(one(i), num_threads=1),
        "predict, pandas frame per request": lambda i: booster.predict(
            pd.DataFrame([dicts[i]], columns=names), num_threads=1
        ),
        "predict, C single-row API": lambda i: c_plain(rows[i]),
        "pred_contrib, numpy row, num_threads=1": lambda i: booster.predict(
            one(i), pred_contrib=True, num_threads=1
        ),
        "pred_contrib, numpy row, default threads": lambda i: booster.predict(one(i), pred_contrib=True),
        "pred_contrib, numpy row, predict_disable_shape_check": lambda i: booster.predict(
            one(i), pred_contrib=True, num_threads=1, predict_disable_shape_check=True
        ),
        "pred_contrib, float32 numpy row": lambda i: booster.predict(
            rows32[i : i + 1], pred_contrib=True, num_threads=1
        ),
        "pred_contrib, preallocated pandas frame": lambda i: booster.predict(
            frame, pred_contrib=True, num_threads=1
        ),
        "pred_contrib, pandas frame per request": lambda i: booster.predict(
            pd.DataFrame([dicts[i]], columns=names), pred_contrib=True, num_threads=1
        ),
        "pred_contrib, C single-row API": lambda i: c_contrib(rows[i]),
        "Explainer.row (dict -> numpy row)": lambda i: explainer.row(dicts[i]),
        "reasons_for_row (pandas Series in, top 5)": lambda i: reasons_for_row(
            pd.Series(contribs[i % len(contribs)][:-1], index=names), dicts[i]
        ),
        "Explainer.explain(numpy row): score + top-5 reasons": lambda i: explainer.explain(rows[i : i + 1]),
        "Explainer.explain(dict): row + score + top-5 reasons": lambda i: explainer.explain(dicts[i]),
    }
    results: dict[str, list[tuple[float, float]]] = {k: [] for k in paths}
    try:
        for _ in range(repeats):
            for name, call in paths.items():
                results[name].append(_time_calls(call, len(rows)))
    finally:
        c_contrib.close()
        c_plain.close()
    return {name: _median_rounds(r) for name, r in results.items()}


def run(
    n_rows: int = 100_000,
    n_features: int = 80,
    positive_rate: float = 0.015,
    trees: Sequence[int] = (100, 200, 400),
    num_leaves: Sequence[int] = (7, 15, 31, 63),
    depth_limits: Sequence[str] = ("none", "balanced"),
    n_calls: int = 1000,
    repeats: int = 3,
    budget_ms: float = DEFAULT_BUDGET_MS,
    ap_tolerance: float = DEFAULT_AP_TOLERANCE,
    train_threads: int = 2,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
    data: tuple[pd.DataFrame, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Latency of exact TreeSHAP against detection quality over a grid of model sizes.

    Args:
        n_rows, n_features, positive_rate: the synthetic problem (``make_problem``); 30% of the
            rows are held out for quality and latency.
        trees: tree counts read off each trained model.
        num_leaves: leaves per tree.
        depth_limits: ``none`` (max_depth -1, leaf-wise trees grow deep) and/or ``balanced``
            (max_depth = ceil(log2(leaves + 1)), the shallowest depth that holds the leaves).
        n_calls: single-row calls per measurement (a different held-out row each).
        repeats: rounds of measurements; the median of the per-round percentiles is reported.
        budget_ms: p99 budget of ``pred_contrib`` per row for the recommendation.
        ap_tolerance: AP a cheaper model may give up against the best model within budget.
        train_threads: LightGBM threads for training (latency is always measured with 1).
        seed: seed of data and training.
        progress: called with a line of text per step (e.g. ``print``), optional.
        data: ``(X, y)`` to use instead of the synthetic problem, e.g. the real model inputs
            (numeric columns; rows in time order: the first 70% train, the last 30% are held out).

    Returns:
        Dict with ``config`` (the arguments), ``problem`` (rows, features, positive rate),
        ``grid`` (one dict per model size: ``trees``, ``num_leaves``, ``max_depth``, ``auc``,
        ``ap``, ``ap_se`` (bootstrap standard error), ``predict_p50_ms``, ``predict_p99_ms``, ``contrib_p50_ms``, ``contrib_p99_ms``,
        ``contrib_p99_ms_max`` (worst round), ``mean_leaves``, ``mean_depth``,
        ``max_depth_seen``, ``cost``), ``recommendation`` (see ``recommend``), ``call_paths``
        (name -> p50/p99 ms, measured on the recommended size, or the smallest one) and
        ``timing_notes``.
    """
    say = progress or (lambda line: None)
    config = {
        k: (list(v) if isinstance(v, tuple | list) else v)
        for k, v in locals().items()
        if k not in ("say", "progress")
    }
    X, y = make_problem(n_rows, n_features, positive_rate, seed)
    cut = int(len(X) * 0.7)
    X_train, y_train, X_test, y_test = X.iloc[:cut], y[:cut], X.iloc[cut:], y[cut:]
    rows = np.ascontiguousarray(X_test.to_numpy(dtype=np.float64)[:n_calls])
    say(f"problem: {len(X)} rows, {X.shape[1]} features, {y.mean():.4f} positive")

    models: dict[tuple[int, int, int], lgb.Booster] = {}
    grid: list[dict[str, Any]] = []
    for leaves in num_leaves:
        for limit in depth_limits:
            depth = _depth_for(leaves, limit)
            t0 = time.perf_counter()
            full = _train(X_train, y_train, leaves, depth, max(trees), seed, train_threads)
            say(f"trained leaves={leaves} max_depth={depth} in {time.perf_counter() - t0:.1f}s")
            for t in sorted(trees):
                booster = lgb.Booster(model_str=full.model_to_string(num_iteration=t))
                scores = booster.predict(X_test.to_numpy(dtype=np.float64), num_threads=train_threads)
                models[(t, leaves, depth)] = booster
                grid.append(
                    {
                        "trees": t,
                        "num_leaves": leaves,
                        "max_depth": depth,
                        "auc": float(roc_auc_score(y_test, scores)),
                        "ap": float(average_precision_score(y_test, scores)),
                        "ap_se": _bootstrap_se(y_test, scores, seed),
                        **{k: v for k, v in tree_shape(booster).items() if k != "trees"},
                    }
                )

    rounds: dict[int, dict[str, list[tuple[float, float]]]] = {
        i: {"predict": [], "contrib": []} for i in range(len(grid))
    }
    for r in range(repeats):
        for i, row in enumerate(grid):
            booster = models[(row["trees"], row["num_leaves"], row["max_depth"])]
            rounds[i]["predict"].append(
                _time_calls(lambda k, b=booster: b.predict(rows[k : k + 1], num_threads=1), len(rows))
            )
            rounds[i]["contrib"].append(
                _time_calls(
                    lambda k, b=booster: b.predict(rows[k : k + 1], pred_contrib=True, num_threads=1),
                    len(rows),
                )
            )
        say(f"latency round {r + 1}/{repeats} done")
        gc.collect()
    for i, row in enumerate(grid):
        plain, contrib = _median_rounds(rounds[i]["predict"]), _median_rounds(rounds[i]["contrib"])
        row.update(
            {
                "predict_p50_ms": plain["p50_ms"],
                "predict_p99_ms": plain["p99_ms"],
                "contrib_p50_ms": contrib["p50_ms"],
                "contrib_p99_ms": contrib["p99_ms"],
                "contrib_p99_ms_max": contrib["p99_ms_max"],
            }
        )

    rec = recommend(grid, budget_ms, ap_tolerance)
    ref = rec["row"] or min(grid, key=lambda r: r["contrib_p99_ms"])
    say(f"call paths on trees={ref['trees']} leaves={ref['num_leaves']} max_depth={ref['max_depth']}")
    paths = _call_paths(models[(ref["trees"], ref["num_leaves"], ref["max_depth"])], X_test, n_calls, repeats)
    # Weighted by 1/latency: a fit of relative errors, so small models count as much as big ones.
    p50 = np.asarray([r["contrib_p50_ms"] for r in grid])
    cost_fit = (
        np.polyfit([r["cost"] for r in grid], p50, 1, w=1.0 / p50) if len(grid) > 1 else (np.nan, np.nan)
    )
    return {
        "config": config,
        "problem": {
            "rows": len(X),
            "features": X.shape[1],
            "positive_rate": float(y.mean()),
            "test_rows": len(X_test),
        },
        "grid": grid,
        "recommendation": rec,
        "call_paths": {"model": {k: ref[k] for k in ("trees", "num_leaves", "max_depth")}, "latency": paths},
        "timing_notes": {
            "ms_per_million_cost": float(cost_fit[0] * 1e6),
            "fixed_ms": float(cost_fit[1]),
            "method": (
                f"{n_calls} single-row calls per measurement (a different held-out row each), num_threads=1, "
                f"{repeats} rounds, median of the per-round p50 / p99"
            ),
        },
    }


def format_report(result: dict[str, Any]) -> str:
    """The result of ``run`` as Markdown tables and a recommendation."""
    lines = [
        f"Synthetic problem: {result['problem']['rows']:,} rows, {result['problem']['features']} features, "
        f"{100 * result['problem']['positive_rate']:.2f}% positive; quality on {result['problem']['test_rows']:,} "
        "held-out rows.",
        f"Latency: {result['timing_notes']['method']}.",
        "",
        "| trees | leaves | max_depth | mean depth | cost (L·D²) | AUC | AP (± s.e.) | predict p50 / p99 ms "
        "| pred_contrib p50 / p99 ms | worst-round p99 |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in sorted(result["grid"], key=lambda r: (r["num_leaves"], r["max_depth"], r["trees"])):
        lines.append(
            f"| {r['trees']} | {r['num_leaves']} | {r['max_depth']} | {r['mean_depth']:.1f} | {r['cost']:,.0f} "
            f"| {r['auc']:.4f} | {r['ap']:.4f} ± {r['ap_se']:.3f} "
            f"| {r['predict_p50_ms']:.3f} / {r['predict_p99_ms']:.3f} "
            f"| {r['contrib_p50_ms']:.3f} / {r['contrib_p99_ms']:.3f} | {r['contrib_p99_ms_max']:.3f} |"
        )
    notes = result["timing_notes"]
    lines += [
        "",
        f"pred_contrib p50 ≈ {notes['fixed_ms']:.3f} ms + {notes['ms_per_million_cost']:.2f} ms per million of "
        "cost (sum over trees of leaves × depth²).",
        "",
        f"Recommendation: {result['recommendation']['why']}.",
        "",
        "Call paths ({trees} trees × {num_leaves} leaves, max_depth {max_depth}):".format(
            **result["call_paths"]["model"]
        ),
        "",
        "| call | p50 ms | p99 ms |",
        "|---|---:|---:|",
    ]
    for name, t in result["call_paths"]["latency"].items():
        lines.append(f"| {name} | {t['p50_ms']:.3f} | {t['p99_ms']:.3f} |")
    return "\n".join(lines)
