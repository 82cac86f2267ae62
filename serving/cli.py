"""The ``kycrisk`` command line: one subcommand per job, logs on stderr, results on stdout.

It sits at the top of the import direction (features <- training <- serving) because it composes
the subcommands of all three packages (``features.commands``, ``training.commands``) with the
serving ones defined here: demo, serve, audit, privacy, secrets and ``bench serve``.

Exit codes: 0 success; 1 the job ran and found a problem (e.g. invalid data); 2 bad usage or
unreadable input (argparse's convention).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from features import cli_options as opt
from features import commands as features_commands
from training import commands as training_commands

log = logging.getLogger("kycrisk")


# --- demo -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the embedded defaults: generate, validate, train, promote, serve and score, verify."""
    from features.io import validate_dir
    from features.synthetic import generate, write_dataset
    from training.flow import train_fraud, train_risk

    workdir = Path(args.workdir)
    data_dir = workdir / "data"
    started = time.perf_counter()
    log.info("step 1/4: generating %d customers over %d days into %s", args.customers, args.days, data_dir)
    tables = generate(n_customers=args.customers, days=args.days, seed=args.seed, progress=True)
    card = write_dataset(tables, data_dir, seed=args.seed)
    print(features_commands.summary_line(card, str(data_dir)))
    log.info("step 2/4: validating %s", data_dir)
    report = validate_dir(data_dir)
    print(report.to_text())
    if not report.ok:
        return opt.EXIT_FOUND_PROBLEMS
    log.info("step 3/4: features, training, evaluation, MLflow runs, registry and promotion")
    result = train_fraud(data_dir)
    metrics = training_commands.summary_metrics("fraud", result.metrics)
    print(
        f"fraud model: run {result.run_id}, registered kycrisk-fraud/{result.version}, out-of-time {metrics}"
    )
    if result.promotion:
        print(f"promotion: {result.promotion['decision']} ({result.promotion['reason']})")
    patterns = {k.split(".")[1]: round(v, 3) for k, v in result.metrics.items() if k.startswith("pattern.")}
    print(f"recall per planted pattern at the review threshold: {patterns}")
    risk = train_risk(data_dir)
    metrics = training_commands.summary_metrics("risk", risk.metrics)
    print(
        f"risk-tier model: run {risk.run_id}, registered kycrisk-risk-tier/{risk.version}, out-of-time {metrics}"
    )
    if risk.promotion:
        print(f"promotion: {risk.promotion['decision']} ({risk.promotion['reason']})")
    served: dict = {}
    if not args.no_serve:
        from serving import demo

        # seed a state, start the real BentoML server, replay the last hours through its HTTP API,
        # onboard new customers, verify and replay the decision log, stop
        log.info("step 4/4: starting the service and scoring the last %g hours through its API", args.hours)
        served = demo.run(data_dir, workdir, hours=args.hours)
    print(
        f"demo finished in {time.perf_counter() - started:.1f} s; data card: {data_dir / 'datacard.md'}; "
        "runs: mlflow ui --backend-store-uri sqlite:///mlflow/mlflow.db"
    )
    if served and not (served["log_ok"] and served["replay_matches"]):
        return opt.EXIT_FOUND_PROBLEMS
    return opt.EXIT_OK


