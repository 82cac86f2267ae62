"""The ``kycrisk`` subcommands of the features package: generate, validate, features build/list and
the feature and screening benchmarks.

``add_commands`` and ``add_bench_commands`` add them to the parser that ``serving.cli`` composes.
The heavy imports (pandas, the engines) stay inside the commands: building the parser must stay
instant (``kycrisk --help``).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

from features import cli_options as opt

log = logging.getLogger("kycrisk")


# --- generate and validate ------------------------------------------------------------------


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
    print(json.dumps(card, indent=2) if args.json else summary_line(card, args.out))
    return opt.EXIT_OK


def summary_line(card: dict, out: str) -> str:
    """One line about a written dataset (rows per table, fraud rate) from its data card."""
    rows = ", ".join(f"{name} {count:,}" for name, count in card["rows"].items())
    return f"wrote {out}: {rows}; fraud rate {card['fraud_rate']:.2%} (see {out}/datacard.md)"


def cmd_validate(args: argparse.Namespace) -> int:
    from features.io import validate_dir

    report = validate_dir(Path(args.dir), source=args.source)
    print(report.to_json() if args.json else report.to_text())
    return opt.EXIT_OK if report.ok else opt.EXIT_FOUND_PROBLEMS


# --- features -------------------------------------------------------------------------------


def _feature_set(name: str):
    """A registered feature set, or a usage error listing the known ones."""
    from features.definitions import get_feature_set

    try:
        return get_feature_set(name)
    except KeyError as exc:
        raise opt.UsageError(str(exc.args[0])) from None


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
    return opt.EXIT_OK


def cmd_features_list(args: argparse.Namespace) -> int:
    from features.definitions import describe_feature_set

    for name, meaning in describe_feature_set(_feature_set(args.feature_set)):
        print(f"{name}\t{meaning}")
    return opt.EXIT_OK


# --- benchmarks -----------------------------------------------------------------------------


def cmd_bench_features(args: argparse.Namespace) -> int:
    from features.bench.engine import run

    return opt.print_result(run(n_transactions=args.transactions, seed=args.seed), args)


def cmd_bench_online(args: argparse.Namespace) -> int:
    from features.bench.engine import run_late, run_online, run_seed

    result = run_online(n_warm=args.warm, n_measure=args.events, feature_set=args.feature_set)
    result["seeding"] = run_seed(
        n_transactions=args.warm, feature_set=args.feature_set, data_dir=args.seed_data
    )
    if args.late_seconds is not None:
        result["late_orders"] = run_late(
            n_warm=args.warm,
            n_measure=args.events,
            feature_set=args.feature_set,
            late_seconds=args.late_seconds,
        )
    return opt.print_result(result, args)


def cmd_bench_screening(args: argparse.Namespace) -> int:
    from features.bench.screening import run

    return opt.print_result(run(n_names=args.names, n_entries=args.entries, seed=args.seed), args)


# --- parsers --------------------------------------------------------------------------------


def add_data_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``generate`` and ``validate`` to the ``kycrisk`` subcommands (``demo`` follows them)."""
    p = opt.command(
        subparsers,
        "generate",
        cmd_generate,
        help="write a synthetic marketplace dataset (five tables + data card)",
        description="Generate a synthetic marketplace: customers, transactions, account events, "
        "watchlist, labels (parquet), ground-truth patterns, and a data card "
        "(datacard.md, datacard.json). The same arguments give byte-identical files.",
    )
    opt.option(p, "customers", default=5000)
    opt.option(p, "days")
    opt.option(p, "seed", default=7)
    p.add_argument("--start", default="2026-01-01", help="first day of activity, UTC (default 2026-01-01)")
    p.add_argument("--out", required=True, help="output folder (created; existing tables are overwritten)")
    opt.option(p, "json", help="print the data card as JSON")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")

    p = opt.command(
        subparsers,
        "validate",
        cmd_validate,
        help="check a data folder against the contracts (exit 1 if invalid)",
        description="Check every table of a data folder (parquet or CSV) against the data contracts "
        "of data/README.md: columns, types, nulls, keys, references, ranges, categories. "
        "Exit 0 when valid, 1 with a report of every problem otherwise.",
    )
    p.add_argument("dir", help="folder holding customers, transactions, ... (.parquet or .csv)")
    opt.option(p, "source")
    opt.option(p, "json", help="print the report as JSON")


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``features`` (build, list) to the ``kycrisk`` subcommands."""
    fsub = opt.group(
        subparsers,
        "features",
        help="build or list history features",
        description="History features, point in time.",
        dest="features_command",
        metavar="SUBCOMMAND",
    )
    q = opt.command(
        fsub,
        "build",
        cmd_features_build,
        help="compute a feature set for every transaction of a data folder",
        description="Compute a feature set for every transaction (one row per transaction_id), point in "
        "time: a row sees only strictly earlier events and labels known before it.",
    )
    q.add_argument(
        "--data", required=True, help="data folder (kycrisk layout, or the fdh benchmark with --source fdh)"
    )
    q.add_argument("--out", required=True, help="output file (.parquet, or .csv)")
    opt.option(
        q, "feature_set", help="registered feature set (default fraud_v1; see `kycrisk features list`)"
    )
    opt.option(q, "source")
    q = opt.command(
        fsub,
        "list",
        cmd_features_list,
        help="list the features of a feature set with their meaning",
        description="Print each feature of a set with one line of meaning.",
    )
    opt.option(q, "feature_set")


def add_bench_commands(bench: argparse._SubParsersAction) -> None:
    """Add ``features``, ``screening`` and ``online`` to the ``kycrisk bench`` benchmarks."""
    q = opt.command(
        bench,
        "features",
        cmd_bench_features,
        help="batch feature engine vs polars and pandas",
        description="Windowed aggregations: our engine vs polars rolling vs pandas groupby-rolling on the same data.",
    )
    q.add_argument(
        "--transactions",
        type=opt.positive_int,
        default=5_000_000,
        help="synthetic transactions (default 5,000,000)",
    )
    opt.option(q, "seed", default=0)
    opt.option(q, "json")
    q = opt.command(
        bench,
        "screening",
        cmd_bench_screening,
        help="watchlist screening speed and recall",
        description="Screen names against a synthetic watchlist, with and without blocking.",
    )
    q.add_argument("--names", type=opt.positive_int, default=10_000, help="names to screen (default 10,000)")
    q.add_argument(
        "--entries", type=opt.positive_int, default=50_000, help="watchlist entries (default 50,000)"
    )
    opt.option(q, "seed", default=0)
    opt.option(q, "json")
    q = opt.command(
        bench,
        "online",
        cmd_bench_online,
        help="online feature engine: single-event latency on a warm sqlite state, and seeding",
        description="Replay synthetic events into a sqlite state, then time single-event feature "
        "computation and the transactional state update (p50/p99, wall clock and CPU). Then seed an "
        "empty state one event at a time and in bulk (bulk_apply) and report both times, their ratio "
        "and whether the two states are identical.",
    )
    q.add_argument(
        "--warm", type=opt.positive_int, default=30_000, help="events replayed first (default 30,000)"
    )
    q.add_argument("--events", type=opt.positive_int, default=2_000, help="events measured (default 2,000)")
    opt.option(q, "feature_set", help="feature set (default fraud_v1)")
    q.add_argument(
        "--seed-data",
        metavar="DIR",
        help="seed from this data folder (kycrisk generate output; the demo data takes about 4 "
        "minutes one event at a time) instead of --warm synthetic transactions",
    )
    q.add_argument(
        "--late-seconds",
        type=opt.positive_float,
        metavar="S",
        help="also compare orders arriving up to S seconds late with the same orders in time order "
        "(skewed sellers, 100 orders/s of event time; p50/p99 and late/in-order ratios, one run)",
    )
    opt.option(q, "json")


__all__ = ["add_bench_commands", "add_commands", "add_data_commands", "summary_line"]
