"""Tests for training.tracking: store settings, run logging, model round trip, registry and promotion.

One temporary sqlite store for the session (tests/training/conftest.py) and one logged model for
the module; promotion tests register that model several times instead of logging new ones.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from feature_engine.encoding import OneHotEncoder
from feature_engine.imputation import MeanMedianImputer
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient, get_registry_uri, get_tracking_uri
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline

from training import tracking
from training.tracking import Gate, TrackingWarning

EXPERIMENT = "test-tracking"
FEATURES = ["amount", "account_age_days", "payment_method"]
METADATA = {
    "feature_set": {"name": "fraud_v1", "version": 1},
    "tier_policy": {"low": 0.0, "medium": 0.2, "high": 0.6},
    "training_period": {"start": pd.Timestamp("2025-01-01"), "end": pd.Timestamp("2025-03-31")},
    "model_name": "fraud_lgbm",
}


class Negate(BaseEstimator, TransformerMixin):
    """A transformer from a module outside the trusted prefixes (this test module)."""

    def fit(self, X, y=None):
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        return -X


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(
        {
            "amount": rng.gamma(2.0, 60.0, n),
            "account_age_days": rng.integers(0, 2000, n).astype(float),
            "payment_method": rng.choice(["card", "wallet", "bank_transfer"], n),
        }
    )
    X.loc[rng.random(n) < 0.1, "account_age_days"] = np.nan
    logit = (
        0.015 * (X["amount"] - 150)
        - 0.002 * X["account_age_days"].fillna(100)
        + (X["payment_method"] == "wallet")
    )
    y = pd.Series((rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int), name="is_fraud")
    return X, y


@pytest.fixture(scope="module")
def data():
    X_train, y_train = _frame(600, seed=1)
    X_test, y_test = _frame(300, seed=2)
    return X_train, y_train, X_test, y_test


def _pipeline() -> Pipeline:
    return Pipeline(
        [
            ("impute", MeanMedianImputer(imputation_method="median", variables=["account_age_days"])),
            ("encode", OneHotEncoder(variables=["payment_method"])),
            (
                "model",
                lgb.LGBMClassifier(n_estimators=25, num_leaves=7, random_state=0, n_jobs=1, verbose=-1),
            ),
        ]
    )


@pytest.fixture(scope="module")
def logged(data, tmp_path_factory):
    """One fully recorded training run with one logged pipeline."""
    X_train, y_train, X_test, y_test = data
    pipeline = _pipeline().fit(X_train, y_train)
    folder = tmp_path_factory.mktemp("run-files")
    config = folder / "train.yaml"
    config.write_text("model:\n  n_estimators: 25\n")
    figure = folder / "pr_curve.svg"
    figure.write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    train_file = folder / "train.parquet"
    X_train.assign(is_fraud=y_train).to_parquet(train_file)

    with tracking.start_run(EXPERIMENT, run_name="round-trip", tags={"purpose": "test"}) as run:
        params = tracking.log_params_flat(
            {"model": {"n_estimators": 25, "num_leaves": 7}, "features": FEATURES}
        )
        tracking.log_config_file(config)
        file_digest = tracking.sha256_files([train_file])
        tracking.log_dataset_input(
            X_train.assign(is_fraud=y_train),
            "train",
            train_file,
            "training",
            digest=file_digest,
            targets="is_fraud",
        )
        tracking.log_dataset_input(X_test, "validation", folder / "validation.parquet", "validation")
        with pytest.warns(TrackingWarning, match="cannot interpret"):
            tracking.log_dataset_input(X_test, "oot", "generator:seed=2", "test")
        auc = roc_auc_score(y_test, pipeline.predict_proba(X_test)[:, 1])
        with pytest.warns(TrackingWarning, match="segment.tiny.auc"):
            metrics = tracking.log_metrics_flat(
                {"auc": auc, "segment": {"tiny": {"auc": float("nan")}, "big/one": {"auc": np.float64(0.7)}}},
                prefix="test",
            )
        tracking.log_figure_files([figure])
        tracking.log_text("# Model card\n", "model_card.md")
        started = time.perf_counter()
        info = tracking.log_pipeline(pipeline, "fraud_lgbm", X_test.head(200), metadata=METADATA)
        seconds = time.perf_counter() - started
    return {
        "run_id": run.info.run_id,
        "info": info,
        "pipeline": pipeline,
        "params": params,
        "metrics": metrics,
        "file_digest": file_digest,
        "log_seconds": seconds,
    }


def _name() -> str:
    return f"fraud-{uuid.uuid4().hex[:8]}"


# --- store settings (no MLflow calls) ---------------------------------------------------------


def test_tracking_uri_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("KYCRISK_MLFLOW_DIR", raising=False)
    repo = Path(tracking.__file__).resolve().parents[2]  # training/tracking/__init__.py
    assert tracking.resolve_tracking_uri() == f"sqlite:///{repo / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("KYCRISK_MLFLOW_DIR", str(tmp_path))
    assert tracking.resolve_tracking_uri() == f"sqlite:///{tmp_path.resolve() / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    assert tracking.resolve_tracking_uri() == "http://mlflow.internal:5000"
    assert tracking.resolve_tracking_uri("sqlite:///x.db") == "sqlite:///x.db"


def test_session_store_is_the_temporary_one(mlflow_store):
    assert get_tracking_uri() == mlflow_store.tracking_uri
    assert get_registry_uri() == mlflow_store.tracking_uri


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("auc", "auc"),
        ("recall@1%fpr", "recall_1_fpr"),
        ("segment/country=DE/auc", "segment/country_DE/auc"),
        ("/a//b/./c/", "a/b/c"),
        ("../up", "up"),
        ("..x", "_..x"),
        ("", "_"),
    ],
)
def test_sanitize_name(raw, clean):
    assert tracking.sanitize_name(raw) == clean


def test_git_commit_is_tolerant_of_no_repository(tmp_path):
    assert tracking.git_commit(tmp_path) == tracking.GitInfo(None, None)
    assert tracking.GitInfo(None, None).as_tags() == {"kycrisk.git.dirty": "unknown"}


# --- trusted-type review ----------------------------------------------------------------------


def test_review_accepts_allow_listed_and_names_the_rest():
    ok = [
        "lightgbm.basic.Booster",
        "feature_engine.encoding.one_hot.OneHotEncoder",
        "collections.OrderedDict",
    ]
    assert tracking.review_trusted_types(ok + ok[:1]) == sorted(ok)
    for bad in ["builtins.eval", "os.system", "sklearnx.Evil", "features_evil.X"]:
        with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
            tracking.review_trusted_types([*ok, bad])


def test_pipeline_types_are_found_and_reviewed(logged):
    types = tracking.trusted_types_for(logged["pipeline"])
    assert "lightgbm.sklearn.LGBMClassifier" in types
    assert "feature_engine.imputation.mean_median.MeanMedianImputer" in types


def test_type_from_unlisted_module_refuses_logging(data):
    X_train, y_train, *_ = data
    numeric = X_train[["amount", "account_age_days"]]
    pipeline = Pipeline(
        [("negate", Negate()), ("model", lgb.LGBMClassifier(n_estimators=2, n_jobs=1, verbose=-1))]
    )
    pipeline.fit(numeric, y_train)
    with pytest.raises(ValueError, match=r"tests\.training\.test_tracking\.Negate"):
        tracking.trusted_types_for(pipeline)
    with tracking.start_run(EXPERIMENT, run_name="refused-type") as run:
        with pytest.raises(ValueError, match="Negate"):
            tracking.log_pipeline(pipeline, "bad", numeric.head(20))
        with pytest.raises(ValueError, match=r"builtins\.eval"):
            tracking.log_pipeline(
                _pipeline().fit(X_train, y_train),
                "bad",
                X_train.head(20),
                extra_trusted_types=["builtins.eval"],
            )
    assert (
        MlflowClient().search_logged_models(
            experiment_ids=[run.info.experiment_id], filter_string="name = 'bad'"
        )
        == []
    )


def test_log_pipeline_wants_the_whole_fitted_pipeline(data):
    X_train, y_train, *_ = data
    with tracking.start_run(EXPERIMENT, run_name="not-a-pipeline"):
        with pytest.raises(TypeError, match="Pipeline"):
            tracking.log_pipeline(
                lgb.LGBMClassifier(n_estimators=2, n_jobs=1, verbose=-1).fit(X_train[["amount"]], y_train),
                "bad",
                X_train[["amount"]],
            )


# --- run logging ------------------------------------------------------------------------------


def test_run_records_params_metrics_tags_artifacts_and_datasets(logged, mlflow_store):
    client = MlflowClient()
    run = client.get_run(logged["run_id"])
    assert run.data.params["model.n_estimators"] == "25"
    assert json.loads(run.data.params["features"]) == FEATURES
    assert logged["metrics"].keys() == {"test.auc", "test.segment.big/one.auc"}
    assert run.data.metrics["test.segment.big/one.auc"] == pytest.approx(0.7)
    assert "test.segment.tiny.auc" not in run.data.metrics

    tags = run.data.tags
    assert tags["purpose"] == "test"
    assert tags["kycrisk.git.dirty"] in {"true", "false", "unknown"}
    assert tags["kycrisk.config.file"] == "train.yaml"
    assert tags["kycrisk.dataset.training.sha256"] == logged["file_digest"]

    inputs = {d.tags[0].value if d.tags else None: d for d in run.inputs.dataset_inputs}
    contexts = {
        next(t.value for t in d.tags if t.key == "mlflow.data.context"): d.dataset
        for d in run.inputs.dataset_inputs
    }
    assert inputs and set(contexts) == {"training", "validation", "test"}
    assert contexts["training"].digest == logged["file_digest"][:36]
    assert json.loads(contexts["training"].profile)["num_rows"] == 600
    assert contexts["validation"].digest == contexts["test"].digest  # same frame, same digest

    artifacts = {a.path for a in client.list_artifacts(logged["run_id"])}
    assert {"config", "figures", "model_card.md"} <= artifacts
    assert [a.path for a in client.list_artifacts(logged["run_id"], "figures")] == ["figures/pr_curve.svg"]
    # sqlite default: artifacts live beside the database, not in ./mlruns
    assert run.info.artifact_uri.startswith((mlflow_store.root / "artifacts").as_uri())


def test_model_logging_is_quick(logged):
    # explicit pip requirements keep this to seconds (inferring them takes much longer)
    assert logged["log_seconds"] < 20


# --- model round trip -------------------------------------------------------------------------


def test_round_trip_through_registry(logged, data):
    *_, X_test, _ = data
    name = _name()
    version = tracking.register(logged["info"].model_uri, name, tags={"trained_by": "test"})
    assert version.aliases == [tracking.CHALLENGER]
    assert version.run_id == logged["run_id"]
    assert tracking.get_alias_version(name, tracking.CHALLENGER).version == version.version

    loaded = tracking.load_model(name, alias=tracking.CHALLENGER)
    assert isinstance(loaded.pipeline, Pipeline)
    np.testing.assert_array_equal(
        loaded.pipeline.predict_proba(X_test), logged["pipeline"].predict_proba(X_test)
    )
    assert loaded.version == str(version.version)
    assert loaded.model_uri == f"models:/{name}/{version.version}"
    assert loaded.tags["trained_by"] == "test"
    assert loaded.metadata["feature_set"] == {"name": "fraud_v1", "version": 1}
    assert loaded.metadata["tier_policy"] == METADATA["tier_policy"]
    assert loaded.metadata["training_period"]["start"].startswith("2025-01-01")
    assert loaded.metadata["git_commit"] and loaded.metadata["kycrisk_version"]
    assert loaded.signature.inputs.input_names() == FEATURES


def test_logged_model_records_requirements_and_trusted_types(logged):
    from mlflow.artifacts import download_artifacts
    from mlflow.models import Model

    folder = Path(download_artifacts(artifact_uri=logged["info"].model_uri))
    requirements = (folder / "requirements.txt").read_text().split()
    assert {r.split("==")[0] for r in requirements} >= {
        "mlflow",
        "lightgbm",
        "scikit-learn",
        "feature-engine",
        "skops",
    }
    flavor = Model.load(folder).flavors["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert flavor["skops_trusted_types"] == tracking.trusted_types_for(logged["pipeline"])
    assert (folder / "input_example.json").is_file()


def test_loading_reviews_the_models_trusted_types(logged, monkeypatch):
    # the list inside MLmodel is the model's own claim: a narrower allow-list must refuse it
    monkeypatch.setattr(tracking.models, "TRUSTED_TYPE_PREFIXES", ("sklearn.", "numpy.", "collections."))
    with pytest.raises(ValueError, match="lightgbm"):
        tracking.load_pipeline(logged["info"].model_uri)


def test_missing_model_or_alias_is_none(logged):
    assert tracking.get_alias_version(_name(), tracking.CHAMPION) is None
    name = _name()
    tracking.register(logged["info"].model_uri, name)
    assert tracking.get_alias_version(name, tracking.CHAMPION) is None
    with pytest.raises(LookupError):
        tracking.load_model(name)
    with pytest.raises(MlflowException, match="Invalid alias"):
        tracking.get_alias_version(name, "not an alias!")


# --- promotion gate ---------------------------------------------------------------------------

GATE = Gate(
    metrics=("average_precision", "recall_at_1pct_fpr", "auc"),
    tolerance=0.0,
    fairness_min={"fpr_ratio_min": 0.8},
)


def test_gate_round_trips_through_json():
    gate = Gate(tolerance=0.01, lower_is_better=("auc",), fairness_min={"a": 0.8}, fairness_max={"b": 1.25})
    assert Gate.from_dict(json.loads(json.dumps(gate.to_dict()))) == gate
    with pytest.raises(ValueError):
        Gate.from_dict({"metrix": ["auc"]})
    with pytest.raises(ValueError):
        Gate(tolerance=-1)


def test_apply_gate_tolerance_direction_and_fail_closed():
    gate = Gate(
        metrics=("ap", "cost"), tolerance=0.01, lower_is_better=("cost",), fairness_max={"ratio_max": 1.25}
    )
    champion = {"ap": 0.50, "cost": 100.0}
    assert all(
        c.passed
        for c in tracking.apply_gate(gate, {"ap": 0.495, "cost": 100.005, "ratio_max": 1.2}, champion)
    )
    failed = [
        c.metric
        for c in tracking.apply_gate(gate, {"ap": 0.48, "cost": 99.0, "ratio_max": 1.3}, champion)
        if not c.passed
    ]
    assert failed == ["ap", "ratio_max"]
    failed = [
        c.metric for c in tracking.apply_gate(gate, {"ap": math.nan, "cost": 99.0}, champion) if not c.passed
    ]
    assert failed == ["ap", "ratio_max"]  # NaN and missing fail


def test_promotion_gate_both_ways(logged, data):
    *_, X_test, y_test = data
    name = _name()
    client = MlflowClient()
    scripted = {  # version -> metrics the evaluation "finds" on the out-of-time data
        "1": {"average_precision": 0.40, "recall_at_1pct_fpr": 0.20, "auc": 0.80, "fpr_ratio_min": 0.90},
        "2": {"average_precision": 0.35, "recall_at_1pct_fpr": 0.22, "auc": 0.81, "fpr_ratio_min": 0.90},
        "3": {"average_precision": 0.45, "recall_at_1pct_fpr": 0.25, "auc": 0.85, "fpr_ratio_min": 0.70},
        "4": {"average_precision": 0.45, "recall_at_1pct_fpr": 0.25, "auc": 0.85, "fpr_ratio_min": 0.85},
    }
    evaluated: list[str] = []

    def evaluate(model_uri: str) -> dict[str, float]:
        pipeline = tracking.load_pipeline(model_uri)  # the real thing loads and scores the same data
        assert pipeline.predict_proba(X_test).shape == (len(y_test), 2)
        evaluated.append(model_uri)
        return scripted[model_uri.rsplit("/", 1)[1]]

    with pytest.raises(LookupError):
        tracking.promote(name, evaluate, GATE)

    # the first model becomes champion
    tracking.register(logged["info"].model_uri, name)
    first = tracking.promote(name, evaluate, GATE)
    assert first.promoted and first.champion_version is None and first.reason.startswith("first model")
    assert evaluated == [f"models:/{name}/1"]
    assert tracking.get_alias_version(name, tracking.CHAMPION).version == 1
    assert tracking.get_alias_version(name, tracking.CHALLENGER) is None

    # a worse challenger is refused, and the refusal recorded on its version
    tracking.register(logged["info"].model_uri, name)
    worse = tracking.promote(name, evaluate, GATE)
    assert not worse.promoted and "average_precision" in worse.reason
    assert set(evaluated[-2:]) == {f"models:/{name}/1", f"models:/{name}/2"}
    assert tracking.get_alias_version(name, tracking.CHAMPION).version == 1
    tags = client.get_model_version(name, "2").tags
    assert tags["kycrisk.promotion.decision"] == "refused"
    assert tags["kycrisk.promotion.champion_version"] == "1"
    assert json.loads(tags["kycrisk.promotion.metrics"]) == {
        "champion": scripted["1"],
        "challenger": scripted["2"],
    }
    assert "average_precision" in tags["kycrisk.promotion.reason"] and tags["kycrisk.promotion.time_utc"]
    assert json.loads(tags["kycrisk.promotion.history.1"])["decision"] == "refused"

    # better but unfair: refused on the fairness bound
    tracking.register(logged["info"].model_uri, name)
    unfair = tracking.promote(name, evaluate, GATE)
    assert not unfair.promoted and "fpr_ratio_min" in unfair.reason
    assert client.get_model_version(name, "3").tags["kycrisk.promotion.decision"] == "refused"

    # better and fair: promoted; the old champion is marked as replaced
    tracking.register(logged["info"].model_uri, name)
    better = tracking.promote(name, evaluate, GATE)
    assert better.promoted and better.champion_version == "1" and better.challenger_version == "4"
    assert tracking.get_alias_version(name, tracking.CHAMPION).version == 4
    assert client.get_model_version(name, "4").tags["kycrisk.promotion.decision"] == "promoted"
    assert client.get_model_version(name, "1").tags["kycrisk.promotion.replaced_by"] == "4"
    assert json.loads(json.dumps(better.to_dict()))["checks"][0]["metric"] == "average_precision"
    assert tracking.load_model(name).version == "4"
