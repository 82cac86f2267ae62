"""The ``kycrisk`` command line: one subcommand per job, logs on stderr, results on stdout.

Exit codes: 0 success; 1 the job ran and found a problem (e.g. invalid data); 2 bad usage or
unreadable input (argparse's convention).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

log = logging.getLogger("kycrisk")

EXIT_OK, EXIT_FOUND_PROBLEMS, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments or unreadable input: reported on stderr with exit code 2."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


# --- generate ---------------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    from features.synthetic import generate, write_dataset

    started = time.perf_counter()
    tables = generate(
        n_customers=args.customers, days=args.days, seed=args.seed, start=args.start, progress=not args.quiet
    )
    generated_s = time.perf_counter() - started
    card = write_dataset(tables, Path(args.out), seed=args.seed)
    log.info("generated %s transactions in %.1f s", f"{len(tables['transactions']):,}", generated_s)
    card = {**card, "generation_seconds": round(generated_s, 2)}
    print(json.dumps(card, indent=2) if args.json else _summary_line(card, args.out))
    return EXIT_OK


def _summary_line(card: dict, out: str) -> str:
    rows = ", ".join(f"{name} {count:,}" for name, count in card["rows"].items())
    return f"wrote {out}: {rows}; fraud rate {card['fraud_rate']:.2%} (see {out}/datacard.md)"


# --- validate ---------------------------------------------------------------------------------


def cmd_validate(args: argparse.Namespace) -> int:
    from features.io import validate_dir

    report = validate_dir(Path(args.dir), source=args.source)
    print(report.to_json() if args.json else report.to_text())
    return EXIT_OK if report.ok else EXIT_FOUND_PROBLEMS


# --- demo -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the embedded defaults: generate, validate, train, promote, serve and score, verify."""
    from features.io import validate_dir
    from features.synthetic import generate, write_dataset
    from training.run import train_fraud
    from training.run_risk import train_risk

    workdir = Path(args.workdir)
    data_dir = workdir / "data"
    started = time.perf_counter()
    log.info("step 1/4: generating %d customers over %d days into %s", args.customers, args.days, data_dir)
    tables = generate(n_customers=args.customers, days=args.days, seed=args.seed, progress=True)
    card = write_dataset(tables, data_dir, seed=args.seed)
    print(_summary_line(card, str(data_dir)))
    log.info("step 2/4: validating %s", data_dir)
    report = validate_dir(data_dir)
    print(report.to_text())
    if not report.ok:
        return EXIT_FOUND_PROBLEMS
    log.info("step 3/4: features, training, evaluation, MLflow runs, registry and promotion")
    result = train_fraud(data_dir)
    metrics = {
        k: round(result.metrics[k], 4)
        for k in ("auc_roc", "average_precision", "recall_at_fpr_1pct", "ece", "auto_decision_rate")
    }
    print(
        f"fraud model: run {result.run_id}, registered kycrisk-fraud/{result.version}, out-of-time {metrics}"
    )
    if result.promotion:
        print(f"promotion: {result.promotion['decision']} ({result.promotion['reason']})")
    patterns = {k.split(".")[1]: round(v, 3) for k, v in result.metrics.items() if k.startswith("pattern.")}
    print(f"recall per planted pattern at the review threshold: {patterns}")
    risk = train_risk(data_dir)
    metrics = {k: round(risk.metrics[k], 4) for k in _SUMMARY_METRICS["risk"] if k in risk.metrics}
    print(
        f"risk-tier model: run {risk.run_id}, registered kycrisk-risk-tier/{risk.version}, out-of-time {metrics}"
    )
    if risk.promotion:
        print(f"promotion: {risk.promotion['decision']} ({risk.promotion['reason']})")
    served: dict = {}
    if not args.no_serve:
        import importlib

        # The service half lives in serving/ (training must not import it at module level, like
        # `kycrisk serve`): seed a state, start the real BentoML server, replay the last hours
        # through its HTTP API, onboard new customers, verify and replay the decision log, stop.
        log.info("step 4/4: starting the service and scoring the last %g hours through its API", args.hours)
        served = importlib.import_module("serving.demo").run(data_dir, workdir, hours=args.hours)
    print(
        f"demo finished in {time.perf_counter() - started:.1f} s; data card: {data_dir / 'datacard.md'}; "
        "runs: mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db"
    )
    if served and not (served["log_ok"] and served["replay_matches"]):
        return EXIT_FOUND_PROBLEMS
    return EXIT_OK


