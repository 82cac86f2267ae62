"""The fitting step both models share: time split, label cut-offs, Pipeline fit, calibration and common metrics.

Written once for every ``ModelSpec`` (``training.spec``): the model modules call ``fit`` with their
own spec (``training.fraud.fit_fraud_model``, ``training.risk.fit_risk_model``) and contribute only
their policy and evaluation (``ModelSpec.finish``). ``training.flow`` puts the result into MLflow.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.pipeline import Pipeline

from training import metrics as M
from training.config import Config, as_config
from training.spec import Fitted, ModelSpec, TrainedModel
from training.splits import make_time_splits, split_frame


def fit(spec: ModelSpec, data: Any, config: Config | Mapping[str, Any]) -> TrainedModel:
    """Split by time, fit, calibrate, then let the model choose its policy and evaluate itself.

    * Split by ``spec.time_column`` into train / validation / out-of-time test with gaps of at
      least the label delay (``config.split``).
    * Training and validation targets: the labels known when the test period starts (the moment
      the model is trained); the test is evaluated with every label known now.
    * The Pipeline is fitted on train and its LightGBM model calibrated (``calibration`` of the
      model's section: isotonic or Platt) on validation; ``spec.finish`` then chooses the tier
      policy on validation and evaluates on the test.
    * Drift (PSI of the score and of every numeric model feature, train vs test) and row counts.

    Args:
        spec: the model.
        data: the model's assembled dataset (``frame``, ``timings``, ``feature_set_id``, ...).
        config: the training configuration (or its parsed TOML).

    Returns:
        ``TrainedModel``; metric keys as ``training.metrics.evaluate_scores`` plus the model's own,
        ``psi.*``, ``rows.*`` and ``positives.*``.

    Raises:
        ValueError: too few known positives to train, or an invalid configuration.
    """
    config = as_config(config)
    section = spec.section(config)
    timings = dict(data.timings)
    frame = spec.categoricals_as_text(data.frame)
    helpers = spec.helper_columns(data, frame)
    for name, values in helpers.items():
        frame[name] = values
    split = make_time_splits(
        frame[spec.time_column],
        train_frac=config.split.train_frac,
        valid_frac=config.split.valid_frac,
        test_frac=config.split.test_frac,
        label_delay=config.split.label_delay,
    )
    train, valid, test = split_frame(frame, spec.time_column, split)
    cutoffs = split.label_cutoffs()
    # The model is trained just before the test period starts: training and validation use the
    # labels known by then ("refit" cut-off); the gap before the test gives validation rows at
    # least the label delay to mature. The test is scored with every label known now.
    y_train = spec.targets(data, train, cutoffs["refit"], config)
    y_valid = spec.targets(data, valid, cutoffs["refit"], config)
    y_test = spec.targets(data, test, None, config)
    if y_train.sum() < 5 or y_valid.sum() < 2:
        raise ValueError(
            f"too few {spec.positives} to train (train {int(y_train.sum())}, validation {int(y_valid.sum())}): "
            "generate more customers or days, or shorten the label delay"
        )
    inputs = [c for c in frame.columns if c not in helpers]

    started = time.perf_counter()
    pipeline = spec.build_pipeline(frame[inputs], dict(section.lightgbm))
    pipeline.fit(train[inputs], y_train)
    timings["fit_s"] = time.perf_counter() - started

    # Each period goes through the (slow) KYC profile steps once: prepared features for rules and
    # PSI, encoded features for the model.
    started = time.perf_counter()
    prepare, encode = pipeline[: spec.n_prepare_steps], pipeline[spec.n_prepare_steps : -1]
    features_train, features_valid, features_test = (
        prepare.transform(p[inputs]) for p in (train, valid, test)
    )
    encoded_valid = encode.transform(features_valid)
    timings["prepare_s"] = time.perf_counter() - started
    started = time.perf_counter()
    calibrated = CalibratedClassifierCV(FrozenEstimator(pipeline[-1]), method=section.calibration)
    calibrated.fit(encoded_valid, y_valid)
    final = Pipeline(pipeline.steps[:-1] + [("model", calibrated)])
    timings["calibrate_s"] = time.perf_counter() - started

    fitted = Fitted(
        split=split,
        train=train,
        valid=valid,
        test=test,
        inputs=inputs,
        y_train=y_train,
        y_valid=y_valid,
        y_test=y_test,
        pipeline=pipeline,
        final=final,
        features_train=features_train,
        features_valid=features_valid,
        features_test=features_test,
        train_scores=calibrated.predict_proba(encode.transform(features_train))[:, 1],
        valid_scores=calibrated.predict_proba(encoded_valid)[:, 1],
        test_scores=calibrated.predict_proba(encode.transform(features_test))[:, 1],
        timings=timings,
    )
    started = time.perf_counter()
    outcome = spec.finish(data, fitted, config)
    result = outcome.metrics
    numeric = [c for c in features_train.columns if pd.api.types.is_numeric_dtype(features_train[c])]
    psi = M.psi_by_feature(features_train[numeric], features_test[numeric])
    result["psi.score"] = M.population_stability_index(fitted.train_scores, fitted.test_scores)
    result["psi.max_feature"] = float(psi["psi"].max()) if len(psi) else float("nan")
    result["rows.train"], result["rows.valid"], result["rows.test"] = len(train), len(valid), len(test)
    result["positives.train_known"] = float(y_train.sum())
    result["positives.valid_known"] = float(y_valid.sum())
    timings["evaluate_s"] = time.perf_counter() - started
    return TrainedModel(
        pipeline=final,
        uncalibrated=pipeline,
        policy=outcome.policy,
        split=split,
        metrics=result,
        test_frame=test[inputs].reset_index(drop=True),
        test_scores=fitted.test_scores,
        test_y=y_test,
        valid_scores=fitted.valid_scores,
        valid_y=y_valid,
        train_rows=len(train),
        pattern_recall=outcome.pattern_recall,
        psi=psi,
        decisions=outcome.decisions.reset_index(drop=True),
        segments=pd.DataFrame(outcome.segments),
        timings=timings,
        train_frame=train[inputs].reset_index(drop=True),
        **outcome.extras,
    )


def as_text(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """A copy of ``frame`` with ``columns`` (those present) as pandas' string dtype, NaN for missing."""
    out = frame.copy(deep=False)  # copy-on-write: ``frame`` stays as it is without a copy of its data
    for column in columns:
        if column in out.columns:
            out[column] = out[column].astype("str")
    return out


@dataclass(frozen=True)
class Inputs:
    """How a model's raw rows reach its Pipeline: one encoding of the categoricals, then the steps.

    Each model module offers the bound methods under its own names (``fraud.predict_proba``,
    ``risk.model_features``, ...): training, the service and replay go through the same three.

    Attributes:
        categorical: the model's categorical input columns.
        n_prepare_steps: Pipeline steps that produce the model features (what rules and the
            decision log read; no personal data).
    """

    categorical: tuple[str, ...]
    n_prepare_steps: int

    def categoricals_as_text(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Categorical columns as pandas' string dtype with NaN for missing (one encoding everywhere)."""
        return as_text(frame, self.categorical)

    def model_features(self, pipeline: Pipeline, frame: pd.DataFrame) -> pd.DataFrame:
        """The frame after the preparation steps."""
        return pipeline[: self.n_prepare_steps].transform(self.categoricals_as_text(frame))

    def predict_proba(self, pipeline: Pipeline, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probability of the positive class per row."""
        return pipeline.predict_proba(self.categoricals_as_text(frame))[:, 1]


def lgbm_of(model: Any) -> lgb.LGBMClassifier:
    """The fitted LightGBM classifier inside a Pipeline that ``fit`` built (calibrated or not)."""
    last = model[-1] if isinstance(model, Pipeline) else model
    if isinstance(last, CalibratedClassifierCV):
        inner = last.calibrated_classifiers_[0].estimator
        return inner.estimator if isinstance(inner, FrozenEstimator) else inner
    return last
