"""Training runs end to end: data folder → fraud model → MLflow run, registry and promotion.

This is the one place that ties the step functions of ``training.fraud`` to files, the tracking
store (through ``training.tracking``) and the command line.
"""

from __future__ import annotations

import getpass
import logging
import platform
import tempfile
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.definitions import describe_feature_set
from features.io import load_valid_dataset
from training import fraud, plots, tracking
from training import metrics as M
from training.explain import contributions
from training.splits import label_targets

log = logging.getLogger(__name__)

FRAUD_MODEL = "kycrisk-fraud"
EXPERIMENT = "kycrisk-fraud"
DEFAULT_CONFIG = Path(__file__).with_name("config.toml")
TAG_DATA = "kycrisk.data.path"
TAG_SOURCE = "kycrisk.data.source"


def load_config(path: str | Path | None = None) -> dict[str, Any]:
    """Parse a training configuration file (``training/config.toml`` by default)."""
    path = Path(path) if path else DEFAULT_CONFIG
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"config file {path} is not valid TOML: {exc}") from None


def load_tables(data: Path, source: str = "kycrisk") -> dict[str, pd.DataFrame]:
    """Validated tables of a data folder, plus the generator's ``patterns`` ground truth if present."""
    tables = dict(load_valid_dataset(data, source=source))
    patterns = data / "patterns.parquet"
    if "patterns" not in tables and patterns.is_file():
        tables["patterns"] = pd.read_parquet(patterns)
    return tables


@dataclass
class FraudRunResult:
    run_id: str
    model_uri: str
    version: str
    metrics: dict[str, float]
    promotion: dict | None


def train_fraud(
    data: Path, config_path: Path | None = None, source: str = "kycrisk", promote_after: bool = True
) -> FraudRunResult:
    """Train the fraud model on a data folder, log everything to MLflow, register a challenger.

    Args:
        data: folder with the contract tables (``kycrisk generate`` output or adapted data).
        config_path: training configuration (default ``training/config.toml``).
        source: input layout (``kycrisk`` or ``fdh``).
        promote_after: run the promotion gate right after registering.

    Returns:
        The run id, logged model URI, registered version, metrics and the promotion decision.
    """
    config_file = Path(config_path) if config_path else DEFAULT_CONFIG
    config = load_config(config_file)
    tracking.configure()
    tables = load_tables(data, source)
    feature_set = config["fraud"]["feature_set"]
    log.info("assembling %s features for %s transactions", feature_set, f"{len(tables['transactions']):,}")
    dataset = fraud.assemble(tables, feature_set)
    log.info("training, calibrating and evaluating")
    model = fraud.fit_fraud_model(dataset, config)
    run_id, model_uri, version = log_fraud_run(model, dataset, data, config, config_file, source)
    promotion = promote_fraud(data, config, source=source).to_dict() if promote_after else None
    return FraudRunResult(
        run_id=run_id, model_uri=model_uri, version=version, metrics=model.metrics, promotion=promotion
    )


