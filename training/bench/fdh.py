"""The Fraud Detection Handbook benchmark run end to end with our pipeline, beside the published rows.

``run_benchmark`` takes the handbook's simulated card data (``/work/shared/benchmarks/fdh``,
see its README) through *our* code: ``features.adapters.fdh.load_fdh`` (card -> buyer ``C{id}``,
terminal -> seller ``T{id}``, fraud labels known 7 days after the transaction), the batch
feature engine (``features.batch.compute_features``, point in time), a LightGBM model, and the
README's metrics (``training.metrics``). ``format_table`` prints our rows beside the published
ones; ``to_json`` gives the headline numbers; ``add_arguments`` / ``main_args`` are for
``kycrisk benchmark fdh``.

The protocol (what is known when, folds, removal of known-compromised cards, Card Precision@100,
hyperparameter selection on earlier weeks) is in ``training.bench.fdh_protocol``.

Published rows (``PUBLISHED``) are quoted from the README (the book's chapter 3, test set,
15 baseline features); they are for the chapter 3 protocol, so beside prequential results they
are context, not a like-for-like comparison. Nothing here reads the profile tables beyond their
ids (the adapter keeps no simulator parameters): the headline rows use the transactions only.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

# numpy, pandas, LightGBM and scikit-learn (through training.metrics) are imported inside the
# functions that use them: the CLI imports this module to build its parser (``add_arguments``),
# and ``kycrisk --help`` must stay instant (the CLI's convention: heavy imports in the commands).
from training.bench.fdh_protocol import (
    FDH_TRAIN_START,
    METRICS,
    PROTOCOLS,
    FoldRows,
    evaluate,
    fold_rows,
    protocol_folds,
    selection_folds,
    summarize_folds,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from features.definitions import FeatureSet
    from training.splits import TimeSplit

log = logging.getLogger(__name__)

# --- The benchmark's constants (README) ------------------------------------------------------

README = "the README.md that comes with the benchmark's data (benchmarks/fdh)"
PUBLISHED_SOURCE = (
    "Le Borgne, Siblini, Lebichot, Bontempi, Reproducible Machine Learning for Credit Card Fraud "
    "Detection - Practical Handbook (2022), chapter 3 baseline, test set 2018-08-08..08-14; "
    f"quoted from {README}, 'Published results on this protocol (test set)'"
)
# (model, AUC ROC, average precision, Card Precision@100), all on the book's 15 baseline features.
PUBLISHED: tuple[dict[str, Any], ...] = (
    {
        "model": "logistic regression",
        "auc_roc": 0.871,
        "average_precision": 0.606,
        "card_precision_at_100": 0.291,
    },
    {
        "model": "decision tree, depth 2",
        "auc_roc": 0.763,
        "average_precision": 0.496,
        "card_precision_at_100": 0.241,
    },
    {"model": "random forest", "auc_roc": 0.867, "average_precision": 0.658, "card_precision_at_100": 0.287},
    {"model": "XGBoost", "auc_roc": 0.862, "average_precision": 0.639, "card_precision_at_100": 0.273},
)
# README "Sizes" (chapter 3 split, test after removing known-compromised cards).
README_CH3_SIZES = {
    "train_transactions": 67_240,
    "train_fraud": 598,
    "test_transactions": 58_264,
    "test_fraud": 385,
}
FULL_DATA_TRANSACTIONS = 1_303_778  # README "Files": the sizes above hold for the full file only

DEFAULT_FEATURE_SETS = ("fdh_baseline", "fdh_v1")
METRIC_TITLES = {"auc_roc": "AUC ROC", "average_precision": "AP", "card_precision_at_100": "CP@100"}

# --- The model ---------------------------------------------------------------------------------

# Fixed for every configuration. One thread: on the shared 2-core machine two OpenMP threads
# contending with other jobs made a fit ~4x slower than one thread (measured: 13 s vs 3 s), and
# models of ~100k rows gain little from more. deterministic + force_col_wise make a run
# repeatable bit for bit.
BASE_PARAMS: dict[str, Any] = {
    "objective": "binary",
    "learning_rate": 0.05,
    "subsample": 0.8,
    "subsample_freq": 1,
    "colsample_bytree": 0.8,
    "reg_lambda": 1.0,
    "n_jobs": 1,
    "random_state": 0,
    "deterministic": True,
    "force_col_wise": True,
    "verbose": -1,
}
# 12 configurations: tree size x minimum leaf size (the knobs that matter with ~600 positives per
# training week) x histogram resolution. max_bin matters here because the strongest single rule
# of the simulator (amount > 220 is fraud) sits in the top 0.2% of amounts, where 255 quantile
# bins are too coarse to place the split at the threshold (legit amounts of 205-219 then score
# like fraud). The number of trees comes from early stopping.
SEARCH_GRID: tuple[dict[str, Any], ...] = tuple(
    {"num_leaves": leaves, "min_child_samples": leaf_rows, "max_bin": bins}
    for leaves in (15, 63)
    for leaf_rows in (10, 50, 200)
    for bins in (255, 1023)
)
MAX_TREES = 1000
EARLY_STOPPING_ROUNDS = 50

Progress = Callable[[str], None]


# --- Model fitting and selection -------------------------------------------------------------


def _model(params: Mapping[str, Any]):
    import lightgbm as lgb

    return lgb.LGBMClassifier(**{**BASE_PARAMS, **params})


def fit_predict(
    params: Mapping[str, Any], X_train: pd.DataFrame, y_train, X_test: pd.DataFrame
) -> np.ndarray:
    """Fit LightGBM with ``BASE_PARAMS`` updated by ``params`` and score ``X_test`` (probabilities)."""
    import numpy as np

    model = _model(params)
    model.fit(X_train, np.asarray(y_train))
    return model.predict_proba(X_test)[:, 1]


def search_params(
    X: pd.DataFrame,
    transactions: pd.DataFrame,
    folds: Sequence[FoldRows],
    grid: Sequence[Mapping[str, Any]] = SEARCH_GRID,
    progress: Progress | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Choose LightGBM parameters on selection folds (never on an evaluated fold).

    Each configuration is fitted on every fold's training week with early stopping (average
    precision, ``EARLY_STOPPING_ROUNDS``) on that fold's test week, and scored there with the
    README's metrics at its best iteration. The winner has the highest mean average precision
    (ties: higher Card Precision@100, then the earlier configuration); its ``n_estimators`` is
    the median best iteration over the folds.

    Args:
        X: features of every transaction (row ``i`` = transaction ``i``).
        transactions: the transactions (``buyer_id``, ``occurred_at``) for Card Precision.
        folds: the selection folds' rows.
        grid: configurations (LightGBM parameters added to ``BASE_PARAMS``).
        progress: called with a line per configuration.

    Returns:
        ``(params, table)``: the chosen parameters (configuration plus ``n_estimators``), and per
        configuration its parameters, mean metrics, best iterations and per-fold metrics.
    """
    import lightgbm as lgb
    import numpy as np

    say = progress or (lambda _msg: None)
    table = []
    for i, config in enumerate(grid):
        started = time.perf_counter()
        per_fold = []
        for fold in folds:
            model = _model({**config, "n_estimators": MAX_TREES, "metric": "average_precision"})
            model.fit(
                X.iloc[fold.train],
                fold.train_y,
                eval_X=(X.iloc[fold.test],),
                eval_y=(fold.test_y,),
                callbacks=[lgb.early_stopping(EARLY_STOPPING_ROUNDS, first_metric_only=True, verbose=False)],
            )
            best = int(model.best_iteration_ or MAX_TREES)
            score = model.predict_proba(X.iloc[fold.test], num_iteration=best)[:, 1]
            tx = transactions.iloc[fold.test]
            metrics = evaluate(fold.test_y, score, tx["buyer_id"].to_numpy(), tx["occurred_at"])
            metrics.pop("per_day")
            per_fold.append(
                {"test_start": fold.split.test_start.strftime("%Y-%m-%d"), "best_iteration": best, **metrics}
            )
        row = {
            "config": dict(config),
            **summarize_folds(per_fold),
            "best_iterations": [f["best_iteration"] for f in per_fold],
            "per_fold": per_fold,
            "seconds": round(time.perf_counter() - started, 2),
        }
        table.append(row)
        say(
            f"  config {i + 1}/{len(grid)} {_config_text(config)}: AP {row['average_precision']:.3f} "
            f"AUC {row['auc_roc']:.3f} CP@100 {row['card_precision_at_100']:.3f} "
            f"trees {row['best_iterations']} ({row['seconds']:.1f} s)"
        )
    best_row = max(
        enumerate(table),
        key=lambda item: (item[1]["average_precision"], item[1]["card_precision_at_100"], -item[0]),
    )[1]
    params = {**best_row["config"], "n_estimators": int(np.median(best_row["best_iterations"]))}
    return params, table