# --- features ---------------------------------------------------------------------------------


def _feature_set(name: str):
    """A registered feature set, or a usage error listing the known ones."""
    from features.definitions import get_feature_set

    try:
        return get_feature_set(name)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None


def cmd_features_build(args: argparse.Namespace) -> int:
    from features.batch import compute_features
    from features.io import load_valid_dataset

    feature_set = _feature_set(args.feature_set)
    tables = load_valid_dataset(Path(args.data), source=args.source)
    started = time.perf_counter()
    frame = compute_features(tables, feature_set)
    elapsed = time.perf_counter() - started
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    log.info(
        "computed %d features for %s transactions in %.1f s", frame.shape[1] - 1, f"{len(frame):,}", elapsed
    )
    print(
        json.dumps(
            {
                "out": str(out),
                "feature_set": feature_set.id,
                "rows": len(frame),
                "features": frame.shape[1] - 1,
                "seconds": round(elapsed, 2),
            }
        )
    )
    return EXIT_OK


def cmd_features_list(args: argparse.Namespace) -> int:
    from features.definitions import describe_feature_set

    for name, meaning in describe_feature_set(_feature_set(args.feature_set)):
        print(f"{name}\t{meaning}")
    return EXIT_OK


# --- training -------------------------------------------------------------------------------

MODELS = ("fraud", "risk")
_SUMMARY_METRICS = {
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


def _models(args: argparse.Namespace) -> list[str]:
    """Models a train/promote command acts on; the risk model needs customer labels (kycrisk layout)."""
    chosen = list(MODELS) if args.model == "all" else [args.model]
    if "risk" in chosen and args.source != "kycrisk":
        if args.model == "risk":
            raise UsageError(f"the risk-tier model needs customer labels; --source {args.source} has none")
        log.info("skipping the risk-tier model: --source %s has no customer labels", args.source)
        chosen.remove("risk")
    return chosen


def cmd_train(args: argparse.Namespace) -> int:
    from training.run import FRAUD_MODEL, train_fraud
    from training.run_risk import RISK_MODEL, train_risk

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
            "metrics": {
                k: round(result.metrics[k], 4) for k in _SUMMARY_METRICS[name] if k in result.metrics
            },
            "promotion": result.promotion and {k: result.promotion[k] for k in ("decision", "reason")},
        }
    print(json.dumps(summary, indent=2))
    return EXIT_OK


def cmd_promote(args: argparse.Namespace) -> int:
    from training import tracking
    from training.run import FRAUD_MODEL, load_config, promote_fraud
    from training.run_risk import RISK_MODEL, promote_risk

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
    return EXIT_FOUND_PROBLEMS if refused else EXIT_OK


# --- benchmarks -------------------------------------------------------------------------------


def cmd_bench_features(args: argparse.Namespace) -> int:
    from features.bench_features import run

    result = run(n_transactions=args.transactions, seed=args.seed)
    print(json.dumps(result, indent=None if args.json else 2))
    return EXIT_OK


def cmd_bench_online(args: argparse.Namespace) -> int:
    from features.bench_features import run_online, run_seed

    result = run_online(n_warm=args.warm, n_measure=args.events, feature_set=args.feature_set)
    result["seeding"] = run_seed(
        n_transactions=args.warm, feature_set=args.feature_set, data_dir=args.seed_data
    )
    if args.late_seconds is not None:
        from features.bench_features import run_late

        result["late_orders"] = run_late(
            n_warm=args.warm, n_measure=args.events, feature_set=args.feature_set, late_seconds=args.late_seconds
        )
    print(json.dumps(result, indent=None if args.json else 2))
    return EXIT_OK


def cmd_bench_screening(args: argparse.Namespace) -> int:
    from features.bench_screening import run

    result = run(n_names=args.names, n_entries=args.entries, seed=args.seed)
    print(json.dumps(result, indent=None if args.json else 2))
    return EXIT_OK


