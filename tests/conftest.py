"""Session fixtures: one temporary MLflow store for the whole test session (no test writes into mlflow/)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest


@dataclasses.dataclass(frozen=True)
class MlflowStore:
    tracking_uri: str
    root: Path  # holds mlflow.db and artifacts/


@pytest.fixture(scope="session", autouse=True)
def mlflow_store(tmp_path_factory: pytest.TempPathFactory):
    """Point MLflow at a sqlite store in a temporary folder for the session, then restore.

    Autouse so that no training test can write into the checkout's mlflow/ folder. One store per
    session: creating the sqlite schema runs MLflow's migrations (seconds). The schema is created
    lazily, by the first test that uses MLflow.
    """
    # dotted import: a bare `import mlflow` is misclassified by ruff here (the mlflow/ store folder)
    from mlflow.tracking import set_registry_uri, set_tracking_uri

    from training import tracking

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        # set (or remove) every variable configure() and mlflow.set_*_uri may write, so that the
        # monkeypatch restores them all at the end
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        patch.delenv("MLFLOW_REGISTRY_URI", raising=False)
        patch.delenv("KYCRISK_MLFLOW_DIR", raising=False)
        for key, value in tracking.QUIET_ENV.items():
            patch.setenv(key, value)
        assert tracking.configure() == uri
        yield MlflowStore(tracking_uri=uri, root=root)
        set_tracking_uri(None)
        set_registry_uri(None)