def _config_text(config: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in config.items())


# --- The benchmark -------------------------------------------------------------------------------


def _as_progress(progress: Progress | None) -> Progress:
    return progress if progress is not None else (lambda msg: log.info("%s", msg))


def _params_for(params: Mapping[str, Any] | None, name: str) -> dict[str, Any] | None:
    """``params`` is either {feature set: parameters} (as ``result["params"]``) or one flat
    parameter dict for every set."""
    if not params:
        return None
    if all(isinstance(v, Mapping) for v in params.values()):
        chosen = params.get(name)
        return dict(chosen) if chosen is not None else None
    return dict(params)


def _check_history(
    folds: Sequence[TimeSplit], fs: FeatureSet, first: pd.Timestamp, last: pd.Timestamp
) -> list[str]:
    """Warnings when a fold's training starts before the features' windows are filled, or a test
    week runs past the data."""
    import pandas as pd

    notes = []
    horizon = pd.Timedelta(microseconds=fs.horizon_us)
    for split in folds:
        if split.train_start - horizon < first:
            notes.append(
                f"{fs.name}: fold training from {split.train_start:%Y-%m-%d} sees less than the "
                f"{horizon.days}-day feature horizon of history (data starts {first:%Y-%m-%d})"
            )
        if split.test_end > last + pd.Timedelta(days=1):
            raise ValueError(
                f"the test week ending {split.test_end:%Y-%m-%d} runs past the data (last {last:%Y-%m-%d})"
            )
    return notes


