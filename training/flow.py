"""One training flow for both models: data folder → assemble → fit → MLflow run → challenger → gate.

``train`` takes a ``ModelSpec`` (``training.fraud.SPEC``, ``training.risk.SPEC``; ``SPECS`` by
command-line name) and runs the same steps for either model: load and validate the tables,
assemble the model's rows, fit, calibrate, choose the policy and evaluate (``training.fitting``),
log one MLflow run (parameters, config file, dataset inputs, metrics, figures, tables, the whole
Pipeline with its metadata and the model card), register the model as ``challenger`` and run the
promotion gate on the same out-of-time data as the champion. Everything model-specific is read
from the spec; ``training.tracking`` is the only package that touches MLflow.

Promotion gate. ``[gate]`` in the configuration is the fraud model's gate; the risk model reads
``[gate.risk]`` when present, its keys replacing the base gate's one by one (``training.config``).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from features.io import load_valid_dataset
from training import fitting, fraud, plots, risk, tracking
from training import metrics as M
from training.config import DEFAULT_CONFIG, Config, as_config, load_config
from training.explain import contributions
from training.spec import ModelSpec, TrainedModel

log = logging.getLogger(__name__)

TAG_DATA = "kycrisk.data.path"
TAG_SOURCE = "kycrisk.data.source"
SPECS: dict[str, ModelSpec] = {"fraud": fraud.SPEC, "risk": risk.SPEC}


def load_tables(data: Path, source: str = "kycrisk") -> dict[str, pd.DataFrame]:
    """Validated tables of a data folder, plus the generator's ``patterns`` ground truth if present."""
    tables = dict(load_valid_dataset(data, source=source))
    patterns = Path(data) / "patterns.parquet"
    if "patterns" not in tables and patterns.is_file():
        tables["patterns"] = pd.read_parquet(patterns)
    return tables


@dataclass
class RunResult:
    """What a training run left: its run, the logged and registered model, metrics and the gate's decision."""

    run_id: str
    model_uri: str
    version: str
    metrics: dict[str, float]
    promotion: dict | None


def train(
    spec: ModelSpec,
    data: Path,
    config_path: Path | None = None,
    source: str = "kycrisk",
    promote_after: bool = True,
) -> RunResult:
    """Train one model on a data folder, log everything to MLflow, register a challenger, gate it.

    Args:
        spec: the model (``SPECS["fraud"]``, ``SPECS["risk"]``).
        data: folder with the contract tables (``kycrisk generate`` output or adapted data).
        config_path: training configuration (default ``training/config.toml``).
        source: input layout (``kycrisk`` or ``fdh``; the fdh benchmark has no customer labels).
        promote_after: run the promotion gate right after registering.

    Returns:
        The run id, logged model URI, registered version, metrics and the promotion decision.

    Raises:
        ValueError: invalid data or configuration, or too few known positives to train.
    """
    data = Path(data)
    config_file = Path(config_path) if config_path else DEFAULT_CONFIG
    config = load_config(config_file)
    tracking.configure()
    tables = load_tables(data, source)
    log.info("assembling the %s model's rows from %s", spec.key, data)
    dataset = spec.assemble(tables, config)
    log.info(
        "training, calibrating and evaluating the %s model on %s rows", spec.key, f"{len(dataset.frame):,}"
    )
    model = fitting.fit(spec, dataset, config)
    run_id, model_uri, version = log_run(spec, model, dataset, data, config, config_file, source)
    promotion = promote(spec, data, config, source=source).to_dict() if promote_after else None
    return RunResult(
        run_id=run_id, model_uri=model_uri, version=version, metrics=model.metrics, promotion=promotion
    )


