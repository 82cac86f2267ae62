"""The command line's shared vocabulary: exit codes, ``UsageError``, argument types and the options
several subcommands share.

It sits in ``features``, the lowest package, so that the subcommands of every package
(``features.commands``, ``training.commands``, ``serving.cli``) can use it without importing
against the direction features <- training <- serving. Only the standard library is imported
here: ``kycrisk --help`` must stay instant.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

EXIT_OK, EXIT_FOUND_PROBLEMS, EXIT_USAGE = 0, 1, 2
SOURCES = ("kycrisk", "fdh")  # input layouts: ours, and the Fraud Detection Handbook's files


class UsageError(Exception):
    """Bad arguments or unreadable input: reported on stderr with exit code 2."""


def _number(text: str, kind: type, what: str) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a number")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


# Options that several subcommands share: flag and add_argument keywords; ``{default}`` in a help
# text is filled with the default the subcommand gives (``option(parser, "seed", default=7)``).
OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "source": (
        "--source",
        {"choices": SOURCES, "default": "kycrisk", "help": "input layout (default kycrisk)"},
    ),
    "customers": ("--customers", {"type": positive_int, "help": "number of customers (default {default})"}),
    "days": (
        "--days",
        {"type": positive_int, "default": 365, "help": "days of activity (default {default})"},
    ),
    "seed": ("--seed", {"type": non_negative_int, "help": "random seed (default {default})"}),
    "json": ("--json", {"action": "store_true", "help": "one-line JSON"}),
    "config": ("--config", {"help": "training configuration file (default training/config.toml)"}),
    "model": ("--model", {"choices": ("all", "fraud", "risk"), "default": "all"}),
    "feature_set": (
        "--feature-set",
        {"default": "fraud_v1", "help": "registered feature set (default fraud_v1)"},
    ),
    "tracking_uri": ("--tracking-uri", {"default": None, "help": "MLflow tracking URI of the champion"}),
    "log": (
        "--log",
        {"default": "state/decisions.sqlite", "help": "decision log file (default state/decisions.sqlite)"},
    ),
}


def option(parser: argparse.ArgumentParser, name: str, **changes: Any) -> None:
    """Add the shared option ``name`` (``OPTIONS``) to ``parser``, with some keywords changed."""
    flag, keywords = OPTIONS[name]
    keywords = {**keywords, **changes}
    if "{default" in keywords.get("help", ""):
        keywords["help"] = keywords["help"].format(default=keywords.get("default"))
    parser.add_argument(flag, **keywords)


def command(
    subparsers: argparse._SubParsersAction,
    name: str,
    func: Callable[[argparse.Namespace], int],
    help: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """A subcommand ``name`` that runs ``func(args)``."""
    parser = subparsers.add_parser(name, help=help, description=description)
    parser.set_defaults(func=func)
    return parser


def group(
    subparsers: argparse._SubParsersAction, name: str, help: str, description: str, dest: str, metavar: str
) -> argparse._SubParsersAction:
    """A subcommand ``name`` made of subcommands (one of them required); returns their subparsers."""
    parser = subparsers.add_parser(name, help=help, description=description)
    return parser.add_subparsers(dest=dest, required=True, metavar=metavar)


def print_result(result: Any, args: argparse.Namespace) -> int:
    """Print a benchmark's result as JSON, on one line with ``--json``, indented otherwise."""
    print(json.dumps(result, indent=None if args.json else 2))
    return EXIT_OK


__all__ = [
    "EXIT_FOUND_PROBLEMS",
    "EXIT_OK",
    "EXIT_USAGE",
    "OPTIONS",
    "SOURCES",
    "UsageError",
    "command",
    "group",
    "non_negative_int",
    "option",
    "positive_float",
    "positive_int",
    "print_result",
]
