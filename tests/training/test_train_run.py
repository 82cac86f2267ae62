"""`kycrisk train` and `kycrisk promote` end to end on a small generated marketplace, in a temporary MLflow store."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from features.synthetic import generate, write_dataset
from serving.cli import main
from training import fraud, tracking
from training.config import DEFAULT_CONFIG
from training.flow import load_tables
from training.names import FRAUD_MODEL

pytestmark = pytest.mark.filterwarnings("ignore")


def _write_config(path: Path, **lgbm) -> Path:
    text = DEFAULT_CONFIG.read_text()
    config = tomllib.loads(text)
    # Small and single-threaded: the test checks plumbing and gating, not the model's quality.
    params = {"n_estimators": 60, "n_jobs": 1, **lgbm}
    lines = []
    section = None
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        key = stripped.split("=")[0].strip()
        if section == "[fraud.lightgbm]" and key in params:
            line = f"{key} = {params[key]!r}"
        if section == "[gate.fairness_min]" and key.startswith('"segment.'):
            # 1,500 customers give false-positive rates of a few per mille per segment: their ratio
            # is noise here (the fairness refusal itself is tested in test_tracking.py).
            line = f"{key} = 0.01"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    assert tomllib.loads(path.read_text())["fraud"]["lightgbm"]["n_estimators"] == params["n_estimators"]
    assert config["gate"]["metrics"]
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("market")
    write_dataset(generate(n_customers=1500, days=240, seed=3), folder, seed=3)
    return folder


@pytest.fixture(scope="module")
def first_run(data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    config = _write_config(tmp_path_factory.mktemp("cfg") / "config.toml")
    out = _run(["train", "--model", "fraud", "--data", str(data_dir), "--config", str(config)])
    return json.loads(out)["fraud"], config


def _run(argv: list[str]) -> str:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(argv)
    assert code in (0, 1), buffer.getvalue()
    return buffer.getvalue()


def test_train_logs_a_complete_run_and_registers_the_first_champion(first_run) -> None:
    result, _ = first_run
    assert result["promotion"]["decision"] == "promoted"
    client = MlflowClient()
    run = client.get_run(result["run_id"])
    metrics = run.data.metrics
    for key in (
        "auc_roc",
        "average_precision",
        "recall_at_fpr_1pct",
        "recall_at_fpr_5pct",
        "precision_top100_per_day",
        "expected_cost_saved",
        "brier",
        "ece",
        "auto_decision_rate",
        "psi.score",
        "tier_share.low",
    ):
        assert key in metrics, key
    assert any(k.startswith("pattern.account_takeover") for k in metrics)
    assert any(k.startswith("segment.buyer_type.") for k in metrics)
    artifacts = {a.path for a in client.list_artifacts(result["run_id"])}
    assert {"figures", "model_card.md", "config", "tables"} <= artifacts
    figures = {Path(a.path).name for a in client.list_artifacts(result["run_id"], "figures")}
    assert {"roc.png", "precision_recall.png", "calibration.png", "shap_summary.png", "tiers.png"} <= figures
    assert run.data.tags.get("mlflow.source.git.commit") is not None or "kycrisk.git.dirty" in run.data.tags
    inputs = {d.dataset.name for d in run.inputs.dataset_inputs}
    assert {"train", "test"} <= inputs
    champion = tracking.get_alias_version(FRAUD_MODEL, tracking.CHAMPION)
    assert champion is not None and str(champion.version) == result["registered"].split("/")[1]


def test_registered_model_round_trip_gives_identical_scores(first_run, data_dir: Path) -> None:
    loaded = tracking.load_model(FRAUD_MODEL, tracking.CHAMPION)
    assert loaded.metadata["feature_set"] == "fraud_v1"
    assert "medium_threshold" in loaded.metadata["tier_policy"]
    tables = load_tables(data_dir)
    frame = fraud.assemble(tables).frame.tail(300)
    again = tracking.load_pipeline(loaded.model_uri)
    a, b = fraud.predict_proba(loaded.pipeline, frame), fraud.predict_proba(again, frame)
    np.testing.assert_array_equal(a, b)
    assert ((a >= 0) & (a <= 1)).all()


def test_unknown_categories_and_missing_values_are_scored(first_run, data_dir: Path) -> None:
    loaded = tracking.load_model(FRAUD_MODEL, tracking.CHAMPION)
    frame = fraud.assemble(load_tables(data_dir)).frame.tail(5).copy()
    frame["goods_category"] = "never_seen_before"
    frame["buyer_nationality"] = None
    frame["buyer_email"] = None
    scores = fraud.predict_proba(loaded.pipeline, frame)
    assert np.isfinite(scores).all()


def test_a_worse_challenger_is_refused_and_the_refusal_recorded(
    first_run, data_dir: Path, tmp_path: Path
) -> None:
    result, _ = first_run
    weak = _write_config(tmp_path / "weak.toml", n_estimators=1, num_leaves=2, max_depth=1)
    out = json.loads(_run(["train", "--model", "fraud", "--data", str(data_dir), "--config", str(weak)]))[
        "fraud"
    ]
    assert out["promotion"]["decision"] == "refused"
    version = out["registered"].split("/")[1]
    tags = MlflowClient().get_model_version(FRAUD_MODEL, version).tags
    assert tags["kycrisk.promotion.decision"] == "refused"
    assert "average_precision" in tags["kycrisk.promotion.metrics"]
    champion = tracking.get_alias_version(FRAUD_MODEL, tracking.CHAMPION)
    assert str(champion.version) == result["registered"].split("/")[1]
    # `kycrisk promote` on the same challenger refuses again, with exit code 1.
    assert main(["promote", "--model", "fraud", "--data", str(data_dir)]) == 1


def test_training_uses_only_labels_known_at_the_cut_off(first_run, data_dir: Path) -> None:
    tables = load_tables(data_dir)
    config = tomllib.loads(DEFAULT_CONFIG.read_text())
    config["fraud"]["lightgbm"].update(n_estimators=20, n_jobs=1)
    dataset = fraud.assemble(tables)
    model = fraud.fit_fraud_model(dataset, config)
    cutoff = model.split.label_cutoffs()["refit"]
    labels = tables["labels"]
    known = labels[
        (labels["entity_type"] == "transaction")
        & (labels["known_at"] < cutoff)
        & labels["label"].isin(["fraud", "money_laundering", "restricted_goods"])
    ]
    train_ids = set(model.train_frame["transaction_id"])
    assert model.metrics["positives.train_known"] == len(train_ids & set(known["entity_id"]))
    later = labels[(labels["entity_type"] == "transaction") & (labels["known_at"] >= cutoff)]
    assert len(set(later["entity_id"]) & train_ids) > 0, "the test needs labels that arrive after the cut-off"
    # The gap between periods is at least the label delay.
    split = model.split
    assert split.valid_start - split.train_end >= pd.Timedelta(days=config["split"]["label_delay_days"])
    assert split.test_start - split.valid_end >= pd.Timedelta(days=config["split"]["label_delay_days"])


def test_train_rejects_invalid_data_with_a_named_problem(tmp_path: Path, data_dir: Path, capsys) -> None:
    bad = tmp_path / "bad"
    bad.mkdir()
    for file in data_dir.glob("*.parquet"):
        (bad / file.name).write_bytes(file.read_bytes())
    tx = pd.read_parquet(bad / "transactions.parquet")
    tx.loc[0, "amount"] = -1.0
    tx.to_parquet(bad / "transactions.parquet")
    assert main(["train", "--data", str(bad)]) == 1
    err = capsys.readouterr().err
    assert "transactions.amount" in err and "> 0" in err
