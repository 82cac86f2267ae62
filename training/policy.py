"""The risk-tier policy: thresholds chosen from expected cost, hard rules, and per-entity decisions.

Tiers and actions: ``low`` → ``approve``; ``medium`` → ``review`` (manual review, ask for
documents) or ``ask_to_correct`` (a likely typo in a document number); ``high`` → ``reject`` (or
``review`` when the policy's ``high_action`` says so) or ``report`` (confirmed sanctions match).

How a decision is made (``TierPolicy.decide``): the fraud probability gives a score tier
(``>= high_threshold`` high, ``>= medium_threshold`` medium, else low); every hard rule that
fires implies a (tier, action) of its own; the final tier is the highest implied tier and the
final action the strongest implied action (``report`` > ``reject`` > ``review`` >
``ask_to_correct`` > ``approve``). Hard rules only ever raise a decision:

================== ===================================================== ====== ==============
rule (reason code) fires when (flag)                                     tier   action
================== ===================================================== ====== ==============
WATCHLIST_CONFIRMED ``screen_confirmed`` is true                          high   report
WATCHLIST_POSSIBLE ``screen_possible`` is true                           medium review
DOC_EXPIRED        ``doc_expired`` is true                               medium review
DOC_INVALID        ``doc_check_digit_valid`` is false, no likely typo     medium review
DOC_TYPO_LIKELY    ``doc_typo_likely`` is true                           medium ask_to_correct
================== ===================================================== ====== ==============

Only a confirmed watchlist match raises the tier to high; a document problem never does, so a
customer is never rejected because of a typo (or an expired document) alone. Every reason
carries ``decisive``: whether it produced the final tier and action, so that a rejection driven
by the score shows its typo reason as not decisive.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

import numpy as np
import pandas as pd

TIERS = ("low", "medium", "high")
# Strength order: the strongest implied action wins.
ACTIONS = ("approve", "ask_to_correct", "review", "reject", "report")
HIGH_ACTIONS = ("reject", "review")
FLAGS = ("screen_confirmed", "screen_possible", "doc_expired", "doc_check_digit_valid", "doc_typo_likely")
POLICY_KIND = "kycrisk.tier_policy"
POLICY_SCHEMA = 1

_TIER_RANK = {t: i for i, t in enumerate(TIERS)}
_ACTION_RANK = {a: i for i, a in enumerate(ACTIONS)}
# Rule code -> (flag it reads, value that fires it, tier, action); order = order of reasons.
_RULES = {
    "WATCHLIST_CONFIRMED": ("screen_confirmed", True, "high", "report"),
    "WATCHLIST_POSSIBLE": ("screen_possible", True, "medium", "review"),
    "DOC_EXPIRED": ("doc_expired", True, "medium", "review"),
    "DOC_INVALID": ("doc_check_digit_valid", False, "medium", "review"),
    "DOC_TYPO_LIKELY": ("doc_typo_likely", True, "medium", "ask_to_correct"),
}
_RULE_MESSAGES = {
    "WATCHLIST_CONFIRMED": "Screening confirmed a match against a sanctions or watchlist entry: high risk, report it to compliance.",
    "WATCHLIST_POSSIBLE": "Screening found a possible watchlist match: a manual review must clear it before approval.",
    "DOC_EXPIRED": "The identity document has expired: ask for a valid document (manual review).",
    "DOC_INVALID": "The document number fails its check digit and no simple typo explains it: manual review.",
    "DOC_TYPO_LIKELY": (
        "The document number fails its check digit, but swapping two adjacent characters fixes it and the "
        "rest of the profile is consistent: ask the customer to correct the number."
    ),
}


@dataclass(frozen=True)
class HardRules:
    """Which hard rules the policy applies (all on by default); a rule that is off is ignored."""

    watchlist_confirmed: bool = True
    watchlist_possible: bool = True
    doc_expired: bool = True
    doc_invalid: bool = True
    doc_typo_likely: bool = True

    def enabled(self, code: str) -> bool:
        return bool(getattr(self, code.lower()))


@dataclass(frozen=True)
class Reason:
    """Why a decision came out as it did.

    Attributes:
        code: reason code (``SCORE_HIGH``, ``WATCHLIST_POSSIBLE``, ...).
        message: one plain-language sentence for reviewers and auditors.
        decisive: whether this reason produced the final tier and action.
    """

    code: str
    message: str
    decisive: bool


@dataclass(frozen=True)
class Decision:
    """The policy's answer for one entity.

    Attributes:
        tier: ``low``, ``medium`` or ``high``.
        action: ``approve``, ``ask_to_correct``, ``review``, ``reject`` or ``report``.
        reasons: the score reason first, then every hard rule that fired.
        probability: the fraud probability decided on.
        policy_version: version of the policy that decided.
    """

    tier: str
    action: str
    reasons: tuple[Reason, ...]
    probability: float
    policy_version: str

    def to_dict(self) -> dict:
        return asdict(self) | {"reasons": [asdict(r) for r in self.reasons]}


def _fired(value, fire_on: bool) -> bool:
    """Whether one flag value fires its rule; ``None`` / NaN means the check was not run."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return False
    return bool(value) is fire_on


