"""The fraud model: its scikit-learn Pipeline, time-split training with label delay, calibration,
tier thresholds and the out-of-time evaluation of every run.

Plain typed step functions (Kedro style): they take frames and configuration, never file paths.
``SPEC`` hands them to the shared fitting step (``training.fitting``) and the training flow
(``training.flow``), which wires them to files, MLflow and the command line; the model card is
written here too.

The logged artifact is ONE Pipeline: KYC profile transforms (which read raw personal data and
drop it) → event risk → drop identifiers → categorical encoding → the calibrated LightGBM model.
Its first ``N_PREPARE_STEPS`` steps produce the "model features" that the decision log stores;
the rest (encoding + model) replays a decision from them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from features.assemble import ID_COLUMNS, model_frame, screen_customers
from features.batch import compute_features
from features.definitions import describe_feature_set, get_feature_set
from features.profile import EventRiskFeatures, PartyProfileFeatures
from features.reference import load_reference
from features.screening import WatchlistScreener
from training import card
from training import metrics as M
from training.config import Config
from training.fitting import Inputs, fit, lgbm_of  # noqa: F401 - fraud.lgbm_of: the service reads its model with it
from training.names import FRAUD_EXPERIMENT, FRAUD_MODEL
from training.policy import choose_thresholds
from training.spec import Fitted, ModelSpec, Outcome, TrainedModel
from training.splits import in_period, label_targets
from training.steps import CategoricalEncoder, DropColumns

TIME_COLUMN = "occurred_at"
N_PREPARE_STEPS = 4
# Categorical inputs of the model (encoded with feature-engine; unseen and missing values get -1).
CATEGORICAL = (
    "currency",
    "goods_category",
    "payment_method",
    "buyer_country",
    "seller_country",
    "ip_country",
    "buyer_customer_type",
    "seller_customer_type",
    "buyer_role",
    "seller_role",
    "buyer_industry",
    "seller_industry",
    "buyer_nationality",
    "buyer_residence_country",
    "buyer_document_country",
    "seller_nationality",
    "seller_residence_country",
    "seller_document_country",
    "buyer_screen_status",
    "buyer_screen_list_type",
    "buyer_screen_dob_match",
    "seller_screen_status",
    "seller_screen_list_type",
    "seller_screen_dob_match",
)


@dataclass
class FraudData:
    """The assembled dataset: model input rows plus what evaluation needs beside them."""

    frame: pd.DataFrame  # model input (one row per transaction, model_frame columns)
    amount_usd: pd.Series
    labels: pd.DataFrame
    patterns: pd.DataFrame | None
    feature_set: str
    feature_set_id: str
    timings: dict[str, float] = field(default_factory=dict)


def assemble(
    tables: dict[str, pd.DataFrame], feature_set: str = "fraud_v1", screener: WatchlistScreener | None = None
) -> FraudData:
    """Build the fraud model's input for every transaction, point in time.

    Args:
        tables: validated contract tables (``features.io.load_valid_dataset``).
        feature_set: registered history feature set.
        screener: a fitted watchlist screener (fitted on ``tables["watchlist"]`` when None and
            the watchlist is not empty).

    Returns:
        ``FraudData`` whose ``frame`` has the columns of ``features.assemble.model_frame``.
    """
    timings = {}
    started = time.perf_counter()
    history = compute_features(tables, feature_set)
    timings["history_features_s"] = time.perf_counter() - started
    started = time.perf_counter()
    watchlist = tables.get("watchlist")
    screening = None
    if screener is None and watchlist is not None and len(watchlist):
        screener = WatchlistScreener().fit(watchlist)
    if screener is not None:
        screening = screen_customers(tables["customers"], screener)
    timings["screening_s"] = time.perf_counter() - started
    frame = model_frame(tables["transactions"], history, tables["customers"], screening)
    fs = get_feature_set(feature_set)
    return FraudData(
        frame=frame,
        amount_usd=frame["amount_usd"] if "amount_usd" in frame else tables["transactions"]["amount"],
        labels=tables.get("labels"),
        patterns=tables.get("patterns"),
        feature_set=fs.name,
        feature_set_id=fs.id,
        timings=timings,
    )


def build_pipeline(frame: pd.DataFrame, lgbm_params: dict[str, Any]) -> Pipeline:
    """The unfitted Pipeline for this frame's columns (categoricals present in the frame).

    Steps: ``buyer_profile``, ``seller_profile``, ``event_risk``, ``drop`` (identifiers and the
    event time), ``encode`` (feature-engine ``OrdinalEncoder``; unseen categories → -1),
    ``model`` (``LGBMClassifier``).
    """
    categorical = [c for c in CATEGORICAL if c in frame.columns]
    drop = [c for c in (*ID_COLUMNS, TIME_COLUMN) if c in frame.columns]
    return Pipeline(
        [
            ("buyer_profile", PartyProfileFeatures(party="buyer", time_column=TIME_COLUMN)),
            ("seller_profile", PartyProfileFeatures(party="seller", time_column=TIME_COLUMN)),
            ("event_risk", EventRiskFeatures()),
            ("drop", DropColumns(features_to_drop=drop)),
            ("encode", categorical_encoder(categorical)),
            ("model", lgb.LGBMClassifier(**lgbm_params)),
        ]
    )


def categorical_encoder(categorical: list[str]) -> CategoricalEncoder:
    """The models' categorical encoding: arbitrary integer codes; unseen and missing values → -1."""
    return CategoricalEncoder(
        encoding_method="arbitrary",
        variables=categorical,
        missing_values="ignore",
        unseen="encode",
        ignore_format=True,
    )


