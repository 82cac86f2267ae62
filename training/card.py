"""The pieces both model cards share: the header line, metric formatting and the segment rows.

Each model writes its own card (``training.fraud.model_card``, ``training.risk.card``); what is
the same in both is kept here so that the two cards stay alike where they should.
"""

from __future__ import annotations

import getpass
import platform
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import numpy as np


def header(model_name: str, model_uri: str) -> str:
    """Title and provenance line: who trained which model where and when."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    return (
        f"# Model card: {model_name}\n\n"
        f"Trained {now} by {getpass.getuser()} on {platform.node()}; model `{model_uri}`."
    )


def formatter(metrics: Mapping[str, float | None]) -> Callable[[str], str]:
    """``fmt(key)``: the metric with four decimals, ``n/a`` when missing or not finite."""

    def fmt(key: str) -> str:
        value = metrics.get(key)
        return "n/a" if value is None or not np.isfinite(value) else f"{value:.4f}"

    return fmt


def segment_keys(metrics: Mapping[str, float], prefixes: Sequence[str], suffixes: Sequence[str]) -> list[str]:
    """Sorted metric keys of the segment table (``segment.<name>.<value>.fpr`` and the like)."""
    return [k for k in sorted(metrics) if k.startswith(tuple(prefixes)) and k.endswith(tuple(suffixes))]
