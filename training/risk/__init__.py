"""The customer risk-tier model: snapshot assembly, its Pipeline, time-split training, the tier policy and evaluation.

Plain typed step functions (Kedro style) mirroring ``training.fraud``: they take frames and
configuration, never file paths. ``SPEC`` hands them to the shared fitting step
(``training.fitting``) and the training flow (``training.flow``), which wires them to files, MLflow
and the command line. The package's modules: ``assembly`` (snapshots, inputs, targets), ``rules``
(review rules and the final decision), ``card`` (the model card); this module holds the Pipeline,
the policy choice, the evaluation and the spec, and offers the names of the other three that the
service and the tests use.

One row is a customer *snapshot* ``(customer_id, as_of)`` (``features.customer``): right after
onboarding and then every ``[risk] snapshot_every_days`` days. The target is "bad customer"
(``features.customer.customer_targets``: money laundering, synthetic identity, sanctioned,
stolen-goods seller, ring member, restricted-goods buyer); PEP and outgrown KYC are review
outcomes handled by transparent rules, not by the score.

The logged artifact is ONE Pipeline: KYC profile transforms at ``as_of`` (read raw personal data
and drop it) → drop identifiers and the snapshot time → categorical encoding → the calibrated
LightGBM model. Its first ``N_PREPARE_STEPS`` steps produce the "model features" (no personal
data) that hard rules and the decision log read.

The final tier of a snapshot (``decide_customers``) is the maximum of:

============================ ============================================ ======= ================
source                       fires when                                   tier    action
============================ ============================================ ======= ================
score                        calibrated P(bad) vs the policy thresholds   any     approve/review/
                                                                                  reject
WATCHLIST_CONFIRMED (policy) a *sanctions* hit (``screen_confirmed``)     high    report
WATCHLIST_POSSIBLE (policy)  a possible match, or any PEP hit             medium  review
DOC_EXPIRED (policy)         the document expired before ``as_of``        medium  review
DOC_INVALID (policy)         check digit fails and no likely typo         medium  review
DOC_TYPO_LIKELY (policy)     check digit fails, a transposition fixes it  medium  ask_to_correct
PEP_EDD (this module)        a PEP hit: enhanced due diligence            medium  review
KYC_OUTGROWN (this module)   30-day volume >= ``outgrown_volume_ratio`` x medium  review (ask for
                             the declared monthly volume                          documents)
============================ ============================================ ======= ================

Rules only ever raise a decision, and only a confirmed sanctions match raises it to high: a
document typo alone never rejects anybody (a high *score* still can; the typo reason is then
marked not decisive). ``PEP_EDD`` and ``KYC_OUTGROWN`` are applied by ``apply_review_rules``
after ``TierPolicy.decide_frame`` because ``training.policy`` has no flags for them yet (the
closing note of this change proposes adding ``pep_confirmed`` and ``kyc_outgrown`` there).

Review capacity. The hard rules fire on far more snapshots than the review team's capacity
(synthetic data: ~11% possible watchlist matches, ~11% expired documents): they are compliance
obligations, staffed whatever the score says. The thresholds are therefore chosen with
``review_capacity`` = (share of validation snapshots a rule forces to review) + the configured
capacity for *score-driven* reviews (``[risk] review_capacity``, else ``[policy]
review_capacity``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from feature_engine.selection import DropFeatures
from sklearn.pipeline import Pipeline

from features.customer import (
    ID_COLUMNS,
    PARTY,
    TIME_COLUMN,
    customer_flags,
)
from features.profile import PERSONAL_COLUMNS, PartyProfileFeatures
from features.reference import load_reference
from training import metrics as M
from training.config import Config
from training.customer_targets import customer_review_targets
from training.fitting import Inputs, fit, lgbm_of
from training.fraud import categorical_encoder, tier_metrics
from training.names import RISK_EXPERIMENT, RISK_MODEL
from training.policy import choose_thresholds
from training.risk.assembly import (
    RISK_FEATURE_SET,
    RISK_FEATURE_SET_ID,
    RISK_FEATURE_SET_VERSION,
    RiskData,
    assemble_customers,
    data_period,
    targets,
)
from training.risk.card import model_card
from training.risk.rules import (
    OUTGROWN_VOLUME_RATIO,
    REVIEW_RULES,
    apply_review_rules,
    decide_customers,
    forced_review,
    review_flags,
    review_rule_message,
    review_rule_settings,
    rule_outcomes,
)
from training.spec import Fitted, ModelSpec, Outcome, TrainedModel
from training.splits import in_period

__all__ = [
    "CATEGORICAL",
    "N_PREPARE_STEPS",
    "OUTGROWN_VOLUME_RATIO",
    "REVIEW_RULES",
    "RISK_FEATURE_SET",
    "RISK_FEATURE_SET_ID",
    "RISK_FEATURE_SET_VERSION",
    "SEGMENTS",
    "SPEC",
    "RiskData",
    "apply_review_rules",
    "assemble_customers",
    "build_pipeline",
    "categoricals_as_text",
    "data_period",
    "decide_customers",
    "evaluate_model",
    "fit_risk_model",
    "forced_review",
    "gate_evaluator",
    "lgbm_of",
    "model_card",
    "model_features",
    "personal_columns",
    "predict_proba",
    "recall_by_pattern",
    "review_flags",
    "review_rule_message",
    "review_rule_settings",
    "rule_outcomes",
    "segment_columns",
    "targets",
]

SEGMENTS = ("customer_type", "customer_region", "customer_age_band")

N_PREPARE_STEPS = 2
# Categorical inputs of the model (encoded with feature-engine; unseen and missing values get -1).
CATEGORICAL = (
    f"{PARTY}_customer_type",
    f"{PARTY}_industry",
    f"{PARTY}_nationality",
    f"{PARTY}_residence_country",
    f"{PARTY}_document_country",
    f"{PARTY}_role",
    f"{PARTY}_screen_status",
    f"{PARTY}_screen_list_type",
    f"{PARTY}_screen_dob_match",
)


# --- the Pipeline -----------------------------------------------------------------------------


def build_pipeline(frame: pd.DataFrame, lgbm_params: dict[str, Any]) -> Pipeline:
    """The unfitted Pipeline for this frame's columns (categoricals present in the frame).

    Steps: ``customer_profile`` (``PartyProfileFeatures(party="customer", time_column="as_of")``:
    KYC features at the snapshot time, personal data dropped), ``drop`` (``ID_COLUMNS`` and
    ``as_of``), ``encode`` (feature-engine ``OrdinalEncoder``; unseen categories → -1), ``model``
    (``LGBMClassifier``).
    """
    categorical = [c for c in CATEGORICAL if c in frame.columns]
    drop = [c for c in (*ID_COLUMNS, TIME_COLUMN) if c in frame.columns]
    return Pipeline(
        [
            ("customer_profile", PartyProfileFeatures(party=PARTY, time_column=TIME_COLUMN)),
            ("drop", DropFeatures(features_to_drop=drop)),
            ("encode", categorical_encoder(categorical)),
            ("model", lgb.LGBMClassifier(**lgbm_params)),
        ]
    )


INPUTS = Inputs(CATEGORICAL, N_PREPARE_STEPS)
categoricals_as_text = INPUTS.categoricals_as_text
model_features = INPUTS.model_features
predict_proba = INPUTS.predict_proba


# --- evaluation -----------------------------------------------------------------------------------


def segment_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Segments for fairness: customer type, region of residence and age band at ``as_of``.

    Returns:
        ``customer_type``, ``customer_region``, ``customer_age_band`` (metric keys
        ``segment.customer_type.*`` etc.; businesses without a birth date are ``missing``).
    """
    countries = load_reference("countries").set_index("iso2")["region"]
    region = frame[f"{PARTY}_residence_country"].map(countries).fillna("unknown")
    age = M.age_band(frame[f"{PARTY}_birth_date"], frame[TIME_COLUMN])
    return {
        "customer_type": frame[f"{PARTY}_customer_type"].fillna("unknown").to_numpy(dtype=object),
        "customer_region": region.to_numpy(dtype=object),
        "customer_age_band": np.asarray(age, dtype=object),
    }