INPUTS = Inputs(CATEGORICAL, N_PREPARE_STEPS)
categoricals_as_text = INPUTS.categoricals_as_text
model_features = INPUTS.model_features
predict_proba = INPUTS.predict_proba


def targets(data: FraudData, rows: pd.DataFrame, cutoff: Any, config: Config | None = None) -> np.ndarray:
    """Fraud target of some transactions from the labels known before ``cutoff`` (``None``: every label)."""
    return label_targets(rows, data.labels, cutoff, id_col="transaction_id").to_numpy()


def fit_fraud_model(data: FraudData, config: Config | Mapping[str, Any]) -> TrainedModel:
    """Train, calibrate, choose thresholds and evaluate the fraud model on time splits (``training.fitting.fit``).

    The tier thresholds are chosen on the validation period from expected cost and review
    capacity (``[policy]``), a confirmed sanctions hit forcing review.

    Args:
        data: ``assemble`` output.
        config: the training configuration (``training.config``; or its parsed TOML).

    Returns:
        ``TrainedModel`` with metrics keyed like ``training.metrics.evaluate_scores``.
    """
    return fit(SPEC, data, config)


def _finish(data: FraudData, fitted: Fitted, config: Config) -> Outcome:
    """The tier policy (chosen on validation) and the out-of-time evaluation of a fitted fraud model."""
    policy_cfg = config.policy
    valid, test = fitted.valid, fitted.test
    policy = choose_thresholds(
        fitted.valid_scores,
        fitted.y_valid,
        valid["_amount_usd"].to_numpy(),
        review_cost=policy_cfg.review_cost,
        review_capacity=policy_cfg.review_capacity,
        reject_cost=policy_cfg.reject_cost,
        reject_margin=policy_cfg.reject_margin,
        review_detection_rate=policy_cfg.review_detection_rate,
        forced_review=order_flags(valid)["screen_confirmed"].fillna(False).to_numpy(dtype=bool),
        version=f"fraud-{data.feature_set_id}",
    )
    result = _score_metrics(
        test,
        fitted.y_test,
        fitted.test_scores,
        test["_amount_usd"].to_numpy(),
        policy.medium_threshold,
        policy_cfg.review_cost,
    )
    decisions = policy.decide_frame(fitted.test_scores, order_flags(test))
    result.update(tier_metrics(decisions))
    pattern_recall = recall_by_pattern(test, fitted.test_scores, policy.medium_threshold, data.patterns)
    for row in pattern_recall.itertuples():
        result[f"pattern.{row.pattern}.recall"] = row.recall
    return Outcome(policy, result, pattern_recall, decisions, segment_columns(test))


def _score_metrics(
    frame: pd.DataFrame,
    y: np.ndarray,
    scores: np.ndarray,
    amount_usd: np.ndarray,
    threshold: float,
    review_cost: float,
) -> dict[str, float]:
    return M.evaluate_scores(
        y,
        scores,
        amount=amount_usd,
        times=frame[TIME_COLUMN],
        customer_ids=frame["buyer_id"].to_numpy(),
        segments=segment_columns(frame),
        threshold=threshold,
        review_cost=review_cost,
    )


def evaluate_model(
    pipeline: Pipeline,
    test_frame: pd.DataFrame,
    y: np.ndarray,
    amount_usd: np.ndarray,
    threshold: float,
    review_cost: float,
) -> dict[str, float]:
    """Metrics of any fraud Pipeline on given out-of-time rows (the promotion gate's yardstick)."""
    return _score_metrics(
        test_frame, y, predict_proba(pipeline, test_frame), amount_usd, threshold, review_cost
    )


