"""The model registry: register a logged model, follow an alias, promote through the gate.

A newly registered version gets the alias ``challenger``; ``promote()`` evaluates champion and
challenger with the same caller-supplied evaluation, applies a ``Gate`` (its pure rules live in
``training.gate``) and moves ``champion`` only when the challenger passes. Every decision is written
as tags on the challenger's version (``_record``).

Aliases move only here: ``register`` points ``challenger`` at the new version, ``promote`` moves
``champion`` and removes ``challenger``.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

# Only dotted mlflow imports (they bind `mlflow` too): see training/tracking/store.py.
import mlflow.tracking
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from training.gate import Gate, PromotionResult, apply_gate, compared, describe_failures
from training.tracking.store import TAG_PREFIX, mlflow_client

log = logging.getLogger(__name__)

CHAMPION, CHALLENGER = "champion", "challenger"

# what ModelInfo.model_uri looks like for a model logged in this MLflow version
_LOGGED_MODEL_URI = re.compile(r"^models:/(m-[0-9a-f]+)/?$")


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def register(model_uri: str, name: str, tags: Mapping[str, Any] | None = None) -> ModelVersion:
    """Register a logged model as a new version of ``name`` and point the alias ``challenger`` at it.

    Args:
        model_uri: ``ModelInfo.model_uri`` (``models:/<model id>``) or any URI MLflow can register.
        name: Registered model name (created if needed).
        tags: Version tags (values are turned into strings).

    Returns:
        The new model version (with the alias set).
    """
    client = mlflow_client()
    str_tags = {str(k): str(v) for k, v in (tags or {}).items()}
    str_tags[f"{TAG_PREFIX}registered_utc"] = _utc_now()
    match = _LOGGED_MODEL_URI.match(model_uri)
    if match:
        # the client API, not mlflow.register_model, which prints progress lines on stderr
        model_id = match.group(1)
        try:
            client.get_registered_model(name)
        except MlflowException:
            client.create_registered_model(name)
        run_id = client.get_logged_model(model_id).source_run_id
        version = client.create_model_version(
            name, source=model_uri, run_id=run_id, tags=str_tags, model_id=model_id
        )
    else:
        version = mlflow.register_model(model_uri, name, tags=str_tags)
    client.set_registered_model_alias(name, CHALLENGER, str(version.version))
    return client.get_model_version(name, str(version.version))


def get_alias_version(name: str, alias: str) -> ModelVersion | None:
    """The version an alias points at, or None if the model or alias does not exist.

    Args:
        name: Registered model name.
        alias: E.g. ``"champion"``.

    Returns:
        The model version or None.
    """
    client = mlflow_client()
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        # a missing model is RESOURCE_DOES_NOT_EXIST, but the sqlite store reports a missing alias
        # as INVALID_PARAMETER_VALUE, the same code as a malformed alias name (which must raise)
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in exc.message:
            return None
        raise


# --- promotion --------------------------------------------------------------------------------


def _record(client: MlflowClient, result: PromotionResult) -> None:
    """Tag a promotion decision on the challenger's version: the latest, and numbered in its history."""
    name, version = result.model_name, result.challenger_version
    current = client.get_model_version(name, version).tags or {}
    attempt = int(current.get(f"{TAG_PREFIX}promotion.attempts", "0")) + 1
    record = result.to_dict()
    tags = {
        f"{TAG_PREFIX}promotion.attempts": str(attempt),
        f"{TAG_PREFIX}promotion.decision": result.decision,
        f"{TAG_PREFIX}promotion.reason": result.reason,
        f"{TAG_PREFIX}promotion.time_utc": result.time_utc,
        f"{TAG_PREFIX}promotion.champion_version": result.champion_version or "none",
        f"{TAG_PREFIX}promotion.metrics": json.dumps(result.metrics, sort_keys=True),
        f"{TAG_PREFIX}promotion.gate": json.dumps(result.gate, sort_keys=True),
        # the latest decision is above; every attempt is kept, numbered, for auditors
        f"{TAG_PREFIX}promotion.history.{attempt}": json.dumps(record, sort_keys=True),
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)