def log_run(
    spec: ModelSpec,
    model: TrainedModel,
    dataset: Any,
    data: Path,
    config: Config | Mapping[str, Any],
    config_file: Path,
    source: str = "kycrisk",
) -> tuple[str, str, str]:
    """Log a trained model as one MLflow run and register it as the challenger.

    Logs parameters (the model's section, ``[split]``, ``[policy]``, the feature set, the data
    folder and digest, the split periods and the spec's own), the config file, dataset inputs,
    metrics and timings, figures, tables (pattern recall, PSI, reliability, tier policy and the
    spec's own), the Pipeline with its metadata and the model card.

    Returns:
        ``(run_id, model_uri, registered_version)``.
    """
    config = as_config(config)
    tracking.configure()
    data = Path(data)
    parquet = sorted(data.glob("*.parquet")) or sorted(data.glob("*.csv"))
    digest = tracking.sha256_files(parquet)
    split = model.split
    settings = config.to_dict()
    tags = {TAG_DATA: str(data.resolve()), TAG_SOURCE: source}
    with tracking.start_run(
        spec.experiment, run_name=f"{spec.run_prefix}-{dataset.feature_set}", tags=tags
    ) as run:
        tracking.log_config_file(config_file)
        tracking.log_params_flat({key: settings[key] for key in (spec.key, "split", "policy")})
        tracking.log_params_flat(
            {
                "feature_set": dataset.feature_set_id,
                "data.path": str(data.resolve()),
                "data.sha256": digest,
                **spec.run_params(model, dataset, config),
            }
        )
        tracking.log_params_flat({f"split.{k}": v for k, v in split.to_dict().items()})
        tracking.log_dataset_input(model.train_frame, "train", data.resolve(), "training", digest=digest)
        tracking.log_dataset_input(model.test_frame, "test", data.resolve(), "test", digest=digest)
        tracking.log_metrics_flat(model.metrics)
        tracking.log_metrics_flat({f"time.{k}": v for k, v in model.timings.items()})
        with tempfile.TemporaryDirectory() as tmp:
            tracking.log_figure_files(figures(spec, model, Path(tmp)))
            tables_dir = Path(tmp) / "tables"
            tables_dir.mkdir()
            model.pattern_recall.to_csv(tables_dir / "pattern_recall.csv", index=False)
            model.psi.to_csv(tables_dir / "psi_by_feature.csv")
            M.reliability_table(model.test_y, model.test_scores).to_csv(
                tables_dir / "reliability.csv", index=False
            )
            (tables_dir / "tier_policy.json").write_text(model.policy.to_json())
            spec.write_tables(model, tables_dir)
            tracking.log_figure_files(sorted(tables_dir.iterdir()), artifact_path="tables")
        metadata = {
            "model_name": spec.registered_model,
            "feature_set": dataset.feature_set,
            "feature_set_id": dataset.feature_set_id,
            "tier_policy": model.policy.to_dict(),
            "training_period": {k: str(v) for k, v in split.to_dict().items()},
            "data_sha256": digest,
            "n_prepare_steps": spec.n_prepare_steps,
            **spec.metadata(model, dataset, config),
        }
        model_uri, version = log_and_register(
            model.pipeline,
            spec.artifact,
            spec.categoricals_as_text(model.test_frame.head(2000)),
            metadata,
            lambda uri: spec.model_card(model, dataset, data, config, uri),
            data,
            run.info.run_id,
        )
    return run.info.run_id, model_uri, version


def log_and_register(
    pipeline: Any,
    artifact: str,
    sample: pd.DataFrame,
    metadata: dict[str, Any],
    card: Callable[[str], str],
    data: Path,
    run_id: str,
) -> tuple[str, str]:
    """Log a model's Pipeline and model card to the active run and register it as the challenger.

    Args:
        pipeline: the fitted Pipeline.
        artifact: name of the logged model in the run (e.g. ``fraud_model``).
        sample: raw input rows for the signature and input example.
        metadata: the model's metadata; ``model_name`` is the registered name and
            ``feature_set_id`` is tagged on the version.
        card: builds the model card (markdown) from the logged model's URI.
        data: the training data folder (tagged on the version).
        run_id: the active run (tagged on the version).

    Returns:
        ``(model_uri, registered_version)``.
    """
    name = metadata["model_name"]
    info = tracking.log_pipeline(pipeline, artifact, sample, metadata=metadata)
    tracking.log_text(card(info.model_uri), "model_card.md")
    version = tracking.register(
        info.model_uri,
        name,
        tags={"feature_set": metadata["feature_set_id"], "run_id": run_id, TAG_DATA: str(data.resolve())},
    )
    return info.model_uri, str(version.version)