@dataclass(frozen=True)
class TierPolicy:
    """A versioned risk-tier policy: score thresholds, the costs they were chosen from, hard rules.

    Attributes:
        medium_threshold: fraud probability from which an entity is at least medium.
        high_threshold: fraud probability from which an entity is high (>= medium_threshold; a
            value above every possible score, e.g. > 1, switches the tier off).
        review_cost: cost of one manual review (USD).
        review_capacity: share of entities the review team can handle (0..1).
        reject_cost: fixed cost of rejecting a good customer (support, churn; USD).
        reject_margin: share of the amount lost when a good order is rejected (the margin).
        review_detection_rate: share of frauds a manual review stops.
        high_action: action for a high score: ``reject`` or ``review``.
        rules: which hard rules apply.
        version: version of this policy (travels with the model and every decision).
        summary: what the thresholds were chosen on (validation counts, cost, shares).
    """

    medium_threshold: float
    high_threshold: float
    review_cost: float = 10.0
    review_capacity: float = 0.05
    reject_cost: float = 25.0
    reject_margin: float = 0.1
    review_detection_rate: float = 1.0
    high_action: str = "reject"
    rules: HardRules = field(default_factory=HardRules)
    version: str = "1"
    summary: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "medium_threshold", float(self.medium_threshold))
        object.__setattr__(self, "high_threshold", float(self.high_threshold))
        if isinstance(self.rules, Mapping):
            object.__setattr__(self, "rules", HardRules(**self.rules))
        if math.isnan(self.medium_threshold) or math.isnan(self.high_threshold):
            raise ValueError("thresholds must not be NaN")
        if self.medium_threshold > self.high_threshold:
            raise ValueError(
                f"medium_threshold {self.medium_threshold} is above high_threshold {self.high_threshold}"
            )
        if self.high_action not in HIGH_ACTIONS:
            raise ValueError(f"high_action must be one of {HIGH_ACTIONS}, got {self.high_action!r}")
        if not 0.0 <= self.review_capacity <= 1.0:
            raise ValueError(f"review_capacity must be in [0, 1], got {self.review_capacity}")
        if not 0.0 <= self.review_detection_rate <= 1.0:
            raise ValueError(f"review_detection_rate must be in [0, 1], got {self.review_detection_rate}")
        for name in ("review_cost", "reject_cost", "reject_margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not str(self.version):
            raise ValueError("version must not be empty")

    # --- persistence ---------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """A JSON-ready dict (with ``kind`` and ``schema``) that ``from_dict`` reads back."""
        out = {"kind": POLICY_KIND, "schema": POLICY_SCHEMA}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = (
                asdict(value) if f.name == "rules" else (dict(value) if f.name == "summary" else value)
            )
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> TierPolicy:
        """Read a policy written by ``to_dict``.

        Raises:
            ValueError: another kind or schema, or unknown fields.
        """
        data = dict(data)
        kind, schema = data.pop("kind", POLICY_KIND), data.pop("schema", POLICY_SCHEMA)
        if kind != POLICY_KIND or schema != POLICY_SCHEMA:
            raise ValueError(
                f"not a {POLICY_KIND} schema {POLICY_SCHEMA} document: kind={kind!r} schema={schema!r}"
            )
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown tier-policy field(s) {sorted(unknown)}")
        rules = data.pop("rules", {})
        return cls(rules=HardRules(**rules), **data)

    def to_json(self) -> str:
        """Canonical JSON (sorted keys; NaN is refused)."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2, allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> TierPolicy:
        return cls.from_dict(json.loads(text))

    def digest(self) -> str:
        """SHA-256 of the canonical JSON: identifies the exact policy in logs and audits."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    # --- decisions -----------------------------------------------------------------------------

    def score_tier(self, probability: float) -> str:
        """Tier from the score alone."""
        if probability >= self.high_threshold:
            return "high"
        return "medium" if probability >= self.medium_threshold else "low"

    def _score_reason(self, tier: str, p: float) -> tuple[str, str, str]:
        if tier == "high":
            return (
                "SCORE_HIGH",
                f"Fraud probability {p:.3f} is at or above the high-risk threshold {self.high_threshold:.3f}.",
                self.high_action,
            )
        if tier == "medium":
            return (
                "SCORE_MEDIUM",
                f"Fraud probability {p:.3f} is at or above the review threshold {self.medium_threshold:.3f}.",
                "review",
            )
        return (
            "SCORE_LOW",
            f"Fraud probability {p:.3f} is below the review threshold {self.medium_threshold:.3f}.",
            "approve",
        )

    def decide(self, probability: float, flags: Mapping | None = None) -> Decision:
        """Tier, action and reasons for one entity.

        Args:
            probability: fraud probability from the model.
            flags: hard-rule inputs, any of ``screen_confirmed``, ``screen_possible``,
                ``doc_expired``, ``doc_check_digit_valid``, ``doc_typo_likely``; a missing key,
                ``None`` or NaN means the check was not run (the rule does not fire).

        Returns:
            The decision.

        Raises:
            ValueError: the probability is missing, or a flag name is unknown (a misspelt flag
                would silently switch a rule off).
        """
        flags = dict(flags or {})
        unknown = set(flags) - set(FLAGS)
        if unknown:
            raise ValueError(f"unknown flag(s) {sorted(unknown)}; known flags: {list(FLAGS)}")
        p = float(probability)
        if math.isnan(p):
            raise ValueError("probability is NaN: no decision without a score")
        score_tier = self.score_tier(p)
        code, message, action = self._score_reason(score_tier, p)
        implied = [(code, message, score_tier, action)]
        typo = self.rules.doc_typo_likely and _fired(flags.get("doc_typo_likely"), True)
        for rule, (flag, fire_on, tier, rule_action) in _RULES.items():
            if not self.rules.enabled(rule) or not _fired(flags.get(flag), fire_on):
                continue
            if rule == "DOC_INVALID" and typo:
                continue  # the typo rule explains the failed check digit
            implied.append((rule, _RULE_MESSAGES[rule], tier, rule_action))
        tier = max((t for *_, t, _ in implied), key=_TIER_RANK.__getitem__)
        action = max((a for *_, a in implied), key=_ACTION_RANK.__getitem__)
        reasons = []
        for rule, text, rule_tier, rule_action in implied:
            decisive = rule_tier == tier and rule_action == action
            if not decisive and rule in ("DOC_TYPO_LIKELY", "DOC_EXPIRED", "DOC_INVALID") and tier == "high":
                text += (
                    " It did not cause this outcome: a document problem never raises the tier above medium."
                )
            reasons.append(Reason(rule, text, decisive))
        return Decision(tier, action, tuple(reasons), p, self.version)

    def decide_frame(self, probabilities, flags: pd.DataFrame | None = None) -> pd.DataFrame:
        """``decide`` for many entities at once (vectorised; same results row by row).

        Args:
            probabilities: fraud probability per entity.
            flags: one row per entity (same order); the columns named in ``FLAGS`` are read,
                others ignored; a missing column or a null value means the check was not run.

        Returns:
            DataFrame (index of ``flags`` when given) with ``tier``, ``action``,
            ``reason_codes`` (``|``-joined, score reason first, then rules in the order of the
            module table) and ``decisive_codes`` (the ones that produced tier and action).

        Raises:
            ValueError: a probability is NaN or the lengths differ.
        """
        p = np.asarray(probabilities, dtype=float).ravel()
        if np.isnan(p).any():
            raise ValueError(f"{int(np.isnan(p).sum())} probabilities are NaN: no decision without a score")
        n = p.size
        index = flags.index if flags is not None else pd.RangeIndex(n)
        if flags is not None and len(flags) != n:
            raise ValueError(f"{n} probabilities but {len(flags)} rows of flags")

        def fired(flag: str, fire_on: bool) -> np.ndarray:
            if flags is None or flag not in flags.columns:
                return np.zeros(n, dtype=bool)
            values = pd.array(flags[flag].to_numpy(dtype=object), dtype="boolean")
            hit = values if fire_on else ~values
            return np.asarray(hit.fillna(False), dtype=bool)

        score_rank = np.where(p >= self.high_threshold, 2, np.where(p >= self.medium_threshold, 1, 0))
        score_codes = np.array(["SCORE_LOW", "SCORE_MEDIUM", "SCORE_HIGH"], dtype=object)[score_rank]
        high_action = _ACTION_RANK[self.high_action]
        score_action = np.array([_ACTION_RANK["approve"], _ACTION_RANK["review"], high_action])[score_rank]
        typo = fired("doc_typo_likely", True) & self.rules.doc_typo_likely
        implied = [(score_codes, np.ones(n, dtype=bool), score_rank, score_action)]
        for rule, (flag, fire_on, tier, rule_action) in _RULES.items():
            hit = fired(flag, fire_on) if self.rules.enabled(rule) else np.zeros(n, dtype=bool)
            if rule == "DOC_INVALID":
                hit &= ~typo
            implied.append((rule, hit, np.full(n, _TIER_RANK[tier]), np.full(n, _ACTION_RANK[rule_action])))
        tier = np.max([np.where(hit, t, 0) for _, hit, t, _ in implied], axis=0)
        action = np.max([np.where(hit, a, 0) for _, hit, _, a in implied], axis=0)
        codes = [[] for _ in range(n)]
        decisive = [[] for _ in range(n)]
        for code, hit, t, a in implied:
            is_decisive = hit & (t == tier) & (a == action)
            code_arr = code if isinstance(code, np.ndarray) else np.full(n, code, dtype=object)
            for i in np.flatnonzero(hit):
                codes[i].append(code_arr[i])
                if is_decisive[i]:
                    decisive[i].append(code_arr[i])
        return pd.DataFrame(
            {
                "tier": np.asarray(TIERS, dtype=object)[tier],
                "action": np.asarray(ACTIONS, dtype=object)[action],
                "reason_codes": ["|".join(c) for c in codes],
                "decisive_codes": ["|".join(c) for c in decisive],
            },
            index=index,
        )


# --- choosing the thresholds ------------------------------------------------------------------


def choose_thresholds(
    scores,
    y,
    amounts,
    review_cost: float,
    review_capacity: float,
    *,
    reject_cost: float = 25.0,
    reject_margin: float = 0.1,
    review_detection_rate: float = 1.0,
    forced_review=None,
    max_candidates: int = 400,
    high_action: str = "reject",
    rules: HardRules | None = None,
    version: str = "1",
) -> TierPolicy:
    """Choose the medium and high thresholds on VALIDATION data by minimising expected cost.

    The optimisation. Each entity ``i`` (score ``s_i``, label ``y_i``, amount ``a_i``) costs:

    * low (approved):   ``y_i * a_i`` (a missed fraud costs its amount);
    * medium (review):  ``review_cost + y_i * (1 - review_detection_rate) * a_i``;
    * high (rejected):  ``(1 - y_i) * (reject_cost + reject_margin * a_i)`` (a lost good customer);

    with high when ``s_i >= t_high``, medium when ``t_medium <= s_i < t_high`` and low below
    (entities in ``forced_review`` are at least medium whatever their score: hard rules). The
    search is exhaustive over pairs ``t_medium <= t_high`` drawn from the observed scores (all
    distinct scores, or ``max_candidates`` quantiles of them) plus one value above every score
    (the tier switched off), subject to the capacity constraint ``share of medium entities <=
    review_capacity``; the total is evaluated in O(1) per pair from cumulative sums over the
    entities sorted by score. Among pairs of equal cost the highest thresholds (fewest
    interventions) win. Choose on validation data, never on the test: the test then measures
    the policy honestly. Amounts and costs share one currency (USD).

    Args:
        scores: validation fraud probabilities.
        y: validation labels (0/1, labels known by the validation cut-off).
        amounts: validation amounts (USD).
        review_cost: cost of one manual review.
        review_capacity: largest share of entities that may be medium.
        reject_cost: fixed cost of rejecting a good customer.
        reject_margin: share of a good order's amount lost by rejecting it.
        review_detection_rate: share of reviewed frauds that the review stops.
        forced_review: bool per entity, True when a hard rule sends it to review anyway (it
            uses review capacity).
        max_candidates: most distinct threshold values tried for each threshold.
        high_action: action of the high tier (``reject`` or ``review``).
        rules: hard-rule switches for the policy.
        version: version string of the new policy.

    Returns:
        The policy, with ``summary`` holding ``n``, ``n_positive``, ``expected_cost``,
        ``approve_all_cost``, ``cost_saved``, ``medium_share``, ``high_share``.

    Raises:
        ValueError: bad inputs, or the forced reviews alone exceed the capacity.
    """
    s = np.asarray(scores, dtype=float).ravel()
    yy = np.asarray(y, dtype=float).ravel()
    amt = np.asarray(amounts, dtype=float).ravel()
    n = s.size
    if n == 0:
        raise ValueError("no validation rows to choose thresholds on")
    if yy.size != n or amt.size != n:
        raise ValueError(f"scores, y and amounts differ in length: {n}, {yy.size}, {amt.size}")
    if np.isnan(s).any() or np.isnan(amt).any():
        raise ValueError("scores and amounts must not hold NaN")
    if not np.isin(yy, (0.0, 1.0)).all():
        raise ValueError("y must hold only 0 and 1")
    if (amt < 0).any():
        raise ValueError("amounts must be >= 0")
    forced = (
        np.zeros(n, dtype=bool) if forced_review is None else np.asarray(forced_review, dtype=bool).ravel()
    )
    if forced.size != n:
        raise ValueError(f"forced_review has {forced.size} values, expected {n}")
    if forced.mean() > review_capacity:
        raise ValueError(
            f"hard rules alone send {forced.mean():.2%} of entities to review, above the capacity {review_capacity:.2%}"
        )
    # The policy's own checks (costs >= 0, rates in [0, 1], high_action) run before the search.
    TierPolicy(
        0.0, 0.0, review_cost, review_capacity, reject_cost, reject_margin, review_detection_rate, high_action
    )

    order = np.argsort(-s, kind="stable")
    y_d, a_d, f_d = yy[order], amt[order], forced[order]

    def prefix(values: np.ndarray) -> np.ndarray:
        return np.r_[0.0, np.cumsum(values)]

    high_cost = prefix((1 - y_d) * (reject_cost + reject_margin * a_d))
    review_all = prefix(review_cost + y_d * (1 - review_detection_rate) * a_d)
    low_cost = prefix(y_d * a_d * ~f_d)  # unforced entities below t_medium are approved
    forced_review_cost = prefix((review_cost + y_d * (1 - review_detection_rate) * a_d) * f_d)
    forced_count = prefix(f_d.astype(float))

    distinct = np.unique(s)[::-1]
    if distinct.size > max_candidates:
        distinct = np.unique(np.quantile(s, np.linspace(0, 1, max_candidates), method="inverted_cdf"))[::-1]
    off = float(np.nextafter(max(1.0, s.max()), np.inf))
    cand = np.r_[off, distinct]  # descending: index 0 is "tier off"
    # Number of entities with score >= t, i.e. the position in the descending order.
    n_ge = n - np.searchsorted(np.sort(s), cand, side="left")

    i_h = n_ge[:, None]  # rows: high threshold candidates
    i_m = n_ge[None, :]  # columns: medium threshold candidates
    cost = (
        high_cost[i_h]
        + (review_all[i_m] - review_all[i_h])
        + (low_cost[-1] - low_cost[i_m])
        + (forced_review_cost[-1] - forced_review_cost[i_m])
    )
    medium = (i_m - i_h) + (forced_count[-1] - forced_count[i_m])
    feasible = (i_m >= i_h) & (medium <= review_capacity * n + 1e-9)
    cost = np.where(feasible, np.round(cost, 6), np.inf)
    # argmin takes the first minimum: the highest t_high, then the highest t_medium.
    j, k = np.unravel_index(int(np.argmin(cost)), cost.shape)
    approve_all = float(np.sum(yy * amt))
    best = float(cost[j, k])
    summary = {
        "n": int(n),
        "n_positive": int(yy.sum()),
        "expected_cost": best,
        "approve_all_cost": approve_all,
        "cost_saved": approve_all - best,
        "medium_share": float(medium[j, k] / n),
        "high_share": float(n_ge[j] / n),
        "forced_review_share": float(forced.mean()),
    }
    return TierPolicy(
        medium_threshold=float(cand[k]),
        high_threshold=float(cand[j]),
        review_cost=float(review_cost),
        review_capacity=float(review_capacity),
        reject_cost=float(reject_cost),
        reject_margin=float(reject_margin),
        review_detection_rate=float(review_detection_rate),
        high_action=high_action,
        rules=rules or HardRules(),
        version=version,
        summary=summary,
    )