def promote(name: str, evaluate: Callable[[str], Mapping[str, float]], gate: Gate) -> PromotionResult:
    """Move ``champion`` to the ``challenger`` version if it passes ``gate``; record the decision.

    Both versions are evaluated by ``evaluate(model_uri)`` with pinned URIs (``models:/name/N``);
    the caller closes over the same out-of-time data for both (``load_pipeline`` loads a URI).
    Without a champion the challenger is promoted if its gate metrics are present and its fairness
    bounds hold. On promotion the ``challenger`` alias is removed and the old champion's version is
    tagged ``kycrisk.promotion.replaced_by``. The decision, time, compared metrics, gate and reason are
    tagged on the challenger's version (latest under ``kycrisk.promotion.*``, every attempt under
    ``kycrisk.promotion.history.<n>``); if ``evaluate`` raises, a refusal is recorded and the error
    re-raised.

    Args:
        name: Registered model name.
        evaluate: Maps a model URI to metrics (e.g. ``average_precision``, ``fpr_ratio_min``).
        gate: Comparison and fairness rules.

    Returns:
        ``PromotionResult``.

    Raises:
        LookupError: there is no challenger.
    """
    client = mlflow_client()
    challenger = get_alias_version(name, CHALLENGER)
    if challenger is None:
        raise LookupError(f"registered model {name!r} has no {CHALLENGER!r} version to promote")
    champion = get_alias_version(name, CHAMPION)
    chal_v = str(challenger.version)
    champ_v = str(champion.version) if champion is not None else None

    def result(decision: str, reason: str, chal_m=None, champ_m=None, checks=()) -> PromotionResult:
        return PromotionResult(
            model_name=name,
            decision=decision,
            reason=reason,
            challenger_version=chal_v,
            champion_version=champ_v,
            time_utc=_utc_now(),
            gate=gate.to_dict(),
            metrics={"challenger": compared(gate, chal_m), "champion": compared(gate, champ_m)},
            checks=tuple(checks),
        )

    if champ_v == chal_v:
        outcome = result("refused", f"version {chal_v} is already the champion")
        _record(client, outcome)
        return outcome

    evaluated: dict[str, Mapping[str, float]] = {}
    for role, version in (("challenger", chal_v), ("champion", champ_v)):
        if version is None:
            continue
        try:
            evaluated[role] = dict(evaluate(f"models:/{name}/{version}"))
        except Exception as exc:
            _record(
                client, result("refused", f"evaluation of the {role} (version {version}) failed: {exc!r}")
            )
            raise
    checks = apply_gate(gate, evaluated["challenger"], evaluated.get("champion"))
    failed = [c for c in checks if not c.passed]
    if failed:
        outcome = result(
            "refused", describe_failures(failed), evaluated["challenger"], evaluated.get("champion"), checks
        )
        _record(client, outcome)
        log.info("model %s version %s refused: %s", name, chal_v, outcome.reason)
        return outcome

    reason = "first model: no champion" if champ_v is None else f"passes the gate against version {champ_v}"
    outcome = result("promoted", reason, evaluated["challenger"], evaluated.get("champion"), checks)
    # record before moving the alias: a crash in between leaves a recorded but unapplied decision,
    # never a champion without a record
    _record(client, outcome)
    client.set_registered_model_alias(name, CHAMPION, chal_v)
    client.delete_registered_model_alias(name, CHALLENGER)
    if champ_v is not None:
        client.set_model_version_tag(name, champ_v, f"{TAG_PREFIX}promotion.replaced_by", chal_v)
        client.set_model_version_tag(name, champ_v, f"{TAG_PREFIX}promotion.replaced_utc", outcome.time_utc)
    log.info("model %s version %s promoted to %s (%s)", name, chal_v, CHAMPION, reason)
    return outcome
