"""The ``kycrisk`` command line: one subcommand per job, logs on stderr, results on stdout.

Exit codes: 0 success; 1 the job ran and found a problem (e.g. invalid data); 2 bad usage or
unreadable input (argparse's convention).
"""

from __future__ import annotations

import argparse
import json
import logging
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
    from features.validation import validate_dir

    report = validate_dir(Path(args.dir), source=args.source)
    print(report.to_json() if args.json else report.to_text())
    return EXIT_OK if report.ok else EXIT_FOUND_PROBLEMS


# --- demo -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    """The main job on the embedded defaults: generate a marketplace and validate it."""
    from features.synthetic import generate, write_dataset
    from features.validation import validate_dir

    workdir = Path(args.workdir)
    data_dir = workdir / "data"
    started = time.perf_counter()
    log.info("step 1/2: generating %d customers over %d days into %s", args.customers, args.days, data_dir)
    tables = generate(n_customers=args.customers, days=args.days, seed=args.seed, progress=True)
    card = write_dataset(tables, data_dir, seed=args.seed)
    print(_summary_line(card, str(data_dir)))
    log.info("step 2/2: validating %s", data_dir)
    report = validate_dir(data_dir)
    print(report.to_text())
    if not report.ok:
        return EXIT_FOUND_PROBLEMS
    print(f"demo finished in {time.perf_counter() - started:.1f} s; data card: {data_dir / 'datacard.md'}")
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
    p.add_argument("--days", type=_positive_int, default=120, help="days of activity (default 120)")
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
    p.add_argument("--source", choices=("kycrisk", "fdh"), default="kycrisk", help="input layout (default kycrisk)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser(
        "demo",
        help="run the main job end to end on the embedded defaults",
        description="The main job on the embedded defaults (no server to install): generate a "
        "synthetic marketplace and validate it against the data contracts.",
    )
    p.add_argument("--workdir", default="runs/demo", help="folder for everything the demo writes (default runs/demo)")
    p.add_argument("--customers", type=_positive_int, default=5000, help="number of customers (default 5000)")
    p.add_argument("--days", type=_positive_int, default=120, help="days of activity (default 120)")
    p.add_argument("--seed", type=_non_negative_int, default=7, help="random seed (default 7)")
    p.set_defaults(func=cmd_demo)

    return parser


def main(argv: list[str] | None = None) -> int:
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
