"""The models the service serves: the champions of the fraud and risk-tier models, loaded from the MLflow registry.

Split from ``serving.scorer``: which registered versions are served, and what a missing or untrusted
one means (the fraud champion is required; the risk-tier champion required or optional), is a
decision of its own that the governance and scale-out work will change without touching scoring.
"""

from __future__ import annotations

import logging

from serving.errors import ModelUnavailable
from training import tracking
from training.names import FRAUD_MODEL, RISK_MODEL

__all__ = ["load_champions"]

log = logging.getLogger(__name__)


def load_champions(
    tracking_uri: str | None = None, risk_tier: str = "optional"
) -> tuple[tracking.LoadedModel, tracking.LoadedModel | None]:
    """The ``champion`` of the fraud model, and of the risk-tier model when there is one.

    Args:
        tracking_uri: MLflow tracking URI (default: ``MLFLOW_TRACKING_URI``, then the project store).
        risk_tier: ``"required"``: a missing or untrusted risk-tier champion is a ``ModelUnavailable``
            too; ``"optional"``: it is logged and ``None`` is returned in its place (onboarding then
            decides by rules).

    Returns:
        ``(fraud model, risk-tier model or None)``.

    Raises:
        ModelUnavailable: no fraud champion, or an artifact fails the trusted-type review.
        ValueError: ``risk_tier`` is neither ``"required"`` nor ``"optional"``.
    """
    tracking.configure(tracking_uri)
    try:
        model = tracking.load_model(FRAUD_MODEL, tracking.CHAMPION)
    except LookupError as exc:
        raise ModelUnavailable(
            f"no {tracking.CHAMPION!r} version of {FRAUD_MODEL} in {tracking.resolve_tracking_uri(tracking_uri)}: "
            "train and promote one first (kycrisk train)"
        ) from exc
    except ValueError as exc:
        raise ModelUnavailable(f"refusing to load the {FRAUD_MODEL} champion: {exc}") from exc
    if risk_tier not in ("required", "optional"):
        raise ValueError(f"risk_tier must be 'required' or 'optional', got {risk_tier!r}")
    risk_model = None
    try:
        risk_model = tracking.load_model(RISK_MODEL, tracking.CHAMPION)
    except LookupError as exc:
        if risk_tier == "required":
            raise ModelUnavailable(
                f"no {tracking.CHAMPION!r} version of {RISK_MODEL} in "
                f"{tracking.resolve_tracking_uri(tracking_uri)}: train and promote one (kycrisk train), "
                "or allow onboarding by rules only (KYCRISK_RISK_TIER=optional)"
            ) from exc
        log.info("no %s champion: onboarding decides by hard rules and a simple score", RISK_MODEL)
    except Exception as exc:
        if risk_tier == "required":
            raise ModelUnavailable(f"refusing to load the {RISK_MODEL} champion: {exc}") from exc
        # optional: a broken or untrusted risk-tier model must not stop order scoring
        log.warning("not using %s: %s", RISK_MODEL, exc)
    return model, risk_model