# --- serve ------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    """Start the scoring service: ``bentoml serve serving.service:KycRiskService`` in this process.

    The service is configured through environment variables (documented in serving/service.py).
    """
    from serving import secrets_config

    env = dict(os.environ)
    if args.state:
        env["KYCRISK_STATE_DIR"] = str(Path(args.state).resolve())
    if args.seed:
        env["KYCRISK_SEED_DATA"] = str(Path(args.seed).resolve())
    if args.tracking_uri:
        env["MLFLOW_TRACKING_URI"] = args.tracking_uri
    if not env.get("KYCRISK_API_KEY") and env.get("KYCRISK_AUTH", "").lower() != "off":
        raise opt.UsageError("set KYCRISK_API_KEY (and KYCRISK_AUDITOR_KEY for GET /decisions) first")
    if args.secrets:
        env["KYCRISK_SECRETS_FILE"] = str(Path(args.secrets).resolve())
    try:  # the service would refuse to start later, after loading the models: say so now
        secrets_config.load_secrets(env.get("KYCRISK_STATE_DIR", "state"), env)
    except secrets_config.SecretsError as exc:
        raise opt.UsageError(str(exc)) from None
    bentoml = shutil.which("bentoml", path=str(Path(sys.executable).parent)) or shutil.which("bentoml")
    if bentoml is None:
        raise opt.UsageError("the bentoml command is not installed in this environment")
    if "BENTOML_HOME" not in env:
        # BentoML keeps its Prometheus multiprocess folder in BENTOML_HOME and empties it at every
        # start: services sharing the default home would count (and wipe) each other's requests
        env["BENTOML_HOME"] = tempfile.mkdtemp(prefix="kycrisk-bentoml-home-")
    argv = [bentoml, "serve", "serving.service:KycRiskService", "--host", args.host, "--port", str(args.port)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(bentoml, argv, env)  # replaces this process: signals reach the server directly
    return opt.EXIT_OK  # not reached


# --- audit ------------------------------------------------------------------------------------


def cmd_audit_verify(args: argparse.Namespace) -> int:
    """Check the decision log's hash chain and its anchors (read-only).

    Exit 0 intact; 1 broken (the report names the first problem, its seq and why); 2 the log
    cannot be verified: no such file, a malformed anchors file, a keyed log without its key (or
    with a wrong one), or not a decision log of the current format.
    """
    from serving import decision_log, secrets_config

    path = Path(args.log)
    if not path.is_file():
        raise FileNotFoundError(f"decision log {path} not found")
    try:
        key = decision_log.secret_from_env(decision_log.KEY_ENV)
        secrets_file = os.environ.get("KYCRISK_SECRETS_FILE")
        if key is None and secrets_file:  # the key may sit in the secrets file (serving.secrets_config)
            held = secrets_config.read_secrets_file(secrets_file)
            text = held.get(decision_log.KEY_ENV)
            key = text.encode("utf-8", "surrogateescape") if text else None
        anchors = decision_log.read_anchors(args.anchors) if args.anchors is not None else ()
    except ValueError as exc:  # a short key, a refused secrets file or a bad anchor line: the input
        raise opt.UsageError(str(exc)) from None
    report = decision_log.verify_path(path, key=key, anchors=anchors, expect_keyed=args.expect_keyed)
    print(report.to_json() if args.json else str(report))
    return {"intact": opt.EXIT_OK, "broken": opt.EXIT_FOUND_PROBLEMS}.get(report.verdict, opt.EXIT_USAGE)


def cmd_audit_replay(args: argparse.Namespace) -> int:
    """Recompute a logged decision from its logged features with its logged model version."""
    from serving import replay

    try:
        report = replay.replay_decision(Path(args.log), args.decision_id)
    except KeyError as exc:
        raise opt.UsageError(str(exc.args[0])) from None
    print(json.dumps(report.to_dict(), indent=2) if args.json else str(report))
    return opt.EXIT_OK if report.matches else opt.EXIT_FOUND_PROBLEMS


# --- privacy and secrets ----------------------------------------------------------------------


def _privacy_run(args: argparse.Namespace, job: str) -> int:
    """Run ``serving.privacy.<job>`` on a stopped service's state with the configured secrets; print JSON."""
    from serving import privacy, profiles, secrets_config

    state = Path(args.state)
    try:
        secrets = secrets_config.load_secrets(state)
        result = getattr(privacy, job)(state, args.customer, secrets)
    except (secrets_config.SecretsError, profiles.StateLocked, profiles.StateKeyError) as exc:
        raise opt.UsageError(str(exc)) from None
    except KeyError as exc:
        raise opt.UsageError(str(exc.args[0])) from None
    print(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    return opt.EXIT_OK


def cmd_privacy_export(args: argparse.Namespace) -> int:
    """Print what the state holds about one customer (JSON)."""
    return _privacy_run(args, "export_customer")


def cmd_privacy_erase(args: argparse.Namespace) -> int:
    """Remove one customer's personal data from every store; print the erasure record (JSON)."""
    return _privacy_run(args, "erase_customer")


def cmd_secrets_init(args: argparse.Namespace) -> int:
    """Write a new secrets file (mode 0600) with a random salt, state key and decision-log key."""
    from serving import secrets_config

    secrets = secrets_config.Secrets.generate(decision_log_key=not args.no_decision_log_key)
    try:
        secrets_config.write_secrets_file(args.file, secrets, state_dir=args.state)
    except secrets_config.SecretsError as exc:
        raise opt.UsageError(str(exc)) from None
    # the values never reach the terminal: only where they are and how to use them
    print(
        f"wrote {args.file} (mode 0600): {', '.join(secrets.as_config())}; use it with "
        f"{secrets_config.SECRETS_FILE_ENV}={Path(args.file).resolve()}; keep it outside the state folder "
        "and back it up apart from the state (without its state key the profiles cannot be read)"
    )
    return opt.EXIT_OK


# --- benchmarks -------------------------------------------------------------------------------


def cmd_bench_serve(args: argparse.Namespace) -> int:
    """The scoring path in-process, behind a bare Starlette app and behind BentoML, over real HTTP."""
    from serving.bench import serve as bench

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
        raise opt.UsageError(str(exc)) from None
    print(json.dumps(result, default=str) if args.json else bench.format_report(result))
    return opt.EXIT_OK


# --- parser -----------------------------------------------------------------------------------


def add_demo(subparsers: argparse._SubParsersAction) -> None:
    p = opt.command(
        subparsers,
        "demo",
        cmd_demo,
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
    opt.option(p, "customers", default=5000)
    opt.option(p, "days")
    opt.option(p, "seed", default=7)
    p.add_argument(
        "--hours",
        type=opt.positive_float,
        default=24.0,
        help="hours at the end of the data replayed through the API (default 24)",
    )
    p.add_argument("--no-serve", action="store_true", help="stop after training (no service, no scoring)")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``serve``, ``audit``, ``privacy`` and ``secrets`` to the ``kycrisk`` subcommands."""
    p = opt.command(
        subparsers,
        "serve",
        cmd_serve,
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
        "--secrets",
        type=Path,
        default=None,
        help="secrets file (KYCRISK_SECRETS_FILE; see kycrisk secrets init)",
    )
    opt.option(p, "tracking_uri")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=opt.positive_int, default=3000, help="port (default 3000)")

    asub = opt.group(
        subparsers,
        "audit",
        help="auditors' checks of the decision log",
        description="Auditors' checks of the decision log.",
        dest="audit_command",
        metavar="CHECK",
    )
    q = opt.command(
        asub,
        "verify",
        cmd_audit_verify,
        help="verify the decision log's hash chain and anchors (exit 1 if broken, 2 if unverifiable)",
        description="Recompute the hash chain of the decision log and report the first edited, inserted, "
        "deleted or reordered record; with --anchors, also a cut tail, a rewrite, a downgrade or a swapped "
        "file. Uses KYCRISK_DECISION_LOG_KEY when the log is keyed (HMAC); a keyed log never verifies "
        "without it. Exit 0 intact, 1 broken, 2 bad usage, unreadable input or the key needed.",
    )
    opt.option(q, "log")
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
    opt.option(q, "json", help="JSON report")
    q = opt.command(
        asub,
        "replay",
        cmd_audit_replay,
        help="recompute a logged decision and show that it matches (exit 1 if not)",
        description="Load the model version a decision names from the registry, run it on the decision's "
        "logged features, apply that version's tier policy, and compare probability, tier and action with "
        "the log.",
    )
    q.add_argument("decision_id", help="the decision to replay")
    opt.option(q, "log")
    opt.option(q, "json", help="JSON report")

    psub = opt.group(
        subparsers,
        "privacy",
        help="personal data rights: export or erase what the state holds about a customer",
        description="Export or erase what a stopped service's state holds about one customer. Needs the "
        "state's secrets (KYCRISK_PII_SALT, KYCRISK_STATE_KEY, or KYCRISK_SECRETS_FILE) and refuses a state "
        "folder a running service holds. See serving/privacy.py for what erasure removes and keeps.",
        dest="privacy_command",
        metavar="RIGHT",
    )
    for name, func, text in (
        ("export", cmd_privacy_export, "print what the state holds about a customer (JSON)"),
        ("erase", cmd_privacy_erase, "remove a customer's personal data from every store (the decision log "
         "is not rewritten and still verifies); print the erasure record"),
    ):  # fmt: skip
        q = opt.command(psub, name, func, help=text, description=text[0].upper() + text[1:] + ".")
        q.add_argument("customer", metavar="CUSTOMER", help="the customer id")
        q.add_argument("--state", type=Path, default=Path("state"), help="state folder (default ./state)")

    ssub = opt.group(
        subparsers,
        "secrets",
        help="the service's secrets (pseudonym salt, state key, decision-log key)",
        description="Manage the secrets file the service reads through KYCRISK_SECRETS_FILE.",
        dest="secrets_command",
        metavar="ACTION",
    )
    q = opt.command(
        ssub,
        "init",
        cmd_secrets_init,
        help="write a new secrets file (refuses to overwrite one)",
        description="Write a new JSON secrets file, mode 0600, with a random KYCRISK_PII_SALT, KYCRISK_STATE_KEY "
        "and KYCRISK_DECISION_LOG_KEY. Keep it outside the state folder; refuses an existing file.",
    )
    q.add_argument("file", metavar="FILE", type=Path, help="the file to create")
    q.add_argument("--state", type=Path, default=None, help="a state folder the file must not be inside")
    q.add_argument(
        "--no-decision-log-key", action="store_true", help="leave the decision log unkeyed (hash chain only)"
    )


def add_bench_commands(bench: argparse._SubParsersAction) -> None:
    """Add ``serve`` to the ``kycrisk bench`` benchmarks."""
    q = opt.command(
        bench,
        "serve",
        cmd_bench_serve,
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
    opt.option(q, "tracking_uri")
    q.add_argument(
        "--seconds", type=opt.positive_float, default=10.0, help="seconds per load phase (default 10)"
    )
    q.add_argument(
        "--warmup", type=opt.positive_float, default=3.0, help="warm-up seconds per server (default 3)"
    )
    q.add_argument(
        "--clients",
        type=opt.positive_int,
        nargs="+",
        default=[1, 16],
        help="concurrent clients, one phase each (default 1 16)",
    )
    q.add_argument(
        "--orders", type=opt.positive_int, default=2000, help="orders timed in-process (default 2,000)"
    )
    opt.option(q, "json", help="JSON instead of tables")


def build_parser() -> argparse.ArgumentParser:
    """The ``kycrisk`` parser: every package's subcommands, listed in the order of the workflow."""
    parser = argparse.ArgumentParser(
        prog="kycrisk",
        description="Fraud and KYC risk scoring for a cross-border marketplace.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    features_commands.add_data_commands(sub)
    add_demo(sub)
    features_commands.add_commands(sub)
    training_commands.add_commands(sub)
    add_commands(sub)
    training_commands.add_benchmark_commands(sub)
    bench = opt.group(
        sub,
        "bench",
        help="benchmarks that print figures",
        description="Speed and quality benchmarks; each compares against a reference measured in the same run.",
        dest="bench_command",
        metavar="BENCHMARK",
    )
    features_commands.add_bench_commands(bench)
    training_commands.add_bench_commands(bench)
    add_bench_commands(bench)
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
    except opt.UsageError as exc:
        print(f"kycrisk {args.command}: error: {exc}", file=sys.stderr)
        return opt.EXIT_USAGE
    except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
        print(f"kycrisk {args.command}: error: {exc}", file=sys.stderr)
        return opt.EXIT_USAGE
    except ValueError as exc:
        # Invalid data (InvalidDataError carries the full validation report) or configuration.
        print(f"kycrisk {args.command}: error: {exc}", file=sys.stderr)
        return opt.EXIT_FOUND_PROBLEMS
