"""The ``kycrisk`` subcommands of the training package: train, promote, the external benchmarks
(``benchmark fdh``) and the training and explanation benchmarks.

``add_commands`` and ``add_bench_commands`` add them to the parser that ``serving.cli`` composes.
MLflow, LightGBM and pandas are imported inside the commands: building the parser must stay
instant (``kycrisk --help``).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from features import cli_options as opt
from training.bench.fdh import add_arguments as add_fdh_arguments  # light import (no numpy)

log = logging.getLogger("kycrisk")

MODELS = ("fraud", "risk")
# The out-of-time metrics each model's summary line shows (train, demo).
SUMMARY_METRICS = {
    "fraud": ("auc_roc", "average_precision", "recall_at_fpr_1pct", "ece", "auto_decision_rate"),
    "risk": (
        "auc_roc",
        "average_precision",
        "not_yet_known.average_precision",
        "recall_at_fpr_1pct",
        "ece",
        "auto_decision_rate",
    ),
}


def summary_metrics(name: str, metrics: dict[str, float]) -> dict[str, float]:
    """The summary metrics of model ``name`` (``SUMMARY_METRICS``) that a run has, rounded to 4 places."""
    return {k: round(metrics[k], 4) for k in SUMMARY_METRICS[name] if k in metrics}


def _models(args: argparse.Namespace) -> list[str]:
    """Models a train/promote command acts on; the risk model needs customer labels (kycrisk layout)."""
    chosen = list(MODELS) if args.model == "all" else [args.model]
    if "risk" in chosen and args.source != "kycrisk":
        if args.model == "risk":
            raise opt.UsageError(
                f"the risk-tier model needs customer labels; --source {args.source} has none"
            )
        log.info("skipping the risk-tier model: --source %s has no customer labels", args.source)
        chosen.remove("risk")
    return chosen


def cmd_train(args: argparse.Namespace) -> int:
    from training.flow import train_fraud, train_risk
    from training.names import FRAUD_MODEL, RISK_MODEL

    runners = {"fraud": (train_fraud, FRAUD_MODEL), "risk": (train_risk, RISK_MODEL)}
    summary = {}
    for name in _models(args):
        train, registered_name = runners[name]
        result = train(
            Path(args.data),
            Path(args.config) if args.config else None,
            source=args.source,
            promote_after=not args.no_promote,
        )
        summary[name] = {
            "run_id": result.run_id,
            "model_uri": result.model_uri,
            "registered": f"{registered_name}/{result.version}",
            "metrics": summary_metrics(name, result.metrics),
            "promotion": result.promotion and {k: result.promotion[k] for k in ("decision", "reason")},
        }
    print(json.dumps(summary, indent=2))
    return opt.EXIT_OK


def cmd_promote(args: argparse.Namespace) -> int:
    from training import tracking
    from training.config import load_config
    from training.flow import promote_fraud, promote_risk
    from training.names import FRAUD_MODEL, RISK_MODEL

    config = load_config(args.config)
    data = Path(args.data) if args.data else None
    gates = {"fraud": (promote_fraud, FRAUD_MODEL), "risk": (promote_risk, RISK_MODEL)}
    results: dict[str, dict] = {}
    refused = False
    for name in _models(args):
        promote, registered_name = gates[name]
        if args.model == "all" and tracking.get_alias_version(registered_name, tracking.CHALLENGER) is None:
            # `promote` without --model gates whichever models have a challenger waiting
            results[name] = {"decision": "skipped", "reason": f"no challenger version of {registered_name}"}
            continue
        result = promote(data, config, source=args.source)
        results[name] = result.to_dict()
        refused |= not result.promoted
    if all(r["decision"] == "skipped" for r in results.values()):
        raise ValueError("no challenger to promote: train one first (kycrisk train)")
    print(json.dumps(results, indent=2, default=str))
    return opt.EXIT_FOUND_PROBLEMS if refused else opt.EXIT_OK


def cmd_benchmark_fdh(args: argparse.Namespace) -> int:
    from training.bench.fdh import main_args

    return main_args(args)


def cmd_bench_explain(args: argparse.Namespace) -> int:
    from training.bench.explain import format_report, run

    result = run()
    print(json.dumps(result, default=str) if args.json else format_report(result))
    return opt.EXIT_OK


def cmd_bench_train(args: argparse.Namespace) -> int:
    from training.bench.train import run

    return opt.print_result(run(n_transactions=args.transactions, days=args.days, seed=args.seed), args)


# --- parsers --------------------------------------------------------------------------------


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``promote`` to the ``kycrisk`` subcommands."""
    p = opt.command(
        subparsers,
        "train",
        cmd_train,
        help="train, evaluate and register the fraud and risk-tier models (MLflow)",
        description="Train the fraud model (one row per order) and the customer risk-tier model (one row per "
        "customer snapshot) on a data folder: time splits with label delay, calibration, tier thresholds, "
        "out-of-time evaluation, an MLflow run per model with plots and a model card, a new registered "
        "version with alias 'challenger' (kycrisk-fraud, kycrisk-risk-tier), then the promotion gate. Prints "
        "each model's run id and registered version. MLFLOW_TRACKING_URI overrides the embedded store in "
        "mlflow/. The risk-tier model needs customer labels: it is skipped for --source fdh.",
    )
    p.add_argument("--data", required=True, help="data folder (e.g. from `kycrisk generate`)")
    opt.option(p, "config")
    opt.option(p, "source")
    opt.option(p, "model", help="which model to train (default all)")
    p.add_argument(
        "--no-promote", action="store_true", help="register the challenger but do not run the promotion gate"
    )

    p = opt.command(
        subparsers,
        "promote",
        cmd_promote,
        help="gate each challenger against its champion on the same out-of-time data",
        description="For kycrisk-fraud and kycrisk-risk-tier, score the champion and the challenger on the "
        "challenger's out-of-time period and move the 'champion' alias only if the challenger is at least "
        "as good on the gate metrics and within the fairness bounds (training/config.toml [gate]; the "
        "risk-tier model reads [gate.risk] over it). Models without a challenger are skipped. Decisions "
        "are tagged on the model versions. Exit 0 when every gated challenger is promoted, 1 when one is "
        "refused or there is no challenger at all.",
    )
    p.add_argument(
        "--data", help="data folder for the out-of-time rows (default: the challenger's training data)"
    )
    opt.option(p, "config")
    opt.option(p, "source")
    opt.option(p, "model", help="which model to gate (default all)")


