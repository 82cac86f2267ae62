"""Serving fixtures: a small generated marketplace and a fraud champion trained on it, once per session.

The model lives in the session's temporary MLflow store (``tests/conftest.py``); the data is held
out of its last day, which the tests score as new orders (so the online state after seeding sees
exactly the history the batch engine sees for those orders).

A small customer risk-tier model is trained on the same data once (``risk_model``, registered as
challenger only) and made champion per module (``risk_champion``): modules that do not ask for it
(``test_scorer``, ``test_service``) see no risk-tier champion and onboard by rules.

The state's secrets (``serving.secrets_config``) are configured once for the package
(``state_secrets``: a new random salt and state key in the environment, which
every in-process Scorer and every server the tests start read), never kept in a state folder.
"""

from __future__ import annotations

import dataclasses
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from features.synthetic import generate, write_dataset
from serving.schemas import Order, request_body
from serving.secrets_config import SECRETS_FILE_ENV, Secrets
from training import tracking
from training.config import DEFAULT_CONFIG
from training.names import FRAUD_MODEL, RISK_MODEL


@dataclasses.dataclass(frozen=True)
class Champion:
    data: Path  # the full generated folder (training data)
    history: Path  # the same tables without the held-out orders (what the service is seeded with)
    held_out: pd.DataFrame  # the last orders, scored by the tests as new requests
    version: str


def _small_config(path: Path) -> Path:
    text = DEFAULT_CONFIG.read_text()
    lines, section = [], None
    params = {"n_estimators": 60, "n_jobs": 1}
    risk_params = {"n_estimators": 40, "n_jobs": 1}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("["):
            section = stripped
        key = stripped.split("=")[0].strip()
        if section == "[fraud.lightgbm]" and key in params:
            line = f"{key} = {params[key]!r}"
        if section == "[risk.lightgbm]" and key in risk_params:
            line = f"{key} = {risk_params[key]!r}"
        if section == "[split]" and key == "label_delay_days":
            line = "label_delay_days = 21"  # a short history needs labelled positives in validation
        if section == "[gate.fairness_min]" and key.startswith('"segment.'):
            line = f"{key} = 0.01"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    assert tomllib.loads(path.read_text())["fraud"]["lightgbm"]["n_estimators"] == 60
    return path


@pytest.fixture(scope="package", autouse=True)
def state_secrets() -> Iterator[Secrets]:
    """New random secrets in the environment for the serving tests, removed again afterwards.

    No decision-log key: the tests verify the log unkeyed (tests/serving/test_decision_log.py covers
    keyed logs).
    """
    secrets = Secrets.generate(decision_log_key=False)
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(SECRETS_FILE_ENV, raising=False)
        for name, value in secrets.as_config().items():
            patch.setenv(name, value)
        yield secrets


@pytest.fixture(scope="package")
def champion(tmp_path_factory: pytest.TempPathFactory, mlflow_store) -> Iterator[Champion]:
    """A small fraud model made champion for the serving tests, removed again afterwards.

    Package scope: the registry is shared by the whole session, and other packages' tests expect
    to find it as they left it (e.g. "the first model becomes champion").
    """
    from training.flow import train_fraud

    root = tmp_path_factory.mktemp("serving")
    data = root / "data"
    data.mkdir()
    write_dataset(generate(n_customers=500, days=300, seed=3), data, seed=3)
    client = MlflowClient()
    existed = tracking.get_alias_version(FRAUD_MODEL, tracking.CHALLENGER) is not None or _registered(client)
    previous = {
        a: tracking.get_alias_version(FRAUD_MODEL, a) for a in (tracking.CHAMPION, tracking.CHALLENGER)
    }
    result = train_fraud(data, _small_config(root / "config.toml"), promote_after=False)
    # The promotion gate is tested in tests/training; here the new version simply becomes champion.
    client.set_registered_model_alias(FRAUD_MODEL, tracking.CHAMPION, result.version)
    # Hold out the last 20 orders: the service is seeded with everything before them.
    transactions = pd.read_parquet(data / "transactions.parquet").sort_values("occurred_at", kind="stable")
    held_out = transactions.tail(20).reset_index(drop=True)
    history = root / "history"
    history.mkdir()
    for file in data.glob("*.parquet"):
        table = pd.read_parquet(file)
        if file.stem == "transactions":
            table = table[~table["transaction_id"].isin(held_out["transaction_id"])]
        elif file.stem == "labels":
            table = table[~table["entity_id"].isin(held_out["transaction_id"])]
        elif file.stem in ("account_events",):
            table = table[table["occurred_at"] < held_out["occurred_at"].min()]
        table.to_parquet(history / file.name)
    yield Champion(data=data, history=history, held_out=held_out, version=result.version)
    if not existed:
        client.delete_registered_model(FRAUD_MODEL)
        return
    client.delete_model_version(FRAUD_MODEL, result.version)
    for alias, version in previous.items():
        if version is not None:
            client.set_registered_model_alias(FRAUD_MODEL, alias, str(version.version))