def _fold_info(fold: FoldRows, transactions: pd.DataFrame) -> dict[str, Any]:
    """Dates and sizes of a fold, and the Card Precision@100 ceiling of its test set (the labels
    themselves as scores: the most any model can reach once the known-compromised cards are
    removed, since fewer than 100 compromised cards remain on a day)."""
    import pandas as pd

    s = fold.split
    last = pd.Timedelta(days=1)
    test = transactions.iloc[fold.test]
    ceiling = evaluate(
        fold.test_y, fold.test_y.astype(float), test["buyer_id"].to_numpy(), test["occurred_at"]
    )
    return {
        "train": [f"{s.train_start:%Y-%m-%d}", f"{s.train_end - last:%Y-%m-%d}"],
        "delay": [f"{s.train_end:%Y-%m-%d}", f"{s.test_start - last:%Y-%m-%d}"],
        "test": [f"{s.test_start:%Y-%m-%d}", f"{s.test_end - last:%Y-%m-%d}"],
        "train_label_cutoff": f"{s.label_cutoffs()['train']:%Y-%m-%d %H:%M} UTC",
        **fold.sizes(),
        "card_precision_at_100_ceiling": ceiling["card_precision_at_100"],
    }


def run_benchmark(
    path,
    protocol: str = "ch3",
    test_train_start=FDH_TRAIN_START,
    feature_sets: Sequence[str | FeatureSet] = DEFAULT_FEATURE_SETS,
    params: Mapping[str, Any] | None = None,
    progress: Progress | None = None,
    *,
    tables: Mapping[str, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """Run the fdh benchmark with our adapter, feature engine, LightGBM and the README's metrics.

    Args:
        path: folder holding the FDH parquet files (``transactions.parquet``, ...).
        protocol: ``"ch3"`` (train 2018-07-25..31, 7-day delay, test 2018-08-08..14) or
            ``"prequential"`` (4 weekly folds, the latest starting on ``test_train_start``).
        test_train_start: first training day of the latest (for ``ch3``: the only) fold; the
            README's sizes and published rows are for the default, 2018-07-25.
        feature_sets: feature sets to compare (registered names or ``FeatureSet`` objects).
        params: LightGBM parameters, either per feature set (``{name: {...}}``, e.g. the
            ``params`` of an earlier result) or one dict for all; a set with parameters skips
            the search. Keys are LightGBM's scikit-learn names and include ``n_estimators``.
        progress: called with progress lines (default: this module's logger at INFO).
        tables: already adapted tables (``load_fdh``'s output) instead of reading ``path``.

    Returns:
        A JSON-ready dict: ``benchmark``, ``protocol``, ``data`` (path and sizes), ``folds``
        (dates and sizes of each evaluated fold, latest first), ``selection_folds``,
        ``feature_sets`` (per set: ``id``, ``n_features``, ``features``, ``params``,
        ``params_source`` (``search`` or ``given``), ``search`` (the table of
        ``search_params``), ``metrics`` (mean, plus ``_std`` for prequential), ``per_fold``,
        ``timings``), ``params`` (per set, to pass back as ``params=``), ``best_feature_set``
        (highest average precision), ``published`` and ``published_source``, ``notes`` and
        ``timings`` (``load_s``, ``features_s``, ``selection_s``, ``training_s``, ``total_s``).

    Raises:
        FileNotFoundError: no ``transactions.parquet`` under ``path``.
        ValueError: unknown protocol or feature set, or a period without transactions.
        RuntimeError: on the full data with the book's split, sizes differing from the README's.
    """
    import lightgbm as lgb
    import pandas as pd

    from features.adapters.fdh import load_fdh
    from features.batch import compute_features
    from features.definitions import get_feature_set
    from training.splits import label_targets

    say = _as_progress(progress)
    started = time.perf_counter()
    folds = protocol_folds(protocol, test_train_start)
    sel_splits = selection_folds(folds)
    sets = [get_feature_set(fs) for fs in feature_sets]
    if not sets:
        raise ValueError("no feature set to run")

    t0 = time.perf_counter()
    if tables is None:
        say(f"loading {path}")
        tables = load_fdh(Path(path))
    tx = tables["transactions"].reset_index(drop=True)
    labels = tables["labels"]
    load_s = time.perf_counter() - t0
    y_true = label_targets(tx, labels, None).to_numpy()
    first, last = tx["occurred_at"].min().floor("D"), tx["occurred_at"].max().floor("D")
    say(
        f"{len(tx):,} transactions ({int(y_true.sum()):,} fraud), {first:%Y-%m-%d}..{last:%Y-%m-%d}, loaded in {load_s:.1f} s"
    )

    eval_rows = [fold_rows(tx, labels, y_true, s) for s in folds]
    fold_infos = [_fold_info(fold, tx) for fold in eval_rows]
    notes: list[str] = []
    for fold, info in zip(eval_rows, fold_infos, strict=True):
        if fold.train_y_true_fraud != int(fold.train_y.sum()):
            notes.append(
                f"fold {fold.split.train_start:%Y-%m-%d}: {fold.train_y_true_fraud - int(fold.train_y.sum())} "
                "training frauds were not yet known at the label cut-off (trained as 0)"
            )
        say(
            f"fold train {info['train'][0]}..{info['train'][1]}: train {info['train_transactions']:,} tx "
            f"({info['train_fraud']} fraud); test {info['test'][0]}..{info['test'][1]}: "
            f"{info['test_transactions']:,} tx ({info['test_fraud']} fraud) after removing "
            f"{info['test_removed_known_compromised']:,} tx of known-compromised cards"
        )
    book_split = folds[0].train_start == protocol_folds("ch3")[0].train_start
    if book_split and len(tx) == FULL_DATA_TRANSACTIONS:
        got = {k: eval_rows[0].sizes()[k] for k in README_CH3_SIZES}
        if got != README_CH3_SIZES:
            raise RuntimeError(f"chapter 3 sizes {got} differ from the README's {README_CH3_SIZES}")
        say("chapter 3 sizes match the README: train 67,240 tx (598 fraud), test 58,264 tx (385 fraud)")
    selection_rows: list[FoldRows] | None = None

    results: dict[str, Any] = {}
    times = {"features_s": 0.0, "selection_s": 0.0, "training_s": 0.0}
    for fs in sets:
        notes += _check_history(folds, fs, first, last)
        t0 = time.perf_counter()
        say(f"[{fs.name}] computing {len(fs.feature_names)} features for {len(tx):,} transactions")
        frame = compute_features(tables, fs)
        X = frame[fs.feature_names]
        features_s = time.perf_counter() - t0

        given = _params_for(params, fs.name)
        t0 = time.perf_counter()
        search_table: list[dict[str, Any]] = []
        if given is None:
            if selection_rows is None:
                selection_rows = [fold_rows(tx, labels, y_true, s) for s in sel_splits]
            notes += _check_history(sel_splits, fs, first, last)
            say(
                f"[{fs.name}] choosing parameters on {len(sel_splits)} earlier folds (test weeks "
                + ", ".join(
                    f"{s.test_start:%m-%d}..{s.test_end - pd.Timedelta(days=1):%m-%d}" for s in sel_splits
                )
                + f"), {len(SEARCH_GRID)} configurations"
            )
            chosen, search_table = search_params(X, tx, selection_rows, SEARCH_GRID, say)
            source = "search"
        else:
            chosen, source = given, "given"
        selection_s = time.perf_counter() - t0
        say(f"[{fs.name}] parameters ({source}): {_config_text(chosen)}")

        t0 = time.perf_counter()
        per_fold = []
        for fold, info in zip(eval_rows, fold_infos, strict=True):
            score = fit_predict(chosen, X.iloc[fold.train], fold.train_y, X.iloc[fold.test])
            test_tx = tx.iloc[fold.test]
            metrics = evaluate(fold.test_y, score, test_tx["buyer_id"].to_numpy(), test_tx["occurred_at"])
            per_fold.append({**info, **metrics})
        training_s = time.perf_counter() - t0
        if protocol == "prequential":
            summary = summarize_folds(per_fold)
        else:
            summary = {m: per_fold[0][m] for m in METRICS}
        say(
            f"[{fs.name}] "
            + ", ".join(_metric_text(summary, m) for m in METRICS)
            + f" (features {features_s:.1f} s, selection {selection_s:.1f} s, training {training_s:.1f} s)"
        )
        results[fs.name] = {
            "id": fs.id,
            "n_features": len(fs.feature_names),
            "features": list(fs.feature_names),
            "params": chosen,
            "params_source": source,
            "search": search_table,
            "metrics": summary,
            "per_fold": per_fold,
            "timings": {
                "features_s": round(features_s, 2),
                "selection_s": round(selection_s, 2),
                "training_s": round(training_s, 2),
            },
        }
        times["features_s"] += features_s
        times["selection_s"] += selection_s
        times["training_s"] += training_s

    best = max(results, key=lambda name: results[name]["metrics"]["average_precision"])
    return {
        "benchmark": "fdh",
        "protocol": protocol,
        "test_train_start": f"{folds[0].train_start:%Y-%m-%d}",
        "data": {
            "path": str(path),
            "transactions": len(tx),
            "fraud": int(y_true.sum()),
            "first_day": f"{first:%Y-%m-%d}",
            "last_day": f"{last:%Y-%m-%d}",
            "label_delay_days": int(folds[0].label_delay / pd.Timedelta(days=1)),
        },
        "folds": fold_infos,
        "selection_folds": [
            {
                "train_start": f"{s.train_start:%Y-%m-%d}",
                "test": [f"{s.test_start:%Y-%m-%d}", f"{s.test_end - pd.Timedelta(days=1):%Y-%m-%d}"],
            }
            for s in sel_splits
        ],
        "model": {"library": f"lightgbm {lgb.__version__}", "base_params": dict(BASE_PARAMS)},
        "feature_sets": results,
        "params": {name: r["params"] for name, r in results.items()},
        "best_feature_set": best,
        "published": [dict(p) for p in PUBLISHED],
        "published_source": PUBLISHED_SOURCE,
        "notes": notes,
        "timings": {
            "load_s": round(load_s, 2),
            **{k: round(v, 2) for k, v in times.items()},
            "total_s": round(time.perf_counter() - started, 2),
        },
    }


# --- Output --------------------------------------------------------------------------------------


def _metric_text(summary: Mapping[str, float], metric: str) -> str:
    text = f"{METRIC_TITLES[metric]} {summary[metric]:.3f}"
    if f"{metric}_std" in summary:
        text += f"±{summary[metric + '_std']:.3f}"
    return text


def to_json(result: Mapping[str, Any]) -> dict[str, Any]:
    """Headline numbers for the best feature set, plus every set's details.

    Returns:
        ``auc_roc``, ``average_precision``, ``card_precision_at_100`` (and their ``_std`` for the
        prequential protocol) of ``result["best_feature_set"]``; ``feature_set``, ``protocol``,
        ``data``, ``folds``, ``timings``; and ``details``: per feature set its ``id``,
        ``metrics``, ``params``, ``params_source`` and ``timings``.
    """
    best = result["best_feature_set"]
    metrics = result["feature_sets"][best]["metrics"]
    out: dict[str, Any] = {}
    for m in METRICS:
        out[m] = metrics[m]
        if f"{m}_std" in metrics:
            out[f"{m}_std"] = metrics[f"{m}_std"]
    out.update(
        {
            "feature_set": best,
            "protocol": result["protocol"],
            "data": result["data"],
            "folds": [
                {k: v for k, v in f.items() if k not in METRICS and k != "per_day"} for f in result["folds"]
            ],
            "timings": result["timings"],
            "details": {
                name: {
                    "id": r["id"],
                    "n_features": r["n_features"],
                    "metrics": r["metrics"],
                    "params": r["params"],
                    "params_source": r["params_source"],
                    "timings": r["timings"],
                }
                for name, r in result["feature_sets"].items()
            },
        }
    )
    return out


def format_table(result: Mapping[str, Any]) -> str:
    """Our rows beside the published ones, with the protocol, data sizes and timings.

    Returns:
        A plain-text table (one line per row) followed by notes.
    """
    prequential = result["protocol"] == "prequential"
    folds = result["folds"]
    lines = [f"FDH benchmark (Fraud Detection Handbook simulated data), protocol {result['protocol']}"]
    for f in folds:
        lines.append(
            f"  train {f['train'][0]}..{f['train'][1]} ({f['train_transactions']:,} tx, {f['train_fraud']} fraud), "
            f"delay {f['delay'][0]}..{f['delay'][1]}, test {f['test'][0]}..{f['test'][1]} "
            f"({f['test_transactions']:,} tx, {f['test_fraud']} fraud; "
            f"{f['test_removed_known_compromised']:,} tx of known-compromised cards removed)"
        )
    sel = result["selection_folds"]
    if any(r["params_source"] == "search" for r in result["feature_sets"].values()):
        lines.append(
            "  hyperparameters chosen on earlier folds with test weeks "
            + ", ".join(f"{s['test'][0]}..{s['test'][1]}" for s in sel)
        )
    width = 44
    cell = 15 if prequential else 8
    header = f"{'model':<{width}}" + "".join(f"{METRIC_TITLES[m]:>{cell}}" for m in METRICS)
    lines += ["", header, "-" * len(header)]
    title = "published, book ch. 3 (15 baseline features)" + (" [ch3 test week only]" if prequential else "")
    lines.append(title)
    for p in PUBLISHED:
        lines.append(f"  {p['model']:<{width - 2}}" + "".join(f"{p[m]:>{cell}.3f}" for m in METRICS))
    suffix = f" (mean ± std over {len(folds)} folds)" if prequential else ""
    lines.append("ours: LightGBM" + suffix)
    for name, r in result["feature_sets"].items():
        label = f"  {name} ({r['n_features']} features)"
        cells = ""
        for m in METRICS:
            value = r["metrics"][m]
            if prequential:
                text = f"{value:.3f} ± {r['metrics'][m + '_std']:.3f}"
                cells += f"{text:>{cell}}"
            else:
                cells += f"{value:>{cell}.3f}"
        lines.append(f"{label:<{width}}" + cells)
    ceilings = [f["card_precision_at_100_ceiling"] for f in folds]
    lines.append(
        f"{'  ceiling (true labels as scores)':<{width}}"
        + " " * (2 * cell)
        + f"{sum(ceilings) / len(ceilings):>{cell}.3f}"
    )
    best_pub = {m: max(p[m] for p in PUBLISHED) for m in METRICS}
    lines.append("")
    lines.append("best published: " + ", ".join(f"{METRIC_TITLES[m]} {best_pub[m]:.3f}" for m in METRICS))
    for name, r in result["feature_sets"].items():
        beats = [METRIC_TITLES[m] for m in METRICS if r["metrics"][m] > best_pub[m]]
        lines.append(f"{name} beats the best published row on: {', '.join(beats) if beats else 'none'}")
        lines.append(f"  params ({r['params_source']}): {_config_text(r['params'])}")
    t = result["timings"]
    lines.append(
        f"timings: load {t['load_s']:.1f} s, features {t['features_s']:.1f} s, "
        f"selection {t['selection_s']:.1f} s, training {t['training_s']:.1f} s, total {t['total_s']:.1f} s"
    )
    lines.append(
        f"data: {result['data']['transactions']:,} transactions ({result['data']['fraud']:,} fraud), "
        f"{result['data']['first_day']}..{result['data']['last_day']}"
    )
    for note in result.get("notes", []):
        lines.append(f"note: {note}")
    lines.append(f"source of the published rows: {result['published_source']}")
    return "\n".join(lines)


# --- Command line ---------------------------------------------------------------------------------


def _iso_day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a day like 2018-07-25, got {text!r}") from None


def _feature_set_names(text: str) -> list[str]:
    from features.definitions import FEATURE_SETS

    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in FEATURE_SETS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(
            f"unknown feature set(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(sorted(FEATURE_SETS))}"
        )
    return names


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``kycrisk benchmark fdh`` (to add to its subparser)."""
    parser.add_argument("--data", required=True, help="folder holding the FDH parquet files")
    parser.add_argument("--protocol", choices=PROTOCOLS, default="ch3", help="ch3 (default) or prequential")
    parser.add_argument(
        "--test-train-start",
        type=_iso_day,
        default=FDH_TRAIN_START,
        help=f"first training day of the latest fold (default {FDH_TRAIN_START}, the book's)",
    )
    parser.add_argument(
        "--feature-sets",
        type=_feature_set_names,
        default=list(DEFAULT_FEATURE_SETS),
        help=f"comma-separated feature sets (default {','.join(DEFAULT_FEATURE_SETS)})",
    )
    parser.add_argument(
        "--params",
        help="JSON file with LightGBM parameters per feature set ({set: {...}}, or the output of a "
        "previous --json run); sets found there skip the search",
    )
    parser.add_argument("--json", action="store_true", help="print the headline numbers as JSON")


def main_args(args: argparse.Namespace) -> int:
    """Run the benchmark from parsed arguments (``add_arguments``): progress on stderr, result on stdout.

    Returns:
        0. Raises ``FileNotFoundError`` when the data folder lacks ``transactions.parquet`` (the
        CLI maps it to exit code 2).
    """
    params = None
    if getattr(args, "params", None):
        params = json.loads(Path(args.params).read_text())
        if "details" in params:  # the output of --json
            params = {name: d["params"] for name, d in params["details"].items()}
        else:  # a whole result (its "params") or the parameters themselves
            params = params.get("params", params)

    def progress(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    result = run_benchmark(
        Path(args.data),
        protocol=args.protocol,
        test_train_start=args.test_train_start,
        feature_sets=getattr(args, "feature_sets", None) or DEFAULT_FEATURE_SETS,
        params=params,
        progress=progress,
    )
    print(json.dumps(to_json(result), indent=2) if args.json else format_table(result))
    return 0