def _precision_top_share(y: np.ndarray, scores: np.ndarray, share: float) -> float:
    """Precision among the ``share`` highest-scored rows (ties by input order)."""
    k = max(1, math.ceil(share * len(scores))) if len(scores) else 0
    if k == 0:
        return math.nan
    top = np.argsort(-scores, kind="stable")[:k]
    return float(np.mean(y[top]))


def evaluate_scores(
    y: np.ndarray,
    scores: np.ndarray,
    segments: dict[str, np.ndarray] | None,
    threshold: float,
    review_cost: float,
    missed_customer_cost: float,
    *,
    known: np.ndarray | None = None,
    top_share: float = 0.03,
) -> dict[str, float]:
    """Out-of-time metrics of risk scores.

    No per-day metrics: snapshots come in monthly batches, so "per day" would mean per batch.

    Args:
        y: bad-customer targets.
        scores: calibrated probabilities.
        segments: segment columns (``segment_columns``) or None.
        threshold: the policy's medium (review) threshold.
        review_cost: cost of one review; a missed bad customer costs ``missed_customer_cost``.
        known: True where the customer was already known bad at ``as_of``; adds the same
            metrics (without segments) on the other snapshots under ``not_yet_known.``.
        top_share: share of snapshots for ``precision_top_{share}pct`` (the review team's view).

    Returns:
        ``training.metrics.evaluate_scores`` keys plus ``precision_top_3pct`` and, with
        ``known``, ``not_yet_known.*``.
    """
    y, scores = np.asarray(y), np.asarray(scores, dtype=float)
    out = M.evaluate_scores(
        y,
        scores,
        amount=np.full(len(scores), float(missed_customer_cost)),
        segments=segments,
        threshold=threshold,
        review_cost=review_cost,
    )
    top = f"precision_top_{top_share * 100:g}pct".replace(".", "_")
    out[top] = _precision_top_share(y, scores, top_share)
    if known is not None:
        unknown = ~np.asarray(known, dtype=bool)
        if unknown.any():
            out.update(
                M.evaluate_scores(
                    y[unknown],
                    scores[unknown],
                    amount=np.full(int(unknown.sum()), float(missed_customer_cost)),
                    threshold=threshold,
                    review_cost=review_cost,
                    prefix="not_yet_known.",
                )
            )
            out[f"not_yet_known.{top}"] = _precision_top_share(y[unknown], scores[unknown], top_share)
    return out


