"""Replay of a logged decision: recompute it from the logged features with the logged model version.

An auditor months later needs to show that a decision followed from its inputs: the record's
model features (logged after the Pipeline's preparation steps, so no personal data), the model
version it names and that version's tier policy. The replay loads exactly that registered
version (after the trusted-type review), runs the remaining Pipeline steps (encoding and the
calibrated model) on the logged features, applies the policy and compares probability, tier and
action with the record.

Two kinds of decisions replay:

- ``score`` (an order, ``kycrisk-fraud``): the policy's hard rules read the order flags
  (``training.fraud.order_flags``) of the logged features;
- ``onboard`` by the risk-tier model (``kycrisk-risk-tier``): the final tier and action are
  ``training.risk.decide_customers`` on the logged features (score tier, hard rules, and the review
  rules with the settings in the model's metadata). A rules-only onboarding (no model) has
  nothing to replay.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from serving.decision_log import DecisionLog
from training import fraud, risk, tracking
from training.names import FRAUD_MODEL
from training.names import RISK_MODEL as RISK_TIER_MODEL
from training.policy import TierPolicy

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
    """Recompute one scoring or risk-tier onboarding decision from its logged features and model version.

    Args:
        log_path: the decision log (sqlite file).
        decision_id: the decision to replay.

    Returns:
        A ``ReplayReport``; ``matches`` says whether probability, tier and action agree.

    Raises:
        FileNotFoundError: no log at ``log_path``.
        KeyError: no such decision in the log.
        ValueError: the decision was made by no model (a rules-only onboarding).
    """
    path = Path(log_path)
    if not path.is_file():
        raise FileNotFoundError(f"decision log {path} not found")
    with DecisionLog(path) as log:
        record = log.get(decision_id)
    if record is None:
        raise KeyError(f"no decision {decision_id!r} in {path}")
    model = {"score": FRAUD_MODEL, "onboard": RISK_TIER_MODEL}.get(record.kind)
    version = record.models.get(model) if model else None
    if version is None or record.score is None:
        raise ValueError(
            f"decision {decision_id} ({record.kind}) was not scored by {FRAUD_MODEL} or {RISK_TIER_MODEL}: "
            "nothing to replay"
        )
    tracking.configure()
    pipeline, metadata = tracking.load_pipeline_and_metadata(f"models:/{model}/{version}")
    n_prepare = int(metadata["n_prepare_steps"])
    rest = pipeline[n_prepare:]
    columns = list(rest[0].feature_names_in_)
    missing = [c for c in columns if c not in record.features]
    if missing:
        raise ValueError(f"decision {decision_id} lacks logged features {missing[:5]}")
    frame = pd.DataFrame([{c: record.features[c] for c in columns}])
    policy = TierPolicy.from_dict(metadata["tier_policy"])
    if model == FRAUD_MODEL:
        features = fraud.categoricals_as_text(frame)
        probability = float(rest.predict_proba(features)[:, 1][0])
        decision = policy.decide(probability, fraud.order_flags(features).iloc[0].to_dict())
        tier, action = decision.tier, decision.action
    else:
        features = risk.categoricals_as_text(frame)
        probability = float(rest.predict_proba(features)[:, 1][0])
        rules = metadata.get("review_rules") or {}
        final = risk.decide_customers(
            policy,
            np.array([probability]),
            features,
            outgrown_volume_ratio=float(rules.get("outgrown_volume_ratio", risk.OUTGROWN_VOLUME_RATIO)),
            outgrown_min_review_age_days=float(rules.get("outgrown_min_review_age_days", 0.0)),
        ).iloc[0]
        tier, action = str(final["tier"]), str(final["action"])
    return ReplayReport(
        decision_id=decision_id,
        model=model,
        version=str(version),
        logged_score=float(record.score),
        replayed_score=probability,
        logged_tier=record.tier,
        replayed_tier=tier,
        logged_action=record.action,
        replayed_action=action,
    )