def promote(
    spec: ModelSpec,
    data: Path | None = None,
    config: Config | Mapping[str, Any] | None = None,
    source: str = "kycrisk",
) -> tracking.PromotionResult:
    """Compare a model's challenger with its champion on the same out-of-time data and gate it.

    The out-of-time rows are the challenger's own test period on its training data folder
    (``data`` overrides the folder); both models score exactly those rows
    (``spec.gate_evaluator``). The gate is ``[gate]``, with ``[gate.<spec.gate_override>]``'s keys.
    """
    config = as_config(config) if config is not None else load_config()
    tracking.configure()
    name = spec.registered_model
    challenger = tracking.get_alias_version(name, tracking.CHALLENGER)
    if challenger is None:
        raise ValueError(f"no {tracking.CHALLENGER!r} version of {name}: train one first (kycrisk train)")
    loaded = tracking.load_model(name, tracking.CHALLENGER)
    folder = Path(data) if data else Path(loaded.tags.get(TAG_DATA) or challenger.tags.get(TAG_DATA, ""))
    if not folder.is_dir():
        raise FileNotFoundError(f"out-of-time data folder {folder} not found: pass --data")
    gate = config.gate.gate(spec.gate_override)
    evaluate = spec.gate_evaluator(lambda: load_tables(folder, source), loaded.metadata, config)
    return tracking.promote(name, lambda uri: evaluate(*tracking.load_pipeline_and_metadata(uri)), gate)


# --- figures ---------------------------------------------------------------------------------------


def figures(spec: ModelSpec, model: TrainedModel, folder: Path) -> list[Path]:
    """The run's figures: ROC, precision-recall, reliability, tiers, FPR by segment and the SHAP summary."""
    y, s = model.test_y, model.test_scores

    def titled(name: str) -> dict[str, str]:
        return {"title": spec.figure_titles[name]} if name in spec.figure_titles else {}

    paths = [
        plots.plot_roc(y, s, folder / "roc.png", **titled("roc")),
        plots.plot_precision_recall(y, s, folder / "precision_recall.png", **titled("precision_recall")),
        plots.plot_calibration(y, s, folder / "calibration.png", **titled("calibration")),
        plots.plot_tier_distribution(model.decisions["tier"], folder / "tiers.png", y=y, **titled("tiers")),
    ]
    for name in spec.segment_figures:
        table = M.segment_metrics(y, s, model.segments[name], threshold=model.policy.medium_threshold)
        title = {"title": spec.segment_title.format(name=name)} if spec.segment_title else {}
        paths.append(
            plots.plot_segment_comparison(table, folder / f"segments_{name}.png", metric="fpr", **title)
        )
    paths.append(shap_summary(spec, model, folder / "shap_summary.png"))
    return paths


def shap_summary(spec: ModelSpec, model: TrainedModel, path: Path, rows: int = 5000, top: int = 20) -> Path:
    """Mean |TreeSHAP contribution| per feature on test rows (log-odds), as a bar chart."""
    sample = model.test_frame.sample(min(rows, len(model.test_frame)), random_state=0)
    prepared = model.pipeline[:-1].transform(spec.categoricals_as_text(sample))
    contrib = contributions(fitting.lgbm_of(model.pipeline), prepared).drop(columns="bias")
    mean_abs = contrib.abs().mean().sort_values(ascending=True).tail(top)
    return plots.plot_mean_contributions(
        mean_abs, path, title=f"Top {len(mean_abs)} features on {len(sample):,} test {spec.row_unit}"
    )


# --- the two models by name (the command line's entry points) --------------------------------------


def train_fraud(
    data: Path, config_path: Path | None = None, source: str = "kycrisk", promote_after: bool = True
) -> RunResult:
    """``train`` for the fraud model."""
    return train(fraud.SPEC, data, config_path, source, promote_after)


def train_risk(
    data: Path, config_path: Path | None = None, source: str = "kycrisk", promote_after: bool = True
) -> RunResult:
    """``train`` for the customer risk-tier model."""
    return train(risk.SPEC, data, config_path, source, promote_after)


def log_fraud_run(
    model: TrainedModel, dataset: Any, data: Path, config: Any, config_file: Path, source: str = "kycrisk"
) -> tuple[str, str, str]:
    """``log_run`` for the fraud model (a model trained outside ``train``, e.g. in a notebook)."""
    return log_run(fraud.SPEC, model, dataset, data, config, config_file, source)


def promote_fraud(
    data: Path | None = None, config: Any = None, source: str = "kycrisk"
) -> tracking.PromotionResult:
    """``promote`` for the fraud model."""
    return promote(fraud.SPEC, data, config, source)


def promote_risk(
    data: Path | None = None, config: Any = None, source: str = "kycrisk"
) -> tracking.PromotionResult:
    """``promote`` for the customer risk-tier model."""
    return promote(risk.SPEC, data, config, source)
