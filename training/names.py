"""Registered model and experiment names: the one place they are spelled.

Kept free of imports so that the serving side (``serving.scorer``, ``serving.replay``) can read the
names without pulling in the training stack (pandas, LightGBM, plotting).
"""

from __future__ import annotations

FRAUD_MODEL = "kycrisk-fraud"
RISK_MODEL = "kycrisk-risk-tier"
FRAUD_EXPERIMENT = "kycrisk-fraud"
RISK_EXPERIMENT = "kycrisk-risk-tier"