def cmd_bench_explain(args: argparse.Namespace) -> int:
    from training.bench_explain import format_report, run

    result = run()
    print(json.dumps(result, default=str) if args.json else format_report(result))
    return EXIT_OK


def cmd_bench_train(args: argparse.Namespace) -> int:
    from training.bench_train import run

    result = run(n_transactions=args.transactions, days=args.days, seed=args.seed)
    print(json.dumps(result, indent=None if args.json else 2))
    return EXIT_OK


def cmd_bench_serve(args: argparse.Namespace) -> int:
    """The scoring path in-process, behind a bare Starlette app and behind BentoML, over real HTTP."""
    import importlib

    # serving/ is loaded by name (training must not import it at module level), like `serve`.
    bench = importlib.import_module("serving.bench_serve")
    try:
        result = bench.run(
            args.data,
            state=args.state,
            tracking_uri=args.tracking_uri,
            seconds=args.seconds,
            warmup_seconds=args.warmup,
            clients=args.clients,
            in_process_orders=args.orders,
        )
    except (bench.BenchError, bench.ServerError) as exc:
        raise UsageError(str(exc)) from None
    print(json.dumps(result, default=str) if args.json else bench.format_report(result))
    return EXIT_OK


def cmd_benchmark_fdh(args: argparse.Namespace) -> int:
    from training.benchmark_fdh import main_args

    return main_args(args)


# --- serving --------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the scoring service: ``bentoml serve serving.service:KycRiskService`` in this process.

    ``training`` must not import ``serving`` (DESIGN.md §2): the service is started by name and
    configured through environment variables (documented in serving/service.py).
    """
    import os
    import shutil

    env = dict(os.environ)
    if args.state:
        env["KYCRISK_STATE_DIR"] = str(Path(args.state).resolve())
    if args.seed:
        env["KYCRISK_SEED_DATA"] = str(Path(args.seed).resolve())
    if args.tracking_uri:
        env["MLFLOW_TRACKING_URI"] = args.tracking_uri
    if not env.get("KYCRISK_API_KEY") and env.get("KYCRISK_AUTH", "").lower() != "off":
        raise UsageError("set KYCRISK_API_KEY (and KYCRISK_AUDITOR_KEY for GET /decisions) first")
    if args.secrets:
        env["KYCRISK_SECRETS_FILE"] = str(Path(args.secrets).resolve())
    secrets_config = _serving("secrets_config")
    try:  # the service would refuse to start later, after loading the models: say so now
        secrets_config.load_secrets(env.get("KYCRISK_STATE_DIR", "state"), env)
    except secrets_config.SecretsError as exc:
        raise UsageError(str(exc)) from None
    bentoml = shutil.which("bentoml", path=str(Path(sys.executable).parent)) or shutil.which("bentoml")
    if bentoml is None:
        raise UsageError("the bentoml command is not installed in this environment")
    if "BENTOML_HOME" not in env:
        # BentoML keeps its Prometheus multiprocess folder in BENTOML_HOME and empties it at every
        # start: services sharing the default home would count (and wipe) each other's requests
        import tempfile

        env["BENTOML_HOME"] = tempfile.mkdtemp(prefix="kycrisk-bentoml-home-")
    argv = [bentoml, "serve", "serving.service:KycRiskService", "--host", args.host, "--port", str(args.port)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(bentoml, argv, env)  # replaces this process: signals reach the server directly
    return EXIT_OK  # not reached


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Check the decision log's hash chain and its anchors (read-only).

    Exit 0 intact; 1 broken (the report names the first problem, its seq and why); 2 the log
    cannot be verified: no such file, a malformed anchors file, a keyed log without its key (or
    with a wrong one), or not a decision log of the current format.
    """
    import importlib

    # The decision log lives in serving/, which training must not import at module level; the
    # audit command loads it by name, like `serve` starts the service by name.
    decision_log = importlib.import_module("serving.decision_log")
    path = Path(args.log)
    if not path.is_file():
        raise FileNotFoundError(f"decision log {path} not found")
    try:
        key = decision_log.secret_from_env(decision_log.KEY_ENV)
        secrets_file = os.environ.get("KYCRISK_SECRETS_FILE")
        if key is None and secrets_file:  # the key may sit in the secrets file (serving.secrets_config)
            held = importlib.import_module("serving.secrets_config").read_secrets_file(secrets_file)
            text = held.get(decision_log.KEY_ENV)
            key = text.encode("utf-8", "surrogateescape") if text else None
        anchors = decision_log.read_anchors(args.anchors) if args.anchors is not None else ()
    except ValueError as exc:  # a short key, a refused secrets file or a bad anchor line: the input
        raise UsageError(str(exc)) from None
    report = decision_log.verify_path(path, key=key, anchors=anchors, expect_keyed=args.expect_keyed)
    print(report.to_json() if args.json else str(report))
    return {"intact": EXIT_OK, "broken": EXIT_FOUND_PROBLEMS}.get(report.verdict, EXIT_USAGE)