def log_fraud_run(
    model: fraud.TrainedFraudModel,
    dataset: fraud.FraudData,
    data: Path,
    config: dict[str, Any],
    config_file: Path,
    source: str = "kycrisk",
) -> tuple[str, str, str]:
    """Log a trained fraud model as one MLflow run and register it as the challenger.

    Returns:
        ``(run_id, model_uri, registered_version)``.
    """
    tracking.configure()
    feature_set = dataset.feature_set
    parquet = sorted(data.glob("*.parquet")) or sorted(data.glob("*.csv"))
    digest = tracking.sha256_files(parquet)
    split = model.split
    tags = {TAG_DATA: str(data.resolve()), TAG_SOURCE: source}
    with tracking.start_run(EXPERIMENT, run_name=f"fraud-{feature_set}", tags=tags) as run:
        tracking.log_config_file(config_file)
        tracking.log_params_flat(
            {"fraud": config["fraud"], "split": config["split"], "policy": config["policy"]}
        )
        tracking.log_params_flat(
            {"feature_set": dataset.feature_set_id, "data.path": str(data.resolve()), "data.sha256": digest}
        )
        tracking.log_params_flat({f"split.{k}": v for k, v in split.to_dict().items()})
        tracking.log_dataset_input(model.train_frame, "train", data.resolve(), "training", digest=digest)
        tracking.log_dataset_input(model.test_frame, "test", data.resolve(), "test", digest=digest)
        tracking.log_metrics_flat(model.metrics)
        tracking.log_metrics_flat({f"time.{k}": v for k, v in model.timings.items()})
        with tempfile.TemporaryDirectory() as tmp:
            figures = _figures(model, Path(tmp))
            tracking.log_figure_files(figures)
            tables_dir = Path(tmp) / "tables"
            tables_dir.mkdir()
            model.pattern_recall.to_csv(tables_dir / "pattern_recall.csv", index=False)
            model.psi.to_csv(tables_dir / "psi_by_feature.csv")
            M.reliability_table(model.test_y, model.test_scores).to_csv(
                tables_dir / "reliability.csv", index=False
            )
            (tables_dir / "tier_policy.json").write_text(model.policy.to_json())
            tracking.log_figure_files(sorted(tables_dir.iterdir()), artifact_path="tables")
        metadata = {
            "model_name": FRAUD_MODEL,
            "feature_set": dataset.feature_set,
            "feature_set_id": dataset.feature_set_id,
            "tier_policy": model.policy.to_dict(),
            "training_period": {k: str(v) for k, v in split.to_dict().items()},
            "data_sha256": digest,
            "n_prepare_steps": fraud.N_PREPARE_STEPS,
        }
        model_uri, version = log_and_register(
            model.pipeline,
            "fraud_model",
            fraud.categoricals_as_text(model.test_frame.head(2000)),
            metadata,
            lambda uri: model_card(model, dataset, data, config, uri),
            data,
            run.info.run_id,
        )
    return run.info.run_id, model_uri, version


