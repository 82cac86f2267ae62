"""Replay of a logged decision: recompute it from the logged features with the logged model version.

An auditor months later needs to show that a decision followed from its inputs: the record's
model features (logged after the Pipeline's preparation steps, so no personal data), the model
version it names and that version's tier policy. The replay loads exactly that registered
version (after the trusted-type review), runs the remaining Pipeline steps (encoding and the
calibrated model) on the logged features, applies the policy and compares probability, tier and
action with the record.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from serving.decision_log import DecisionLog
from training import fraud, tracking
from training.policy import TierPolicy

FRAUD_MODEL = "kycrisk-fraud"
# Probabilities are recomputed with the same code and model: they must agree to rounding noise.
TOLERANCE = 1e-12


@dataclass(frozen=True)
class ReplayReport:
    """The outcome of a replay: what was logged, what was recomputed, and whether they match."""

    decision_id: str
    model: str
    version: str
    logged_score: float
    replayed_score: float
    logged_tier: str
    replayed_tier: str
    logged_action: str
    replayed_action: str

    @property
    def matches(self) -> bool:
        return (
            abs(self.replayed_score - self.logged_score) <= TOLERANCE
            and self.replayed_tier == self.logged_tier
            and self.replayed_action == self.logged_action
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "matches": self.matches}

    def __str__(self) -> str:
        verdict = "MATCHES" if self.matches else "DIFFERS"
        return (
            f"decision {self.decision_id}: {verdict} ({self.model} version {self.version}): "
            f"probability logged {self.logged_score!r} / replayed {self.replayed_score!r}; "
            f"tier {self.logged_tier} / {self.replayed_tier}; action {self.logged_action} / {self.replayed_action}"
        )


def replay_decision(log_path: str | Path, decision_id: str) -> ReplayReport:
    """Recompute one scoring decision from its logged features and model version.

    Args:
        log_path: the decision log (sqlite file).
        decision_id: the decision to replay.

    Returns:
        A ``ReplayReport``; ``matches`` says whether probability, tier and action agree.

    Raises:
        FileNotFoundError: no log at ``log_path``.
        KeyError: no such decision in the log.
        ValueError: the decision was not made by the fraud model (e.g. a rules-only onboarding).
    """
    path = Path(log_path)
    if not path.is_file():
        raise FileNotFoundError(f"decision log {path} not found")
    with DecisionLog(path) as log:
        record = log.get(decision_id)
    if record is None:
        raise KeyError(f"no decision {decision_id!r} in {path}")
    version = record.models.get(FRAUD_MODEL)
    if record.kind != "score" or version is None or record.score is None:
        raise ValueError(
            f"decision {decision_id} ({record.kind}) was not scored by {FRAUD_MODEL}: nothing to replay"
        )
    tracking.configure()
    pipeline, metadata = tracking.load_pipeline_and_metadata(f"models:/{FRAUD_MODEL}/{version}")
    n_prepare = int(metadata["n_prepare_steps"])
    rest = pipeline[n_prepare:]
    columns = list(rest[0].feature_names_in_)
    missing = [c for c in columns if c not in record.features]
    if missing:
        raise ValueError(f"decision {decision_id} lacks logged features {missing[:5]}")
    features = fraud.categoricals_as_text(pd.DataFrame([{c: record.features[c] for c in columns}]))
    probability = float(rest.predict_proba(features)[:, 1][0])
    policy = TierPolicy.from_dict(metadata["tier_policy"])
    decision = policy.decide(probability, fraud.order_flags(features).iloc[0].to_dict())
    return ReplayReport(
        decision_id=decision_id,
        model=FRAUD_MODEL,
        version=str(version),
        logged_score=float(record.score),
        replayed_score=probability,
        logged_tier=record.tier,
        replayed_tier=decision.tier,
        logged_action=record.action,
        replayed_action=decision.action,
    )
