"""The fraud model: its scikit-learn Pipeline, time-split training with label delay, calibration,
tier thresholds and the out-of-time evaluation of every run.

Plain typed step functions (Kedro style): they take frames and configuration, never file paths;
``training.run`` wires them to files, MLflow and the command line.

The logged artifact is ONE Pipeline: KYC profile transforms (which read raw personal data and
drop it) → event risk → drop identifiers → categorical encoding → the calibrated LightGBM model.
Its first ``N_PREPARE_STEPS`` steps produce the "model features" that the decision log stores;
the rest (encoding + model) replays a decision from them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from feature_engine.encoding import OrdinalEncoder
from feature_engine.selection import DropFeatures
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from features.assemble import ID_COLUMNS, model_frame, screen_customers
from features.batch import compute_features
from features.definitions import get_feature_set
from features.profile import EventRiskFeatures, PartyProfileFeatures
from features.reference import load_reference
from features.screening import WatchlistScreener
from training import metrics as M
from training.policy import TierPolicy, choose_thresholds
from training.splits import TimeSplit, label_targets, make_time_splits, split_frame

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
            ("drop", DropFeatures(features_to_drop=drop)),
            ("encode", categorical_encoder(categorical)),
            ("model", lgb.LGBMClassifier(**lgbm_params)),
        ]
    )


def categorical_encoder(categorical: list[str]) -> OrdinalEncoder:
    """The models' categorical encoding: arbitrary integer codes; unseen and missing values → -1."""
    return OrdinalEncoder(
        encoding_method="arbitrary",
        variables=categorical,
        missing_values="ignore",
        unseen="encode",
        ignore_format=True,
    )


def categoricals_as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """Categorical columns as pandas' string dtype with NaN for missing (one encoding everywhere)."""
    out = frame.copy()
    for column in CATEGORICAL:
        if column in out.columns:
            out[column] = out[column].astype("str")
    return out


def lgbm_of(model) -> lgb.LGBMClassifier:
    """The fitted LightGBM classifier inside a fraud Pipeline (calibrated or not)."""
    last = model[-1] if isinstance(model, Pipeline) else model
    if isinstance(last, CalibratedClassifierCV):
        inner = last.calibrated_classifiers_[0].estimator
        return inner.estimator if isinstance(inner, FrozenEstimator) else inner
    return last