def evaluate_model(
    pipeline: Pipeline,
    test_frame: pd.DataFrame,
    y: np.ndarray,
    threshold: float,
    review_cost: float,
    missed_customer_cost: float,
    known: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics of any risk Pipeline on given out-of-time snapshots (the promotion gate's yardstick)."""
    scores = predict_proba(pipeline, test_frame)
    return evaluate_scores(
        y, scores, segment_columns(test_frame), threshold, review_cost, missed_customer_cost, known=known
    )


def recall_by_pattern(
    patterns: pd.DataFrame | None, scores: np.ndarray, threshold: float, decisions: pd.DataFrame
) -> pd.DataFrame:
    """Per planted pattern (and stage): share of its test snapshots flagged by the score and by the policy.

    Every test snapshot of a pattern's customer counts, including those before the pattern's
    activity began (the target says what the customer is). ``none`` is the customers in no
    pattern: their "recall" is the flag rate of ordinary customers.

    Args:
        patterns: ``customer_patterns`` rows aligned with ``scores`` (or None: no ground truth).
        scores: calibrated probabilities.
        threshold: the policy's medium threshold.
        decisions: ``decide_customers`` output aligned with ``scores``.

    Returns:
        Columns ``pattern``, ``stage``, ``snapshots``, ``flagged`` (score >= threshold),
        ``recall``, ``final_flagged`` (final tier medium or high), ``final_recall``, ``high``
        (final tier high) and ``rejected_or_reported``; empty without ground truth.
    """
    columns = [
        "pattern",
        "stage",
        "snapshots",
        "flagged",
        "recall",
        "final_flagged",
        "final_recall",
        "high",
        "rejected_or_reported",
    ]
    if patterns is None or not len(patterns):
        return pd.DataFrame(columns=columns)
    frame = pd.DataFrame(
        {
            "pattern": patterns["pattern"].to_numpy(),
            "stage": patterns["stage"].to_numpy(),
            "flagged": np.asarray(scores) >= threshold,
            "final_flagged": decisions["tier"].ne("low").to_numpy(),
            "high": decisions["tier"].eq("high").to_numpy(),
            "rejected_or_reported": decisions["action"].isin(["reject", "report"]).to_numpy(),
        }
    )
    table = (
        frame.groupby(["pattern", "stage"], sort=True)
        .agg(
            snapshots=("flagged", "size"),
            flagged=("flagged", "sum"),
            final_flagged=("final_flagged", "sum"),
            high=("high", "sum"),
            rejected_or_reported=("rejected_or_reported", "sum"),
        )
        .reset_index()
    )
    table["recall"] = table["flagged"] / table["snapshots"]
    table["final_recall"] = table["final_flagged"] / table["snapshots"]
    return table[columns]


def personal_columns(frame: pd.DataFrame) -> list[str]:
    """Columns of ``frame`` that hold raw personal data or identifiers (must be empty after preparation)."""
    personal = {f"{PARTY}_{c}" for c in PERSONAL_COLUMNS} | set(ID_COLUMNS) | {TIME_COLUMN}
    return [c for c in frame.columns if c in personal]


# --- training: the policy, the gate's yardstick and the flow's spec ----------------------------------


def fit_risk_model(data: RiskData, config: Config | Mapping[str, Any]) -> TrainedModel:
    """Train, calibrate, choose the tier policy and evaluate the customer risk model (``training.fitting.fit``).

    The snapshots are split by ``as_of``; the thresholds are chosen on validation by
    ``choose_thresholds`` with a missed bad customer costing ``[risk] missed_customer_cost`` and
    every rule-flagged snapshot forced to review (see the module docstring for the capacity).

    Args:
        data: ``assemble_customers`` output.
        config: the training configuration (``training.config``; or its parsed TOML).

    Returns:
        ``TrainedModel`` with ``review_rules``, ``rule_table`` and ``test_known``; metric keys as
        ``training.metrics.evaluate_scores`` plus ``not_yet_known.*``, tier mix, ``pattern.*``,
        ``rules.*``, ``review_rules.*``, ``psi.*``.

    Raises:
        ValueError: too few known bad customers to train, or a period without snapshots.
    """
    return fit(SPEC, data, config)


def _finish(data: RiskData, fitted: Fitted, config: Config) -> Outcome:
    """The tier policy (chosen on validation), the rules and the out-of-time evaluation of a fitted risk model."""
    test, y_test, test_scores = fitted.test, fitted.y_test, fitted.test_scores
    features_valid, features_test = fitted.features_valid, fitted.features_test
    rules_cfg = config.risk.review_rule_settings()
    forced_valid = forced_review(customer_flags(features_valid), review_flags(features_valid, **rules_cfg))
    policy_cfg = config.risk_policy
    missed = config.risk.missed_customer_cost
    policy = choose_thresholds(
        fitted.valid_scores,
        fitted.y_valid,
        np.full(len(fitted.valid_scores), missed),
        review_cost=policy_cfg.review_cost,
        # rule-driven reviews are compliance obligations: the configured capacity is for the
        # reviews the score adds on top of them (module docstring)
        review_capacity=min(1.0, float(forced_valid.mean()) + policy_cfg.review_capacity),
        reject_cost=policy_cfg.reject_cost,
        reject_margin=policy_cfg.reject_margin,
        review_detection_rate=policy_cfg.review_detection_rate,
        forced_review=forced_valid,
        high_action=config.risk.high_action,
        version=f"risk-{data.feature_set_id}",
    )
    review_rules = {
        "codes": {code: {"tier": t, "action": a} for code, (t, a, _) in REVIEW_RULES.items()},
        **rules_cfg,
        "score_review_capacity": policy_cfg.review_capacity,
        "forced_review_share_valid": float(forced_valid.mean()),
    }

    # A target says what the customer *is* (its label may arrive after as_of); the features only
    # what was known: "known" marks the customers already known bad at the snapshot.
    known_test = targets(data, test, test[TIME_COLUMN], config).astype(bool)
    segments = segment_columns(test)
    result = evaluate_scores(
        y_test,
        test_scores,
        segments,
        policy.medium_threshold,
        policy_cfg.review_cost,
        missed,
        known=known_test,
    )
    result["known_bad_at_as_of.share"] = float(known_test.mean())
    decisions = decide_customers(policy, test_scores, features_test, **rules_cfg)
    flags_test = customer_flags(features_test)
    review_test = review_flags(features_test, **rules_cfg)
    forced_test = forced_review(flags_test, review_test)
    result.update(tier_metrics(decisions))
    result["rules.forced_review_share"] = float(forced_test.mean())
    final_flagged = decisions["tier"].ne("low").to_numpy()
    for name, values in segments.items():
        table = M.segment_metrics(y_test, test_scores, values, flagged=final_flagged)
        result[M.metric_key("final", "segment", name, "fpr_min_max_ratio")] = M.fpr_min_max_ratio(table)
    result["final.fpr"] = float(final_flagged[y_test == 0].mean()) if (y_test == 0).any() else math.nan
    result["final.recall"] = float(final_flagged[y_test == 1].mean()) if (y_test == 1).any() else math.nan
    patterns = (
        None if data.patterns is None else data.patterns.iloc[test["_row"].to_numpy()].reset_index(drop=True)
    )
    pattern_recall = recall_by_pattern(patterns, test_scores, policy.medium_threshold, decisions)
    for row in pattern_recall.itertuples():
        result[M.metric_key("pattern", row.pattern, row.stage, "recall")] = row.recall
        result[M.metric_key("pattern", row.pattern, row.stage, "final_recall")] = row.final_recall
    review_y = customer_review_targets(test[["customer_id", TIME_COLUMN]], data.labels, None).to_numpy()
    rule_table, rule_metrics = rule_outcomes(decisions, flags_test, review_test, review_y, patterns)
    result.update(rule_metrics)
    result["customers.test"] = float(test["customer_id"].nunique())
    extras = {"review_rules": review_rules, "rule_table": rule_table, "test_known": known_test}
    return Outcome(policy, result, pattern_recall, decisions, segments, extras)


def gate_evaluator(
    tables_of: Callable[[], dict[str, pd.DataFrame]], challenger: Mapping[str, Any], config: Config
) -> Callable[[Pipeline, Mapping[str, Any]], dict[str, float]]:
    """The gate's yardstick: champion and challenger on the same out-of-time snapshots.

    The snapshots are re-created from the challenger's metadata (snapshot period and spacing) on
    the data folder's tables (loaded on the first evaluation); the out-of-time rows are those with
    ``as_of`` in its test period, their targets use every label known now and the target rule of
    ``config``. Both models score exactly those rows, each with its own review threshold.

    Returns:
        ``(pipeline, its metadata) -> metrics``.
    """
    period = challenger["training_period"]
    snapshots = challenger["snapshot_period"]
    review_cost = config.risk_policy.review_cost
    cache: dict[str, tuple] = {}

    def out_of_time() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        if not cache:
            dataset = assemble_customers(
                tables_of(), snapshots["every"], start=snapshots["start"], end=snapshots["end"]
            )
            mask = in_period(dataset.frame[TIME_COLUMN], period["test_start"], period["test_end"])
            test = dataset.frame[mask.to_numpy()].reset_index(drop=True)
            y = targets(dataset, test, None, config)
            known = targets(dataset, test, test[TIME_COLUMN], config).astype(bool)
            cache["oot"] = (test, y, known)
        return cache["oot"]

    def evaluate(pipeline: Pipeline, meta: Mapping[str, Any]) -> dict[str, float]:
        test, y, known = out_of_time()
        threshold = meta["tier_policy"]["medium_threshold"]
        return evaluate_model(
            pipeline, test, y, threshold, review_cost, config.risk.missed_customer_cost, known
        )

    return evaluate


def _snapshot_period(dataset: RiskData) -> dict[str, str]:
    return {
        "start": dataset.period[0].isoformat(),
        "end": dataset.period[1].isoformat(),
        "every": dataset.every,
    }


def _run_params(model: TrainedModel, dataset: RiskData, config: Config) -> dict[str, Any]:
    return {
        "gate": config.gate.settings(SPEC.gate_override),
        "target": config.risk.target_settings(),
        "snapshots": _snapshot_period(dataset),
    }


def _metadata(model: TrainedModel, dataset: RiskData, config: Config) -> dict[str, Any]:
    return {
        "review_rules": model.review_rules,
        "snapshot_period": _snapshot_period(dataset),
        "target": config.risk.target_settings(),
    }


def _write_tables(model: TrainedModel, folder: Path) -> None:
    model.rule_table.to_csv(folder / "rule_outcomes.csv", index=False)
    (folder / "review_rules.json").write_text(json.dumps(model.review_rules, indent=2, sort_keys=True))


SPEC = ModelSpec(
    key="risk",
    registered_model=RISK_MODEL,
    experiment=RISK_EXPERIMENT,
    row_unit="snapshots",
    positives="known bad customers",
    time_column=TIME_COLUMN,
    n_prepare_steps=N_PREPARE_STEPS,
    gate_override="risk",
    assemble=lambda tables, config: assemble_customers(tables, config.risk.snapshot_every),
    targets=targets,
    helper_columns=lambda data, frame: {"_row": np.arange(len(frame))},
    categoricals_as_text=categoricals_as_text,
    build_pipeline=build_pipeline,
    finish=_finish,
    run_params=_run_params,
    metadata=_metadata,
    write_tables=_write_tables,
    figure_titles={
        "roc": "ROC curve (out-of-time snapshots)",
        "precision_recall": "Precision-recall (snapshots)",
        "calibration": "Reliability (bad customer)",
        "tiers": "Final risk tiers (score + rules)",
    },
    segment_figures=SEGMENTS,
    segment_title="FPR at the review threshold by {name}",
    model_card=model_card,
    gate_evaluator=gate_evaluator,
)