def add_benchmark_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``benchmark`` (external benchmarks: ``fdh``) to the ``kycrisk`` subcommands."""
    xsub = opt.group(
        subparsers,
        "benchmark",
        help="external benchmarks beside their published results",
        description="Run an external benchmark's protocol end to end with our pipeline.",
        dest="benchmark_name",
        metavar="BENCHMARK",
    )
    q = opt.command(
        xsub,
        "fdh",
        cmd_benchmark_fdh,
        help="Fraud Detection Handbook: our rows beside the published rows",
        description="The Fraud Detection Handbook's protocol (ch3 or prequential) with our adapter, feature "
        "engine and LightGBM; hyperparameters chosen on earlier weeks, never the test week. Prints our "
        "rows beside the published ones; --json prints the best feature set's metrics.",
    )
    add_fdh_arguments(q)


def add_bench_commands(bench: argparse._SubParsersAction) -> None:
    """Add ``train`` and ``explain`` to the ``kycrisk bench`` benchmarks."""
    q = opt.command(
        bench,
        "train",
        cmd_bench_train,
        help="full fraud training run vs plain lightgbm.train",
        description="Generate about N transactions, then time feature building, our training wrapper "
        "(Pipeline fit, calibration, thresholds, evaluation), MLflow logging in a temporary store, and "
        "plain lightgbm.train on the same matrix; report peak memory.",
    )
    q.add_argument(
        "--transactions",
        type=opt.positive_int,
        default=1_000_000,
        help="about this many transactions (default 1,000,000)",
    )
    opt.option(q, "days")
    opt.option(q, "seed", default=0)
    opt.option(q, "json")
    q = opt.command(
        bench,
        "explain",
        cmd_bench_explain,
        help="TreeSHAP latency vs model size and quality",
        description="Single-row exact TreeSHAP latency against detection quality for a grid of LightGBM sizes.",
    )
    opt.option(q, "json", help="JSON instead of a table")


__all__ = [
    "MODELS",
    "SUMMARY_METRICS",
    "add_bench_commands",
    "add_benchmark_commands",
    "add_commands",
    "summary_metrics",
]