def gate_evaluator(
    tables_of: Callable[[], dict[str, pd.DataFrame]], challenger: Mapping[str, Any], config: Config
) -> Callable[[Pipeline, Mapping[str, Any]], dict[str, float]]:
    """The gate's yardstick: champion and challenger on the challenger's own test period.

    Each model is scored on the rows of its own feature set (assembled once per feature set) in
    the test period recorded in the challenger's metadata, with every label known now.

    Args:
        tables_of: loads the out-of-time data folder's tables (called once, now).
        challenger: the challenger's model metadata (``training_period``).
        config: the training configuration (``[policy] review_cost``).

    Returns:
        ``(pipeline, its metadata) -> metrics``.
    """
    tables = tables_of()
    period = challenger["training_period"]
    frames: dict[str, tuple] = {}

    def out_of_time(feature_set: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
        if feature_set not in frames:
            dataset = assemble(tables, feature_set)
            mask = in_period(dataset.frame[TIME_COLUMN], period["test_start"], period["test_end"])
            test = dataset.frame[mask].reset_index(drop=True)
            y = label_targets(test, tables.get("labels"), None, id_col="transaction_id").to_numpy()
            frames[feature_set] = (test, y, dataset.amount_usd[mask.to_numpy()].to_numpy())
        return frames[feature_set]

    def evaluate(pipeline: Pipeline, meta: Mapping[str, Any]) -> dict[str, float]:
        test, y, amount = out_of_time(meta["feature_set"])
        threshold = meta["tier_policy"]["medium_threshold"]
        return evaluate_model(pipeline, test, y, amount, threshold, config.policy.review_cost)

    return evaluate


def order_flags(frame: pd.DataFrame) -> pd.DataFrame:
    """Hard-rule flags of an order: a confirmed SANCTIONS hit on the buyer or the seller.

    A PEP is not a reason to block an order (enhanced due diligence happens on the customer);
    document and possible-match rules act on the customer at onboarding, not on every order.
    """
    hit = pd.Series(False, index=frame.index)
    for party in ("buyer", "seller"):
        status, list_type = f"{party}_screen_status", f"{party}_screen_list_type"
        if status in frame.columns and list_type in frame.columns:
            hit |= (frame[status].eq("hit") & frame[list_type].eq("sanction")).fillna(False).astype(bool)
    return pd.DataFrame({"screen_confirmed": hit})


def segment_columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """Segments for fairness: buyer type, buyer region and buyer age band."""
    countries = load_reference("countries").set_index("iso2")["region"]
    region = frame["buyer_residence_country"].map(countries).fillna("unknown")
    age = M.age_band(frame["buyer_birth_date"], frame[TIME_COLUMN])
    return {
        "buyer_type": frame["buyer_customer_type"].fillna("unknown").to_numpy(),
        "buyer_region": region.to_numpy(),
        "buyer_age_band": np.asarray(age),
    }


def tier_metrics(decisions: pd.DataFrame) -> dict[str, float]:
    """Tier mix and the auto-decision rate (share decided without a human)."""
    out = {
        f"tier_share.{tier}": float((decisions["tier"] == tier).mean()) for tier in ("low", "medium", "high")
    }
    for action, share in decisions["action"].value_counts(normalize=True).items():
        out[f"action_share.{action}"] = float(share)
    out["auto_decision_rate"] = float((~decisions["action"].isin(["review", "ask_to_correct"])).mean())
    return out


def recall_by_pattern(
    test: pd.DataFrame, scores: np.ndarray, threshold: float, patterns: pd.DataFrame | None
) -> pd.DataFrame:
    """Share of each planted pattern's transactions flagged (score ≥ threshold) in the test period.

    Returns:
        Columns ``pattern``, ``transactions``, ``flagged``, ``recall`` (empty without ground truth).
    """
    if patterns is None or not len(patterns):
        return pd.DataFrame(columns=["pattern", "transactions", "flagged", "recall"])
    tx = patterns[patterns["entity_type"] == "transaction"][["entity_id", "pattern"]]
    flagged = pd.DataFrame({"entity_id": test["transaction_id"].to_numpy(), "flagged": scores >= threshold})
    joined = tx.merge(flagged, on="entity_id", how="inner")
    table = (
        joined.groupby("pattern", sort=True)["flagged"].agg(transactions="size", flagged="sum").reset_index()
    )
    table["recall"] = table["flagged"] / table["transactions"]
    return table


# --- the model card and the flow's spec ------------------------------------------------------------


def model_card(model: TrainedModel, dataset: FraudData, data: Path, config: Config, model_uri: str) -> str:
    """The model card (markdown) logged with every run."""
    m = model.metrics
    fmt = card.formatter(m)
    split = model.split.to_dict()
    segs = card.segment_keys(m, ("segment.",), (".fpr", ".fpr_min_max_ratio", ".auc_roc"))
    pattern_rows = "\n".join(
        f"| {r.pattern} | {r.transactions} | {r.flagged} | {r.recall:.3f} |"
        for r in model.pattern_recall.itertuples()
    )
    features = "\n".join(
        f"- `{name}`: {meaning}" for name, meaning in describe_feature_set(dataset.feature_set)
    )
    policy = model.policy
    return f"""{card.header(FRAUD_MODEL, model_uri)}

## Intended use
Probability that a marketplace order is fraudulent (fraud, money laundering or restricted goods),
used with the tier policy below to approve, review or reject orders. Not for use as the only
ground for reporting a customer to the authorities: hard rules and human review do that.

## Data
- Folder `{data.resolve()}`; feature set `{dataset.feature_set_id}`.
- Split by time with gaps of {config.split.label_delay_days} days (label delay): train {split["train_start"]} to {split["train_end"]}, test {split["test_start"]} to {split["test_end"]}.
- Labels: training and calibration use labels known when the test period starts; the test uses every label known now.
- Rows: train {int(m["rows.train"]):,}, validation {int(m["rows.valid"]):,}, test {int(m["rows.test"]):,}; known positives in training {int(m["positives.train_known"])}.

## Out-of-time metrics
| metric | value |
|---|---|
| AUC ROC | {fmt("auc_roc")} |
| average precision | {fmt("average_precision")} |
| recall at 1% FPR | {fmt("recall_at_fpr_1pct")} |
| recall at 5% FPR | {fmt("recall_at_fpr_5pct")} |
| precision of top 100 per day | {fmt("precision_top100_per_day")} |
| expected cost saved vs approve-all (USD) | {fmt("expected_cost_saved")} |
| Brier score | {fmt("brier")} |
| expected calibration error | {fmt("ece")} |
| auto-decision rate | {fmt("auto_decision_rate")} |
| PSI of the score (train vs test) | {fmt("psi.score")} |

### By segment
{chr(10).join(f"- {k}: {fmt(k)}" for k in segs)}

### Recall per planted pattern (score ≥ review threshold)
| pattern | test transactions | flagged | recall |
|---|---:|---:|---:|
{pattern_rows}

## Thresholds and tier policy (version {policy.version})
- review (medium) from probability {policy.medium_threshold:.4f}; reject (high) from {policy.high_threshold:.4f}.
- chosen on the validation period from expected cost: review costs {policy.review_cost} USD, a missed fraud its amount, rejecting a good order {policy.reject_cost} USD + {policy.reject_margin:.0%} of its amount; review capacity {policy.review_capacity:.1%} of orders.
- hard rules: a confirmed watchlist hit on buyer or seller → report.

## Features
{features}

Plus KYC profile features of buyer and seller (features/profile.py) and watchlist screening at onboarding.

## Limitations
- Trained on the synthetic marketplace when the data folder is generated: do not tune production thresholds on it.
- Fraud whose labels arrive after the training cut-off (investigations months later) is under-represented in training; friendly fraud looks genuine by construction.
- Reasons are exact TreeSHAP contributions of the uncalibrated LightGBM model in log-odds; the calibrated probability is a monotone transform of that score.
"""


# The fraud run logs only the shared parameters, metadata, tables and figure titles.
SPEC = ModelSpec(
    key="fraud",
    registered_model=FRAUD_MODEL,
    experiment=FRAUD_EXPERIMENT,
    row_unit="orders",
    positives="known positives",
    time_column=TIME_COLUMN,
    n_prepare_steps=N_PREPARE_STEPS,
    assemble=lambda tables, config: assemble(tables, config.fraud.feature_set),
    targets=targets,
    helper_columns=lambda data, frame: {"_amount_usd": data.amount_usd.to_numpy()},
    categoricals_as_text=categoricals_as_text,
    build_pipeline=build_pipeline,
    finish=_finish,
    segment_figures=("buyer_type", "buyer_region"),
    model_card=model_card,
    gate_evaluator=gate_evaluator,
)