def _registered(client: MlflowClient, name: str = FRAUD_MODEL) -> bool:
    try:
        client.get_registered_model(name)
    except Exception:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class RiskModel:
    version: str
    config: Path  # the small training configuration


@pytest.fixture(scope="package")
def risk_model(tmp_path_factory: pytest.TempPathFactory, champion: Champion) -> Iterator[RiskModel]:
    """A small risk-tier model trained on the fraud champion's data, registered (challenger, not champion).

    Removed again (or the registry's earlier versions and aliases restored) after the package.
    """
    from training.flow import train_risk

    root = tmp_path_factory.mktemp("risk")
    client = MlflowClient()
    existed = _registered(client, RISK_MODEL)
    previous = {
        a: tracking.get_alias_version(RISK_MODEL, a) for a in (tracking.CHAMPION, tracking.CHALLENGER)
    }
    config = _small_config(root / "config.toml")
    assert tomllib.loads(config.read_text())["risk"]["lightgbm"]["n_estimators"] == 40
    result = train_risk(champion.data, config, promote_after=False)
    # train_risk makes it challenger: the alias goes back to what it was; risk_champion promotes it
    client.delete_registered_model_alias(RISK_MODEL, tracking.CHALLENGER)
    if previous[tracking.CHALLENGER] is not None:
        client.set_registered_model_alias(
            RISK_MODEL, tracking.CHALLENGER, str(previous[tracking.CHALLENGER].version)
        )
    yield RiskModel(version=result.version, config=config)
    if not existed:
        client.delete_registered_model(RISK_MODEL)
        return
    client.delete_model_version(RISK_MODEL, result.version)
    for alias, version in previous.items():
        if version is not None:
            client.set_registered_model_alias(RISK_MODEL, alias, str(version.version))


@pytest.fixture(scope="module")
def risk_champion(risk_model: RiskModel) -> Iterator[RiskModel]:
    """``risk_model`` as the ``kycrisk-risk-tier`` champion for one test module only."""

    client = MlflowClient()
    previous = tracking.get_alias_version(RISK_MODEL, tracking.CHAMPION)
    client.set_registered_model_alias(RISK_MODEL, tracking.CHAMPION, risk_model.version)
    yield risk_model
    if previous is not None and str(previous.version) != risk_model.version:
        client.set_registered_model_alias(RISK_MODEL, tracking.CHAMPION, str(previous.version))
    else:
        client.delete_registered_model_alias(RISK_MODEL, tracking.CHAMPION)


@pytest.fixture(scope="package")
def seeded_state(tmp_path_factory: pytest.TempPathFactory, champion: Champion, state_secrets: Secrets) -> Path:
    """A state folder seeded once from the history (profiles, screening, replayed features).

    Tests copy it (``fresh_state``) so that each module starts from the same state.
    """
    from serving.scorer import Scorer

    folder = tmp_path_factory.mktemp("seeded") / "state"
    scorer = Scorer.from_registry(state_dir=folder)
    counts = scorer.seed(champion.history)
    assert counts["customers"] == 500 and counts["transactions"] > 1000, counts
    scorer.close()
    return folder


def fresh_state(seeded: Path, target: Path) -> Path:
    """A copy of a seeded state folder (sqlite files are closed: a plain copy is consistent)."""
    shutil.copytree(seeded, target)
    return target


def order_request(row: dict, transaction_id: str | None = None) -> dict:
    """A held-out transactions row as a JSON request body."""
    out = request_body(row, (f for f in Order.model_fields if f in row))
    if transaction_id is not None:
        out["transaction_id"] = transaction_id
    return out