def cmd_audit_replay(args: argparse.Namespace) -> int:
    """Recompute a logged decision from its logged features with its logged model version."""
    import importlib

    # serving.replay is loaded by name, like the service (training must not import serving).
    replay = importlib.import_module("serving.replay")
    try:
        report = replay.replay_decision(Path(args.log), args.decision_id)
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    print(json.dumps(report.to_dict(), indent=2) if args.json else str(report))
    return EXIT_OK if report.matches else EXIT_FOUND_PROBLEMS


# --- privacy and secrets ----------------------------------------------------------------------


def _serving(name: str):
    """A serving module by name (training must not import serving at module level, DESIGN.md §2)."""
    import importlib

    return importlib.import_module(f"serving.{name}")


def _privacy_run(args: argparse.Namespace, job: str) -> int:
    """Run ``serving.privacy.<job>`` on a stopped service's state with the configured secrets; print JSON."""
    secrets_config, profiles = _serving("secrets_config"), _serving("profiles")
    state = Path(args.state)
    try:
        secrets = secrets_config.load_secrets(state)
        result = getattr(_serving("privacy"), job)(state, args.customer, secrets)
    except (secrets_config.SecretsError, profiles.StateLocked, profiles.StateKeyError) as exc:
        raise UsageError(str(exc)) from None
    except KeyError as exc:
        raise UsageError(str(exc.args[0])) from None
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return EXIT_OK


def cmd_privacy_export(args: argparse.Namespace) -> int:
    """Print what the state holds about one customer (JSON)."""
    return _privacy_run(args, "export_customer")


def cmd_privacy_erase(args: argparse.Namespace) -> int:
    """Remove one customer's personal data from every store; print the erasure record (JSON)."""
    return _privacy_run(args, "erase_customer")


def cmd_secrets_init(args: argparse.Namespace) -> int:
    """Write a new secrets file (mode 0600) with a random salt, state key and decision-log key."""
    secrets_config = _serving("secrets_config")
    secrets = secrets_config.Secrets.generate(decision_log_key=not args.no_decision_log_key)
    try:
        secrets_config.write_secrets_file(args.file, secrets, state_dir=args.state)
    except secrets_config.SecretsError as exc:
        raise UsageError(str(exc)) from None
    # the values never reach the terminal: only where they are and how to use them
    print(
        f"wrote {args.file} (mode 0600): {', '.join(secrets.as_config())}; use it with "
        f"{secrets_config.SECRETS_FILE_ENV}={Path(args.file).resolve()}; keep it outside the state folder "
        "and back it up apart from the state (without its state key the profiles cannot be read)"
    )
    return EXIT_OK


