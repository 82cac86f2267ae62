"""The promotion gate's rules, pure: what a challenger must show, the checks and the recorded outcome.

Split from ``training.tracking`` (the one package that talks to MLflow) so that the rules can be read,
tested and reused without a tracking store: ``tracking.promote`` evaluates both models, calls
``apply_gate`` and records the ``PromotionResult`` on the registry.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any


@dataclasses.dataclass(frozen=True)
class Gate:
    """What a challenger must show to replace the champion; JSON-serialisable.

    Attributes:
        metrics: Metrics on which the challenger must be at least as good as the champion.
        tolerance: Absolute slack: pass if challenger >= champion - tolerance (<= + for
            ``lower_is_better``).
        lower_is_better: Names in ``metrics`` where smaller is better (e.g. expected cost).
        fairness_min: Bounds the challenger's own metrics must meet, e.g. ``{"fpr_ratio_min": 0.8}``.
        fairness_max: Upper bounds, e.g. ``{"fpr_ratio_max": 1.25}``.

    A missing or non-finite metric fails its check: the gate fails closed.
    """

    metrics: tuple[str, ...] = ("average_precision", "recall_at_1pct_fpr", "auc")
    tolerance: float = 0.0
    lower_is_better: tuple[str, ...] = ()
    fairness_min: Mapping[str, float] = dataclasses.field(default_factory=dict)
    fairness_max: Mapping[str, float] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "metrics", tuple(self.metrics))
        object.__setattr__(self, "lower_is_better", tuple(self.lower_is_better))
        object.__setattr__(
            self, "fairness_min", {str(k): float(v) for k, v in dict(self.fairness_min).items()}
        )
        object.__setattr__(
            self, "fairness_max", {str(k): float(v) for k, v in dict(self.fairness_max).items()}
        )
        if self.tolerance < 0 or not math.isfinite(self.tolerance):
            raise ValueError(f"tolerance must be a finite number >= 0, got {self.tolerance}")
        unknown = set(self.lower_is_better) - set(self.metrics)
        if unknown:
            raise ValueError(f"lower_is_better names metrics not in the gate: {sorted(unknown)}")

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (lists for tuples) for JSON/YAML."""
        return {
            "metrics": list(self.metrics),
            "tolerance": self.tolerance,
            "lower_is_better": list(self.lower_is_better),
            "fairness_min": dict(self.fairness_min),
            "fairness_max": dict(self.fairness_max),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Gate:
        """Inverse of ``to_dict``; unknown keys raise ``ValueError``."""
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown gate keys: {sorted(unknown)}")
        return cls(**data)


@dataclasses.dataclass(frozen=True)
class Check:
    """One comparison or bound the gate applied."""

    kind: str  # "metric" | "fairness_min" | "fairness_max" | "presence"
    metric: str
    challenger: float | None
    reference: float | None  # champion value or bound
    passed: bool


@dataclasses.dataclass(frozen=True)
class PromotionResult:
    """The outcome of ``promote``; the same facts are tagged on the challenger's version."""

    model_name: str
    decision: str  # "promoted" | "refused"
    reason: str
    challenger_version: str
    champion_version: str | None  # champion before the decision
    time_utc: str
    gate: dict[str, Any]
    metrics: dict[str, dict[str, float] | None]  # {"challenger": {...}, "champion": {...} or None}
    checks: tuple[Check, ...] = ()

    @property
    def promoted(self) -> bool:
        return self.decision == "promoted"

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON output."""
        out = dataclasses.asdict(self)
        out["checks"] = [dataclasses.asdict(c) for c in self.checks]
        return out


def finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def apply_gate(gate: Gate, challenger: Mapping[str, Any], champion: Mapping[str, Any] | None) -> list[Check]:
    """The gate's checks for a challenger's (and the champion's) metrics; pure, no MLflow.

    Args:
        gate: The gate.
        challenger: Challenger's metrics on the evaluation data.
        champion: Champion's metrics on the same data, or None when there is no champion (then
            only presence and fairness bounds are checked).

    Returns:
        One ``Check`` per gate metric and bound.
    """
    checks = []
    for metric in gate.metrics:
        mine = finite(challenger.get(metric))
        if champion is None:
            checks.append(Check("presence", metric, mine, None, mine is not None))
            continue
        theirs = finite(champion.get(metric))
        if mine is None or theirs is None:
            passed = False
        elif metric in gate.lower_is_better:
            passed = mine <= theirs + gate.tolerance
        else:
            passed = mine >= theirs - gate.tolerance
        checks.append(Check("metric", metric, mine, theirs, passed))
    for metric, bound in gate.fairness_min.items():
        mine = finite(challenger.get(metric))
        checks.append(Check("fairness_min", metric, mine, bound, mine is not None and mine >= bound))
    for metric, bound in gate.fairness_max.items():
        mine = finite(challenger.get(metric))
        checks.append(Check("fairness_max", metric, mine, bound, mine is not None and mine <= bound))
    return checks


def describe_failures(failed: list[Check]) -> str:
    words = {
        "metric": "worse than champion",
        "presence": "missing",
        "fairness_min": "below",
        "fairness_max": "above",
    }
    parts = []
    for check in failed:
        if check.challenger is None:
            parts.append(f"{check.metric} missing or not finite")
        elif check.kind == "metric":
            parts.append(f"{check.metric} {check.challenger:.6g} {words['metric']} {check.reference:.6g}")
        elif check.reference is None:
            parts.append(f"{check.metric} {words[check.kind]}")
        else:
            parts.append(
                f"{check.metric} {check.challenger:.6g} {words[check.kind]} bound {check.reference:.6g}"
            )
    return "; ".join(parts)


def compared(gate: Gate, metrics: Mapping[str, Any] | None) -> dict[str, float | None] | None:
    if metrics is None:
        return None
    keys = [*gate.metrics, *gate.fairness_min, *gate.fairness_max]
    return {key: finite(metrics.get(key)) for key in dict.fromkeys(keys)}
