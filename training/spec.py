"""What differs between the fraud and the risk-tier model, as data: ``ModelSpec``, and the trained result.

``training.fitting`` (split, fit, calibrate) and ``training.flow`` (MLflow run, registry, gate) are
written once and read everything model-specific from a ``ModelSpec``; each model module
(``training.fraud``, ``training.risk``) builds its own spec from its own step functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.config import Config
from training.policy import TierPolicy
from training.splits import TimeSplit


@dataclass
class Fitted:
    """The shared fitting step's output that a model's own policy and evaluation read.

    Attributes:
        split: the time split.
        train, valid, test: rows of each period (model inputs plus the spec's helper columns).
        inputs: the model input columns (``train[inputs]`` is what the Pipeline sees).
        y_train, y_valid: targets from the labels known at the "refit" cut-off; ``y_test`` every label.
        pipeline: the fitted, uncalibrated Pipeline; ``final`` the calibrated one (same steps).
        features_train, features_valid, features_test: each period after the first
            ``n_prepare_steps`` steps (the model features; no personal data).
        train_scores, valid_scores, test_scores: calibrated probabilities.
        timings: seconds per step (assembly's included).
    """

    split: TimeSplit
    train: pd.DataFrame
    valid: pd.DataFrame
    test: pd.DataFrame
    inputs: list[str]
    y_train: np.ndarray
    y_valid: np.ndarray
    y_test: np.ndarray
    pipeline: Any
    final: Any
    features_train: pd.DataFrame
    features_valid: pd.DataFrame
    features_test: pd.DataFrame
    train_scores: np.ndarray
    valid_scores: np.ndarray
    test_scores: np.ndarray
    timings: dict[str, float]


@dataclass
class Outcome:
    """A model's own policy and evaluation of a ``Fitted`` (``ModelSpec.finish``).

    ``extras`` are the ``TrainedModel`` fields only one model has (the risk model's review rules,
    rule table and "already known bad" flags).
    """

    policy: TierPolicy
    metrics: dict[str, float]
    pattern_recall: pd.DataFrame
    decisions: pd.DataFrame
    segments: Mapping[str, np.ndarray]
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainedModel:
    """Everything a run logs: the fitted Pipeline, its policy, split and evaluation."""

    pipeline: Any
    uncalibrated: Any
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
    # the risk-tier model's own results (None for the fraud model)
    review_rules: dict[str, Any] | None = None
    rule_table: pd.DataFrame | None = None
    test_known: np.ndarray | None = None  # customer already known bad at as_of


def _nothing_more(*_: Any) -> dict[str, Any]:
    return {}


def _no_tables(*_: Any) -> None:
    return None


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One model as the shared flow sees it.

    The hooks with a default (extra run parameters, metadata and tables, figure titles, a gate
    override) are what a model adds to the shared run; a model that adds nothing leaves them out.

    Attributes:
        key: the model's name on the command line and its ``Config`` section (``fraud``, ``risk``).
        registered_model, experiment: MLflow names (``training.names``).
        row_unit: what one row is, for titles (``orders``, ``snapshots``).
        positives: what a positive is, for the "too few to train" error.
        time_column: the event (or snapshot) time the split is made on.
        n_prepare_steps: Pipeline steps that produce the model features.
        gate_override: the ``[gate.<name>]`` table replacing ``[gate]``'s keys, or None.
        assemble: ``(tables, config) -> dataset`` (the model's input rows, point in time).
        targets: ``(dataset, rows, cutoff, config) -> y`` from the labels known before ``cutoff``
            (``None``: every label).
        helper_columns: ``(dataset, frame) -> columns`` carried through the split beside the inputs.
        categoricals_as_text: the one encoding of categorical inputs everywhere.
        build_pipeline: ``(frame, lightgbm params) -> Pipeline`` (unfitted).
        finish: ``(dataset, fitted, config) -> Outcome``: the tier policy and the evaluation.
        run_params: ``(model, dataset, config) -> params`` logged beside the shared ones.
        metadata: ``(model, dataset, config) -> metadata`` of the logged model beside the shared ones.
        write_tables: ``(model, folder)`` writes the model's own tables beside the shared ones.
        figure_titles: titles of the shared figures (``roc``, ``precision_recall``, ``calibration``,
            ``tiers``); a missing name keeps ``training.plots``' default.
        segment_figures: segments plotted (FPR by segment); ``segment_title`` a format with ``{name}``.
        model_card: ``(model, dataset, data folder, config, model URI) -> markdown``.
        gate_evaluator: ``(folder, source, challenger metadata, config, load_tables) ->
            (pipeline, metadata) -> metrics``: both models of the gate on the same out-of-time rows.
    """

    key: str
    registered_model: str
    experiment: str
    row_unit: str
    positives: str
    time_column: str
    n_prepare_steps: int
    gate_override: str | None = None
    assemble: Callable[[dict[str, pd.DataFrame], Config], Any]
    targets: Callable[[Any, pd.DataFrame, Any, Config], np.ndarray]
    helper_columns: Callable[[Any, pd.DataFrame], dict[str, np.ndarray]]
    categoricals_as_text: Callable[[pd.DataFrame], pd.DataFrame]
    build_pipeline: Callable[[pd.DataFrame, dict[str, Any]], Any]
    finish: Callable[[Any, Fitted, Config], Outcome]
    run_params: Callable[[TrainedModel, Any, Config], dict[str, Any]] = _nothing_more
    metadata: Callable[[TrainedModel, Any, Config], dict[str, Any]] = _nothing_more
    write_tables: Callable[[TrainedModel, Path], None] = _no_tables
    figure_titles: Mapping[str, str] = field(default_factory=dict)
    segment_figures: Sequence[str]
    segment_title: str | None = None
    model_card: Callable[[TrainedModel, Any, Path, Config, str], str]
    gate_evaluator: Callable[..., Callable[[Any, dict[str, Any]], dict[str, float]]]

    @property
    def artifact(self) -> str:
        """The logged model's name inside its run (``fraud_model``, ``risk_model``)."""
        return f"{self.key}_model"

    @property
    def run_prefix(self) -> str:
        """Runs are named ``{run_prefix}-{feature set}``: the model's key."""
        return self.key

    def section(self, config: Config) -> Any:
        """This model's section of the configuration (``config.fraud`` or ``config.risk``)."""
        return getattr(config, self.key)