def log_and_register(
    pipeline: Any,
    artifact: str,
    sample: pd.DataFrame,
    metadata: dict[str, Any],
    card: Any,
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


def promote_fraud(
    data: Path | None = None, config: dict[str, Any] | None = None, source: str = "kycrisk"
) -> tracking.PromotionResult:
    """Compare the fraud challenger with the champion on the same out-of-time data and gate it.

    The out-of-time rows are the challenger's own test period on its training data folder
    (``data`` overrides the folder); both models score exactly those rows.
    """
    config = config or load_config()
    tracking.configure()
    challenger = tracking.get_alias_version(FRAUD_MODEL, tracking.CHALLENGER)
    if challenger is None:
        raise ValueError(
            f"no {tracking.CHALLENGER!r} version of {FRAUD_MODEL}: train one first (kycrisk train)"
        )
    loaded = tracking.load_model(FRAUD_MODEL, tracking.CHALLENGER)
    folder = Path(data) if data else Path(loaded.tags.get(TAG_DATA) or challenger.tags.get(TAG_DATA, ""))
    if not folder.is_dir():
        raise FileNotFoundError(f"out-of-time data folder {folder} not found: pass --data")
    period = loaded.metadata["training_period"]
    tables = load_tables(folder, source)
    frames: dict[str, tuple] = {}
    # [gate.risk] is the risk-tier model's override (training/run_risk.py), not a gate field
    gate = tracking.Gate.from_dict({k: v for k, v in config["gate"].items() if k != "risk"})
    review_cost = config["policy"]["review_cost"]

    def oot(feature_set: str):
        if feature_set not in frames:
            dataset = fraud.assemble(tables, feature_set)
            frame = dataset.frame
            times = frame[fraud.TIME_COLUMN]
            mask = (times >= pd.Timestamp(period["test_start"])) & (times < pd.Timestamp(period["test_end"]))
            test = frame[mask].reset_index(drop=True)
            y = label_targets(test, tables.get("labels"), None, id_col="transaction_id").to_numpy()
            frames[feature_set] = (test, y, dataset.amount_usd[mask.to_numpy()].to_numpy())
        return frames[feature_set]

    def evaluate(model_uri: str) -> dict[str, float]:
        pipeline, meta = tracking.load_pipeline_and_metadata(model_uri)
        test, y, amount = oot(meta["feature_set"])
        threshold = meta["tier_policy"]["medium_threshold"]
        return fraud.evaluate_model(pipeline, test, y, amount, threshold, review_cost)

    return tracking.promote(FRAUD_MODEL, evaluate, gate)


def _figures(model: fraud.TrainedFraudModel, folder: Path) -> list[Path]:
    y, s = model.test_y, model.test_scores
    paths = [
        plots.plot_roc(y, s, folder / "roc.png"),
        plots.plot_precision_recall(y, s, folder / "precision_recall.png"),
        plots.plot_calibration(y, s, folder / "calibration.png"),
        plots.plot_tier_distribution(model.decisions["tier"], folder / "tiers.png", y=y),
    ]
    segments = M.segment_metrics(y, s, model.segments["buyer_type"], threshold=model.policy.medium_threshold)
    paths.append(plots.plot_segment_comparison(segments, folder / "segments_buyer_type.png", metric="fpr"))
    regions = M.segment_metrics(y, s, model.segments["buyer_region"], threshold=model.policy.medium_threshold)
    paths.append(plots.plot_segment_comparison(regions, folder / "segments_buyer_region.png", metric="fpr"))
    paths.append(shap_summary(model, folder / "shap_summary.png"))
    return paths


def shap_summary(model: fraud.TrainedFraudModel, path: Path, rows: int = 5000, top: int = 20) -> Path:
    """Mean |TreeSHAP contribution| per feature on test rows (log-odds), as a bar chart."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sample = model.test_frame.sample(min(rows, len(model.test_frame)), random_state=0)
    prepared = model.pipeline[:-1].transform(sample)
    contrib = contributions(fraud.lgbm_of(model.pipeline), prepared).drop(columns="bias")
    mean_abs = contrib.abs().mean().sort_values(ascending=True).tail(top)
    figure = Figure(figsize=(8, 0.3 * len(mean_abs) + 1.5))
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    ax.barh(mean_abs.index, mean_abs.to_numpy())
    ax.set_xlabel("mean |contribution| (log-odds, exact TreeSHAP)")
    ax.set_title(f"Top {len(mean_abs)} features on {len(sample):,} test orders")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def model_card(
    model: fraud.TrainedFraudModel, dataset: fraud.FraudData, data: Path, config: dict, model_uri: str
) -> str:
    """The model card (markdown) logged with every run."""
    m = model.metrics
    fmt = lambda key: "n/a" if key not in m or m[key] is None or not np.isfinite(m[key]) else f"{m[key]:.4f}"  # noqa: E731
    split = model.split.to_dict()
    segs = [
        k
        for k in sorted(m)
        if k.startswith("segment.") and k.endswith((".fpr", ".fpr_min_max_ratio", ".auc_roc"))
    ]
    pattern_rows = "\n".join(
        f"| {r.pattern} | {r.transactions} | {r.flagged} | {r.recall:.3f} |"
        for r in model.pattern_recall.itertuples()
    )
    features = "\n".join(
        f"- `{name}`: {meaning}" for name, meaning in describe_feature_set(dataset.feature_set)
    )
    policy = model.policy
    return f"""# Model card: {FRAUD_MODEL}

Trained {datetime.now(UTC).isoformat(timespec="seconds")} by {getpass.getuser()} on {platform.node()}; model `{model_uri}`.

## Intended use
Probability that a marketplace order is fraudulent (fraud, money laundering or restricted goods),
used with the tier policy below to approve, review or reject orders. Not for use as the only
ground for reporting a customer to the authorities: hard rules and human review do that.

## Data
- Folder `{data.resolve()}`; feature set `{dataset.feature_set_id}`.
- Split by time with gaps of {config["split"]["label_delay_days"]} days (label delay): train {split["train_start"]} to {split["train_end"]}, test {split["test_start"]} to {split["test_end"]}.
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
