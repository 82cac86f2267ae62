"""The risk-tier model's rules beside the score: review rules, forced reviews, the final decision and what the rules did.

Split from the model (``training.risk``): these functions read model features and a policy, never
a Pipeline, and the service (``serving``) applies them to one customer exactly as training does.
The rule table is in ``training.risk``'s docstring.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from features.customer import PARTY, customer_flags
from training.config import Config, RiskConfig, as_config
from training.policy import ACTIONS, TIERS, TierPolicy

# Default of ``[risk] outgrown_volume_ratio`` (training.config): 30-day volume at least twice the
# declared monthly volume means the KYC profile no longer describes the customer (ask for documents).
OUTGROWN_VOLUME_RATIO = RiskConfig.outgrown_volume_ratio
# Review rules applied after the policy (code -> (tier, action, message)).
REVIEW_RULES = {
    "PEP_EDD": (
        "medium",
        "review",
        "The customer is a politically exposed person (confirmed watchlist PEP match): enhanced due "
        "diligence by a reviewer. Being a PEP is not a reason to reject or report.",
    ),
    "KYC_OUTGROWN": (
        "medium",
        "review",
        "Activity in the last 30 days is {ratio:g} times or more the monthly volume declared at the last "
        "KYC review: ask for updated documents (KYC refresh).",
    ),
}
_TIER_RANK = {t: i for i, t in enumerate(TIERS)}
_ACTION_RANK = {a: i for i, a in enumerate(ACTIONS)}


def review_rule_settings(config: Config | Mapping[str, Any] | None = None) -> dict[str, float]:
    """Settings of the review rules from ``[risk]`` (defaults: ratio 2, no minimum review age)."""
    return as_config(config).risk.review_rule_settings()


def review_flags(
    prepared: pd.DataFrame,
    outgrown_volume_ratio: float = OUTGROWN_VOLUME_RATIO,
    outgrown_min_review_age_days: float = 0.0,
) -> pd.DataFrame:
    """Flags of the review rules that ``training.policy`` does not have yet.

    Args:
        prepared: ``model_features`` output: ``customer_screen_status``,
            ``customer_screen_list_type``, ``customer_volume_vs_declared`` and (for a minimum
            review age) ``customer_days_since_kyc_review``.
        outgrown_volume_ratio: 30-day volume over declared monthly volume from which KYC counts
            as outgrown.
        outgrown_min_review_age_days: the outgrown rule fires only when the last KYC review is
            at least this old (0: any age). Measured on ``kycrisk generate --customers 5000 --days
            365 --seed 7`` (all snapshots): ratio 2 alone fires on 5.0% of snapshots with 74% recall
            of the outgrown-KYC pattern; with 365 days it fires on 3.5% at the same recall.

    Returns:
        DataFrame with the index of ``prepared`` and bool columns ``pep_confirmed`` (a PEP hit)
        and ``kyc_outgrown`` (False when nothing was declared).
    """
    index = prepared.index
    missing = pd.Series(None, index=index, dtype="object")
    status = prepared.get(f"{PARTY}_screen_status", missing)
    lists = prepared.get(f"{PARTY}_screen_list_type", missing)
    pep = (status.eq("hit") & lists.eq("pep")).fillna(False).astype(bool)
    ratio = prepared.get(f"{PARTY}_volume_vs_declared", pd.Series(np.nan, index=index)).astype("float64")
    outgrown = (ratio >= float(outgrown_volume_ratio)).fillna(False).astype(bool)
    if outgrown_min_review_age_days > 0:
        age = prepared.get(f"{PARTY}_days_since_kyc_review", pd.Series(np.nan, index=index)).astype("float64")
        outgrown &= (age >= float(outgrown_min_review_age_days)).fillna(False).astype(bool)
    return pd.DataFrame({"pep_confirmed": pep.to_numpy(), "kyc_outgrown": outgrown.to_numpy()}, index=index)


def forced_review(flags: pd.DataFrame, review: pd.DataFrame | None = None) -> np.ndarray:
    """True where any hard or review rule makes the snapshot at least medium, whatever its score.

    Args:
        flags: ``features.customer.customer_flags`` output.
        review: ``review_flags`` output (same rows), or None.

    Returns:
        bool array, one value per row.
    """

    def fired(column: str, fire_on: bool) -> np.ndarray:
        if column not in flags.columns:
            return np.zeros(len(flags), dtype=bool)
        values = pd.array(flags[column].to_numpy(dtype=object), dtype="boolean")
        hit = values if fire_on else ~values
        return np.asarray(hit.fillna(False), dtype=bool)

    out = (
        fired("screen_confirmed", True)
        | fired("screen_possible", True)
        | fired("doc_expired", True)
        | fired("doc_check_digit_valid", False)
        | fired("doc_typo_likely", True)
    )
    if review is not None:
        out |= review.to_numpy(dtype=bool).any(axis=1)
    return out


def apply_review_rules(decisions: pd.DataFrame, review: pd.DataFrame) -> pd.DataFrame:
    """Raise ``TierPolicy.decide_frame`` decisions with the review rules ``PEP_EDD`` and ``KYC_OUTGROWN``.

    Each rule implies (medium, review) (``REVIEW_RULES``). Like the policy's own rules it only
    raises: the final tier is the higher of the decision's tier and medium, the final action the
    stronger of its action and ``review``; so a PEP is never reported or rejected because of being
    a PEP, and a sanctions ``report`` or a score ``reject`` stays. The rule's code is appended to
    ``reason_codes``. Decisive codes: when the decision does not change, the rule's code is added
    to them if (medium, review) is the final outcome; when it changes (low/approve or
    medium/ask_to_correct → medium/review), the firing review rules alone are decisive (no earlier
    reason implied medium/review, or the action would already have been review).

    Args:
        decisions: ``TierPolicy.decide_frame`` output (``tier``, ``action``, ``reason_codes``,
            ``decisive_codes``).
        review: ``review_flags`` output with the same index.

    Returns:
        A new DataFrame with the columns and index of ``decisions``; ``decisions`` is not modified.

    Raises:
        ValueError: the two frames are not aligned.
    """
    if len(decisions) != len(review) or not decisions.index.equals(review.index):
        raise ValueError("decisions and review flags must have the same rows (same index)")
    out = decisions.copy()
    fired = {
        "PEP_EDD": review["pep_confirmed"].to_numpy(bool),
        "KYC_OUTGROWN": review["kyc_outgrown"].to_numpy(bool),
    }
    any_fired = np.zeros(len(out), dtype=bool)
    for hit in fired.values():
        any_fired |= hit
    if not any_fired.any():
        return out
    old_tier = out["tier"].map(_TIER_RANK).to_numpy()
    old_action = out["action"].map(_ACTION_RANK).to_numpy()
    new_tier = np.maximum(old_tier, _TIER_RANK["medium"])
    new_action = np.maximum(old_action, _ACTION_RANK["review"])
    changed = any_fired & ((new_tier != old_tier) | (new_action != old_action))
    final_is_medium_review = (new_tier == _TIER_RANK["medium"]) & (new_action == _ACTION_RANK["review"])
    reasons = out["reason_codes"].to_numpy(dtype=object).copy()
    decisive = out["decisive_codes"].to_numpy(dtype=object).copy()
    for i in np.flatnonzero(any_fired):
        codes = [code for code, hit in fired.items() if hit[i]]
        reasons[i] = "|".join([*filter(None, str(reasons[i]).split("|")), *codes])
        if changed[i]:
            decisive[i] = "|".join(codes)
        elif final_is_medium_review[i]:
            decisive[i] = "|".join([*filter(None, str(decisive[i]).split("|")), *codes])
    out["tier"] = np.asarray(TIERS, dtype=object)[np.where(any_fired, new_tier, old_tier)]
    out["action"] = np.asarray(ACTIONS, dtype=object)[np.where(any_fired, new_action, old_action)]
    out["reason_codes"] = reasons
    out["decisive_codes"] = decisive
    return out


def review_rule_message(code: str, outgrown_volume_ratio: float = OUTGROWN_VOLUME_RATIO) -> str:
    """Plain-language sentence of a review rule (``REVIEW_RULES``)."""
    return REVIEW_RULES[code][2].format(ratio=outgrown_volume_ratio)


def decide_customers(
    policy: TierPolicy,
    scores: np.ndarray,
    prepared: pd.DataFrame,
    outgrown_volume_ratio: float = OUTGROWN_VOLUME_RATIO,
    outgrown_min_review_age_days: float = 0.0,
) -> pd.DataFrame:
    """Final tier, action and reasons of snapshots: score tier, hard rules, then review rules.

    Args:
        policy: the model's tier policy.
        scores: calibrated probabilities (``predict_proba``), one per row of ``prepared``.
        prepared: ``model_features(pipeline, frame)`` (the document flags are profile outputs).
        outgrown_volume_ratio, outgrown_min_review_age_days: see ``review_flags`` (a logged
            model carries them in its metadata under ``review_rules``).

    Returns:
        ``TierPolicy.decide_frame`` columns (``tier``, ``action``, ``reason_codes``,
        ``decisive_codes``) after ``apply_review_rules``, with the index of ``prepared``.
    """
    decisions = policy.decide_frame(scores, customer_flags(prepared))
    review = review_flags(prepared, outgrown_volume_ratio, outgrown_min_review_age_days)
    return apply_review_rules(decisions, review)


def rule_outcomes(
    decisions: pd.DataFrame,
    flags: pd.DataFrame,
    review: pd.DataFrame,
    review_y: np.ndarray,
    patterns: pd.DataFrame | None,
) -> tuple[pd.DataFrame, dict[str, float]]:
    """What the hard and review rules did on the test snapshots, checked against ground truth.

    Metrics (``rules.*``): for each rule code the share of snapshots where it fired
    (``rules.{CODE}.share``) and where it was decisive; ``rules.typo_decisive_reject`` (a typo as
    the decisive reason of a rejection: 0 by construction); with ground truth,
    ``rules.honest_typo.*`` (reject share, ask_to_correct share, typo flag share: honest typos
    must never be rejected), ``rules.sanctioned.*`` (high share overall and once listed),
    ``rules.pep.*`` (medium-or-higher and report shares) and ``rules.outgrown_kyc.review_share``.
    ``review_rules.precision`` / ``.recall`` compare PEP_EDD | KYC_OUTGROWN with the review
    labels (``customer_review_targets``, every label known now).

    Returns:
        A table (one row per reason code: ``code``, ``fired``, ``share``, ``decisive``) and the
        metrics.
    """
    codes = decisions["reason_codes"].str.split("|")
    decisive = decisions["decisive_codes"].str.split("|")
    n = len(decisions)
    all_codes = sorted({c for row in codes for c in row if c})
    rows = []
    out: dict[str, float] = {}
    for code in all_codes:
        fired = codes.map(lambda row, code=code: code in row).to_numpy(bool)
        dec = decisive.map(lambda row, code=code: code in row).to_numpy(bool)
        rows.append(
            {"code": code, "fired": int(fired.sum()), "share": fired.mean(), "decisive": int(dec.sum())}
        )
        out[f"rules.{code}.share"] = float(fired.mean()) if n else math.nan
        out[f"rules.{code}.decisive_share"] = float(dec.mean()) if n else math.nan
    typo_rejects = (
        decisive.map(lambda row: "DOC_TYPO_LIKELY" in row).to_numpy(bool)
        & decisions["action"].eq("reject").to_numpy()
    )
    out["rules.typo_decisive_reject"] = float(typo_rejects.sum())
    rule_fired = review.to_numpy(dtype=bool).any(axis=1)
    y = np.asarray(review_y, dtype=bool)
    out["review_rules.fired_share"] = float(rule_fired.mean()) if n else math.nan
    out["review_rules.precision"] = float(y[rule_fired].mean()) if rule_fired.any() else math.nan
    out["review_rules.recall"] = float(rule_fired[y].mean()) if y.any() else math.nan
    if patterns is not None and len(patterns):
        pattern = patterns["pattern"].to_numpy(dtype=object)
        stage = patterns["stage"].to_numpy(dtype=object)
        action = decisions["action"].to_numpy(dtype=object)
        tier = decisions["tier"].to_numpy(dtype=object)
        typo = pattern == "honest_typo"
        if typo.any():
            typo_flag = np.asarray(
                pd.array(flags["doc_typo_likely"].to_numpy(object), dtype="boolean").fillna(False)
            )
            out["rules.honest_typo.snapshots"] = float(typo.sum())
            out["rules.honest_typo.reject_share"] = float((action[typo] == "reject").mean())
            out["rules.honest_typo.ask_to_correct_share"] = float((action[typo] == "ask_to_correct").mean())
            out["rules.honest_typo.typo_flag_share"] = float(typo_flag[typo].mean())
        sanctioned = stage == "sanctioned"
        if sanctioned.any():
            listed = sanctioned & flags["screen_confirmed"].to_numpy(bool)
            out["rules.sanctioned.snapshots"] = float(sanctioned.sum())
            out["rules.sanctioned.high_share"] = float((tier[sanctioned] == "high").mean())
            out["rules.sanctioned.listed_snapshots"] = float(listed.sum())
            if listed.any():
                out["rules.sanctioned.listed_high_share"] = float((tier[listed] == "high").mean())
                out["rules.sanctioned.listed_report_share"] = float((action[listed] == "report").mean())
        pep = stage == "pep"
        if pep.any():
            out["rules.pep.snapshots"] = float(pep.sum())
            out["rules.pep.medium_or_higher_share"] = float((tier[pep] != "low").mean())
            out["rules.pep.report_share"] = float((action[pep] == "report").mean())
        outgrown = pattern == "outgrown_kyc"
        if outgrown.any():
            out["rules.outgrown_kyc.snapshots"] = float(outgrown.sum())
            out["rules.outgrown_kyc.review_share"] = float((action[outgrown] == "review").mean())
            out["rules.outgrown_kyc.rule_share"] = float(
                review["kyc_outgrown"].to_numpy(bool)[outgrown].mean()
            )
    table = pd.DataFrame(rows, columns=["code", "fired", "share", "decisive"])
    return table, out