# --- parser -----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kycrisk",
        description="Fraud and KYC risk scoring for a cross-border marketplace.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "generate",
        help="write a synthetic marketplace dataset (five tables + data card)",
        description="Generate a synthetic marketplace: customers, transactions, account events, "
        "watchlist, labels (parquet), ground-truth patterns, and a data card "
        "(datacard.md, datacard.json). The same arguments give byte-identical files.",
    )
    p.add_argument("--customers", type=_positive_int, default=5000, help="number of customers (default 5000)")
    p.add_argument("--days", type=_positive_int, default=365, help="days of activity (default 365)")
    p.add_argument("--seed", type=_non_negative_int, default=7, help="random seed (default 7)")
    p.add_argument("--start", default="2026-01-01", help="first day of activity, UTC (default 2026-01-01)")
    p.add_argument("--out", required=True, help="output folder (created; existing tables are overwritten)")
    p.add_argument("--json", action="store_true", help="print the data card as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser(
        "validate",
        help="check a data folder against the contracts (exit 1 if invalid)",
        description="Check every table of a data folder (parquet or CSV) against the data contracts "
        "of data/README.md: columns, types, nulls, keys, references, ranges, categories. "
        "Exit 0 when valid, 1 with a report of every problem otherwise.",
    )
    p.add_argument("dir", help="folder holding customers, transactions, ... (.parquet or .csv)")
    p.add_argument(
        "--source", choices=("kycrisk", "fdh"), default="kycrisk", help="input layout (default kycrisk)"
    )
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "demo",
        help="run the main job end to end on the embedded defaults",
        description="The main job on the embedded defaults (no server to install): generate a "
        "synthetic marketplace, validate it against the data contracts, build point-in-time features, "
        "train, evaluate and register the fraud and risk-tier models in the embedded MLflow store "
        "(mlflow/), run the promotion gate, then start the BentoML service on loopback, replay the last "
        "hours of the data through its HTTP API (orders, account events, labels), onboard new customers, "
        "print approve/review/reject examples with their reasons, verify the decision log and stop.",
    )
    p.add_argument(
        "--workdir", default="runs/demo", help="folder for everything the demo writes (default runs/demo)"
    )
    p.add_argument("--customers", type=_positive_int, default=5000, help="number of customers (default 5000)")
    p.add_argument("--days", type=_positive_int, default=365, help="days of activity (default 365)")
    p.add_argument("--seed", type=_non_negative_int, default=7, help="random seed (default 7)")
    p.add_argument(
        "--hours",
        type=_positive_float,
        default=24.0,
        help="hours at the end of the data replayed through the API (default 24)",
    )
    p.add_argument("--no-serve", action="store_true", help="stop after training (no service, no scoring)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "features", help="build or list history features", description="History features, point in time."
    )
    fsub = p.add_subparsers(dest="features_command", required=True, metavar="SUBCOMMAND")
    q = fsub.add_parser(
        "build",
        help="compute a feature set for every transaction of a data folder",
        description="Compute a feature set for every transaction (one row per transaction_id), point in "
        "time: a row sees only strictly earlier events and labels known before it.",
    )
    q.add_argument(
        "--data", required=True, help="data folder (kycrisk layout, or the fdh benchmark with --source fdh)"
    )
    q.add_argument("--out", required=True, help="output file (.parquet, or .csv)")
    q.add_argument(
        "--feature-set",
        default="fraud_v1",
        help="registered feature set (default fraud_v1; see `kycrisk features list`)",
    )
    q.add_argument(
        "--source", choices=("kycrisk", "fdh"), default="kycrisk", help="input layout (default kycrisk)"
    )
    q.set_defaults(func=cmd_features_build)
    q = fsub.add_parser(
        "list",
        help="list the features of a feature set with their meaning",
        description="Print each feature of a set with one line of meaning.",
    )
    q.add_argument("--feature-set", default="fraud_v1", help="registered feature set (default fraud_v1)")
    q.set_defaults(func=cmd_features_list)

    p = sub.add_parser(
        "train",
        help="train, evaluate and register the fraud and risk-tier models (MLflow)",
        description="Train the fraud model (one row per order) and the customer risk-tier model (one row per "
        "customer snapshot) on a data folder: time splits with label delay, calibration, tier thresholds, "
        "out-of-time evaluation, an MLflow run per model with plots and a model card, a new registered "
        "version with alias 'challenger' (kycrisk-fraud, kycrisk-risk-tier), then the promotion gate. Prints "
        "each model's run id and registered version. MLFLOW_TRACKING_URI overrides the embedded store in "
        "mlflow/. The risk-tier model needs customer labels: it is skipped for --source fdh.",
    )
    p.add_argument("--data", required=True, help="data folder (e.g. from `kycrisk generate`)")
    p.add_argument("--config", help="training configuration file (default training/config.toml)")
    p.add_argument(
        "--source", choices=("kycrisk", "fdh"), default="kycrisk", help="input layout (default kycrisk)"
    )
    p.add_argument(
        "--model", choices=("all", "fraud", "risk"), default="all", help="which model to train (default all)"
    )
    p.add_argument(
        "--no-promote", action="store_true", help="register the challenger but do not run the promotion gate"
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "promote",
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
    p.add_argument("--config", help="training configuration file (default training/config.toml)")
    p.add_argument(
        "--source", choices=("kycrisk", "fdh"), default="kycrisk", help="input layout (default kycrisk)"
    )
    p.add_argument(
        "--model", choices=("all", "fraud", "risk"), default="all", help="which model to gate (default all)"
    )
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser(
        "serve",
        help="start the scoring service (BentoML)",
        description="Start the BentoML scoring service with the champion models of the registry "
        "(POST /score, /score_batch, /onboard, /events; GET /decisions/{id}). Needs KYCRISK_API_KEY "
        "and KYCRISK_AUDITOR_KEY, and the secrets (KYCRISK_SECRETS_FILE: kycrisk secrets init); other settings "
        "in serving/service.py.",
    )
    p.add_argument(
        "--state", type=Path, default=None, help="state folder (KYCRISK_STATE_DIR, default ./state)"
    )
    p.add_argument("--seed", type=Path, default=None, help="data folder to seed an empty state from")
    p.add_argument(
        "--secrets", type=Path, default=None, help="secrets file (KYCRISK_SECRETS_FILE; see kycrisk secrets init)"
    )
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI of the champion")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=_positive_int, default=3000, help="port (default 3000)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "audit",
        help="auditors' checks of the decision log",
        description="Auditors' checks of the decision log.",
    )
    asub = p.add_subparsers(dest="audit_command", required=True, metavar="CHECK")
    q = asub.add_parser(
        "verify",
        help="verify the decision log's hash chain and anchors (exit 1 if broken, 2 if unverifiable)",
        description="Recompute the hash chain of the decision log and report the first edited, inserted, "
        "deleted or reordered record; with --anchors, also a cut tail, a rewrite, a downgrade or a swapped "
        "file. Uses KYCRISK_DECISION_LOG_KEY when the log is keyed (HMAC); a keyed log never verifies "
        "without it. Exit 0 intact, 1 broken, 2 bad usage, unreadable input or the key needed.",
    )
    q.add_argument(
        "--log", default="state/decisions.sqlite", help="decision log file (default state/decisions.sqlite)"
    )
    q.add_argument(
        "--anchors",
        type=Path,
        default=None,
        help="anchors file (JSON lines, as the service writes to KYCRISK_ANCHORS, or a copy kept elsewhere)",
    )
    q.add_argument(
        "--expect-keyed",
        action="store_true",
        help="refuse an unkeyed log (catches a keyed log downgraded in place, even without anchors)",
    )
    q.add_argument("--json", action="store_true", help="JSON report")
    q.set_defaults(func=cmd_audit_verify)
    q = asub.add_parser(
        "replay",
        help="recompute a logged decision and show that it matches (exit 1 if not)",
        description="Load the model version a decision names from the registry, run it on the decision's "
        "logged features, apply that version's tier policy, and compare probability, tier and action with "
        "the log.",
    )
    q.add_argument("decision_id", help="the decision to replay")
    q.add_argument(
        "--log", default="state/decisions.sqlite", help="decision log file (default state/decisions.sqlite)"
    )
    q.add_argument("--json", action="store_true", help="JSON report")
    q.set_defaults(func=cmd_audit_replay)

    p = sub.add_parser(
        "privacy",
        help="personal data rights: export or erase what the state holds about a customer",
        description="Export or erase what a stopped service's state holds about one customer. Needs the "
        "state's secrets (KYCRISK_PII_SALT, KYCRISK_STATE_KEY, or KYCRISK_SECRETS_FILE) and refuses a state "
        "folder a running service holds. See serving/privacy.py for what erasure removes and keeps.",
    )
    psub = p.add_subparsers(dest="privacy_command", required=True, metavar="RIGHT")
    for name, func, text in (
        ("export", cmd_privacy_export, "print what the state holds about a customer (JSON)"),
        ("erase", cmd_privacy_erase, "remove a customer's personal data from every store (the decision log "
         "is not rewritten and still verifies); print the erasure record"),
    ):  # fmt: skip
        q = psub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        q.add_argument("customer", metavar="CUSTOMER", help="the customer id")
        q.add_argument("--state", type=Path, default=Path("state"), help="state folder (default ./state)")
        q.set_defaults(func=func)

    p = sub.add_parser(
        "secrets",
        help="the service's secrets (pseudonym salt, state key, decision-log key)",
        description="Manage the secrets file the service reads through KYCRISK_SECRETS_FILE.",
    )
    ssub = p.add_subparsers(dest="secrets_command", required=True, metavar="ACTION")
    q = ssub.add_parser(
        "init",
        help="write a new secrets file (refuses to overwrite one)",
        description="Write a new JSON secrets file, mode 0600, with a random KYCRISK_PII_SALT, KYCRISK_STATE_KEY "
        "and KYCRISK_DECISION_LOG_KEY. Keep it outside the state folder; refuses an existing file.",
    )
    q.add_argument("file", metavar="FILE", type=Path, help="the file to create")
    q.add_argument("--state", type=Path, default=None, help="a state folder the file must not be inside")
    q.add_argument(
        "--no-decision-log-key", action="store_true", help="leave the decision log unkeyed (hash chain only)"
    )
    q.set_defaults(func=cmd_secrets_init)

    from training.benchmark_fdh import add_arguments as add_fdh_arguments  # light import

    p = sub.add_parser(
        "benchmark",
        help="external benchmarks beside their published results",
        description="Run an external benchmark's protocol end to end with our pipeline.",
    )
    xsub = p.add_subparsers(dest="benchmark_name", required=True, metavar="BENCHMARK")
    q = xsub.add_parser(
        "fdh",
        help="Fraud Detection Handbook: our rows beside the published rows",
        description="The Fraud Detection Handbook's protocol (ch3 or prequential) with our adapter, feature "
        "engine and LightGBM; hyperparameters chosen on earlier weeks, never the test week. Prints our "
        "rows beside the published ones; --json prints the best feature set's metrics.",
    )
    add_fdh_arguments(q)
    q.set_defaults(func=cmd_benchmark_fdh)

    p = sub.add_parser(
        "bench",
        help="benchmarks that print figures",
        description="Speed and quality benchmarks; each compares against a reference measured in the same run.",
    )
    bsub = p.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    q = bsub.add_parser(
        "features",
        help="batch feature engine vs polars and pandas",
        description="Windowed aggregations: our engine vs polars rolling vs pandas groupby-rolling on the same data.",
    )
    q.add_argument(
        "--transactions",
        type=_positive_int,
        default=5_000_000,
        help="synthetic transactions (default 5,000,000)",
    )
    q.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    q.add_argument("--json", action="store_true", help="one-line JSON")
    q.set_defaults(func=cmd_bench_features)
    q = bsub.add_parser(
        "screening",
        help="watchlist screening speed and recall",
        description="Screen names against a synthetic watchlist, with and without blocking.",
    )
    q.add_argument("--names", type=_positive_int, default=10_000, help="names to screen (default 10,000)")
    q.add_argument("--entries", type=_positive_int, default=50_000, help="watchlist entries (default 50,000)")
    q.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    q.add_argument("--json", action="store_true", help="one-line JSON")
    q.set_defaults(func=cmd_bench_screening)
    q = bsub.add_parser(
        "online",
        help="online feature engine: single-event latency on a warm sqlite state, and seeding",
        description="Replay synthetic events into a sqlite state, then time single-event feature "
        "computation and the transactional state update (p50/p99, wall clock and CPU). Then seed an "
        "empty state one event at a time and in bulk (bulk_apply) and report both times, their ratio "
        "and whether the two states are identical.",
    )
    q.add_argument(
        "--warm", type=_positive_int, default=30_000, help="events replayed first (default 30,000)"
    )
    q.add_argument("--events", type=_positive_int, default=2_000, help="events measured (default 2,000)")
    q.add_argument("--feature-set", default="fraud_v1", help="feature set (default fraud_v1)")
    q.add_argument(
        "--seed-data",
        metavar="DIR",
        help="seed from this data folder (kycrisk generate output; the demo data takes about 4 "
        "minutes one event at a time) instead of --warm synthetic transactions",
    )
    q.add_argument(
        "--late-seconds",
        type=_positive_float,
        metavar="S",
        help="also compare orders arriving up to S seconds late with the same orders in time order "
        "(skewed sellers, 100 orders/s of event time; p50/p99 and late/in-order ratios, one run)",
    )
    q.add_argument("--json", action="store_true", help="one-line JSON")
    q.set_defaults(func=cmd_bench_online)
    q = bsub.add_parser(
        "train",
        help="full fraud training run vs plain lightgbm.train",
        description="Generate about N transactions, then time feature building, our training wrapper "
        "(Pipeline fit, calibration, thresholds, evaluation), MLflow logging in a temporary store, and "
        "plain lightgbm.train on the same matrix; report peak memory.",
    )
    q.add_argument(
        "--transactions",
        type=_positive_int,
        default=1_000_000,
        help="about this many transactions (default 1,000,000)",
    )
    q.add_argument("--days", type=_positive_int, default=365, help="days of activity (default 365)")
    q.add_argument("--seed", type=_non_negative_int, default=0, help="random seed (default 0)")
    q.add_argument("--json", action="store_true", help="one-line JSON")
    q.set_defaults(func=cmd_bench_train)
    q = bsub.add_parser(
        "explain",
        help="TreeSHAP latency vs model size and quality",
        description="Single-row exact TreeSHAP latency against detection quality for a grid of LightGBM sizes.",
    )
    q.add_argument("--json", action="store_true", help="JSON instead of a table")
    q.set_defaults(func=cmd_bench_explain)
    q = bsub.add_parser(
        "serve",
        help="scoring latency and throughput: in-process, bare Starlette app, BentoML service",
        description="Seed a state from the demo data, then measure the in-process Scorer and, started as "
        "real servers on 127.0.0.1 and loaded from a separate process over keep-alive connections, the same "
        "Scorer behind a bare Starlette app and behind the BentoML service: POST /score throughput and "
        "p50/p99 at each client count, ratios and pass/fail per target.",
    )
    q.add_argument(
        "--data", type=Path, default=Path("runs/demo/data"), help="data folder (default runs/demo/data)"
    )
    q.add_argument(
        "--state",
        type=Path,
        default=None,
        help="state folder seeded from --data: used as is (only copied), or seeded into and kept when "
        "missing (default: a temporary one, seeded each run)",
    )
    q.add_argument("--tracking-uri", default=None, help="MLflow tracking URI of the champion")
    q.add_argument(
        "--seconds", type=_positive_float, default=10.0, help="seconds per load phase (default 10)"
    )
    q.add_argument(
        "--warmup", type=_positive_float, default=3.0, help="warm-up seconds per server (default 3)"
    )
    q.add_argument(
        "--clients",
        type=_positive_int,
        nargs="+",
        default=[1, 16],
        help="concurrent clients, one phase each (default 1 16)",
    )
    q.add_argument(
        "--orders", type=_positive_int, default=2000, help="orders timed in-process (default 2,000)"
    )
    q.add_argument("--json", action="store_true", help="JSON instead of tables")
    q.set_defaults(func=cmd_bench_serve)

    return parser


def main(argv: list[str] | None = None) -> int:
    if hasattr(signal, "SIGPIPE"):
        # `kycrisk ... | head` ends quietly instead of with a BrokenPipeError traceback.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.func(args)
    except UsageError as exc:
        print(f"kycrisk {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"kycrisk {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValueError as exc:
        # Invalid data (InvalidDataError carries the full validation report) or configuration.
        print(f"kycrisk {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_FOUND_PROBLEMS