def model_features(pipeline: Pipeline, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame after the preparation steps: what the decision log stores (no personal data)."""
    return pipeline[:N_PREPARE_STEPS].transform(categoricals_as_text(frame))


def predict_proba(pipeline: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """Calibrated fraud probability per row."""
    return pipeline.predict_proba(categoricals_as_text(frame))[:, 1]


@dataclass
class TrainedFraudModel:
    """Everything a run logs: the fitted Pipeline, its policy, split and evaluation."""

    pipeline: Pipeline
    uncalibrated: Pipeline
    policy: TierPolicy
    split: TimeSplit
    metrics: dict[str, float]
    test_frame: pd.DataFrame
    test_scores: np.ndarray
    test_y: np.ndarray
    valid_scores: np.ndarray
    valid_y: np.ndarray
    train_rows: int
    pattern_recall: pd.DataFrame
    psi: pd.DataFrame
    decisions: pd.DataFrame
    segments: pd.DataFrame
    timings: dict[str, float]
    train_frame: pd.DataFrame


def fit_fraud_model(data: FraudData, config: dict[str, Any]) -> TrainedFraudModel:
    """Train, calibrate, choose thresholds and evaluate the fraud model on time splits.

    * Split by time into train / validation / out-of-time test with gaps of at least the label
      delay (``config["split"]``).
    * Training and validation labels: those known when the test period starts (the moment the
      model is trained); the test is evaluated with every label known now.
    * The LightGBM Pipeline is fitted on train, calibrated (isotonic or Platt) on validation,
      and the tier thresholds are chosen on validation from expected cost and review capacity.

    Args:
        data: ``assemble`` output.
        config: the parsed training configuration (``training/config.toml``).

    Returns:
        ``TrainedFraudModel`` with metrics keyed like ``training.metrics.evaluate_scores``.
    """
    timings = dict(data.timings)
    split_cfg = config["split"]
    delay = f"{int(split_cfg['label_delay_days'])}D"
    frame = categoricals_as_text(data.frame)
    frame["_amount_usd"] = data.amount_usd.to_numpy()
    split = make_time_splits(
        frame[TIME_COLUMN],
        train_frac=split_cfg["train_frac"],
        valid_frac=split_cfg["valid_frac"],
        test_frac=split_cfg["test_frac"],
        label_delay=delay,
    )
    train, valid, test = split_frame(frame, TIME_COLUMN, split)
    cutoffs = split.label_cutoffs()
    # The model is trained just before the test period starts: training and validation use the
    # labels known by then ("refit" cut-off); the gap before the test gives validation rows at
    # least the label delay to mature. The test is scored with every label known now.
    y_train = label_targets(train, data.labels, cutoffs["refit"], id_col="transaction_id").to_numpy()
    y_valid = label_targets(valid, data.labels, cutoffs["refit"], id_col="transaction_id").to_numpy()
    y_test = label_targets(test, data.labels, None, id_col="transaction_id").to_numpy()
    if y_train.sum() < 5 or y_valid.sum() < 2:
        raise ValueError(
            f"too few known positives to train (train {int(y_train.sum())}, validation {int(y_valid.sum())}): "
            "generate more customers or days, or shorten the label delay"
        )
    inputs = [c for c in frame.columns if c != "_amount_usd"]

    started = time.perf_counter()
    pipeline = build_pipeline(frame[inputs], dict(config["fraud"]["lightgbm"]))
    pipeline.fit(train[inputs], y_train)
    timings["fit_s"] = time.perf_counter() - started

    started = time.perf_counter()
    method = config["fraud"].get("calibration", "isotonic")
    prepared_valid = pipeline[:-1].transform(valid[inputs])
    calibrated = CalibratedClassifierCV(FrozenEstimator(pipeline[-1]), method=method)
    calibrated.fit(prepared_valid, y_valid)
    final = Pipeline(pipeline.steps[:-1] + [("model", calibrated)])
    timings["calibrate_s"] = time.perf_counter() - started

    valid_scores = final.predict_proba(valid[inputs])[:, 1]
    test_scores = final.predict_proba(test[inputs])[:, 1]
    policy_cfg = config["policy"]
    flags_valid = order_flags(valid)
    policy = choose_thresholds(
        valid_scores,
        y_valid,
        valid["_amount_usd"].to_numpy(),
        review_cost=policy_cfg["review_cost"],
        review_capacity=policy_cfg["review_capacity"],
        reject_cost=policy_cfg["reject_cost"],
        reject_margin=policy_cfg["reject_margin"],
        review_detection_rate=policy_cfg.get("review_detection_rate", 1.0),
        forced_review=flags_valid["screen_confirmed"].fillna(False).to_numpy(dtype=bool),
        version=f"fraud-{data.feature_set_id}",
    )

    started = time.perf_counter()
    segments = segment_columns(test)
    result = M.evaluate_scores(
        y_test,
        test_scores,
        amount=test["_amount_usd"].to_numpy(),
        times=test[TIME_COLUMN],
        customer_ids=test["buyer_id"].to_numpy(),
        segments=segments,
        threshold=policy.medium_threshold,
        review_cost=policy_cfg["review_cost"],
    )
    decisions = policy.decide_frame(test_scores, order_flags(test))
    result.update(tier_metrics(decisions))
    pattern_recall = recall_by_pattern(test, test_scores, policy.medium_threshold, data.patterns)
    for row in pattern_recall.itertuples():
        result[f"pattern.{row.pattern}.recall"] = row.recall
    model_cols_train = model_features(final, train[inputs])
    model_cols_test = model_features(final, test[inputs])
    numeric = [c for c in model_cols_train.columns if pd.api.types.is_numeric_dtype(model_cols_train[c])]
    psi = M.psi_by_feature(model_cols_train[numeric], model_cols_test[numeric])
    train_scores = final.predict_proba(train[inputs])[:, 1]
    result["psi.score"] = M.population_stability_index(train_scores, test_scores)
    result["psi.max_feature"] = float(psi["psi"].max()) if len(psi) else float("nan")
    result["rows.train"], result["rows.valid"], result["rows.test"] = len(train), len(valid), len(test)
    result["positives.train_known"] = float(y_train.sum())
    result["positives.valid_known"] = float(y_valid.sum())
    timings["evaluate_s"] = time.perf_counter() - started
    return TrainedFraudModel(
        pipeline=final,
        uncalibrated=pipeline,
        policy=policy,
        split=split,
        metrics=result,
        test_frame=test[inputs],
        test_scores=test_scores,
        test_y=y_test,
        valid_scores=valid_scores,
        valid_y=y_valid,
        train_rows=len(train),
        pattern_recall=pattern_recall,
        psi=psi,
        decisions=decisions,
        segments=pd.DataFrame(segments),
        timings=timings,
        train_frame=train[inputs],
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
    scores = predict_proba(pipeline, test_frame)
    return M.evaluate_scores(
        y,
        scores,
        amount=amount_usd,
        times=test_frame[TIME_COLUMN],
        customer_ids=test_frame["buyer_id"].to_numpy(),
        segments=segment_columns(test_frame),
        threshold=threshold,
        review_cost=review_cost,
    )


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
