"""The walkthrough notebooks run top to bottom against the packages (small data, temporary MLflow store)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.filterwarnings("ignore")


def _run_notebook(path: Path) -> dict:
    namespace: dict = {"__name__": "__notebook__"}
    cells = json.loads(path.read_text())["cells"]
    for number, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        tree = compile(source, f"{path.name}[cell {number}]", "exec")
        exec(tree, namespace)  # noqa: S102 - running our own notebook's cells is the point
    return namespace


def test_notebooks_define_nothing() -> None:
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"])
            assert "def " not in source and "class " not in source, f"{path.name} defines code: {source[:80]}"


def test_walkthroughs_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KYCRISK_NB_CUSTOMERS", "1500")
    monkeypatch.setenv("KYCRISK_NB_DAYS", "365")
    monkeypatch.setenv("KYCRISK_NB_DATA", str(tmp_path / "data"))
    ns = _run_notebook(ROOT / "notebooks" / "data_scientist_walkthrough.ipynb")
    assert ns["report"].ok
    assert 0.5 < ns["model"].metrics["auc_roc"] <= 1.0
    assert ns["explanation"]["reasons"], "the top order must come with reasons"

    # The auditor's notebook reads what `kycrisk train` leaves in the registry.
    from training import tracking
    from training.config import DEFAULT_CONFIG
    from training.flow import log_fraud_run, promote_fraud
    from training.names import FRAUD_MODEL

    created = tracking.get_alias_version(FRAUD_MODEL, tracking.CHAMPION) is None
    if created:
        # Log the model the first notebook trained, as `kycrisk train` would (without refitting).
        log_fraud_run(ns["model"], ns["dataset"], tmp_path / "data", ns["config"], DEFAULT_CONFIG)
        promote_fraud(tmp_path / "data", ns["config"])
    try:
        ns = _run_notebook(ROOT / "notebooks" / "auditor_walkthrough.ipynb")
        assert "Model card" in ns["card"]
    finally:
        if created:
            # Leave the session's registry as we found it: later tests train the first champion.
            from mlflow.tracking import MlflowClient

            MlflowClient().delete_registered_model(FRAUD_MODEL)
