"""Logging and loading models: the whole fitted Pipeline, serialized with skops and reviewed types.

The whole scikit-learn Pipeline (preprocessing + LightGBM) is logged with skops serialization and an
explicit, reviewed list of trusted types: every type that skops does not trust by default must come
from a module prefix in ``TRUSTED_TYPE_PREFIXES``, otherwise logging (and loading) raises
``ValueError`` naming the type. The recorded list is checked again on load, because MLflow reads it
from the model's own ``MLmodel`` file. Requirements are explicit pins of the installed versions
(``MODEL_REQUIREMENTS``). kycrisk's own packages (``features``, ``training``) are not on PyPI and are
not copied into the model: the service runs from the same checkout, and the model's metadata records
``kycrisk_version`` and ``git_commit`` so that it can check which code the model was trained with.

``load_model`` follows a registry alias (``training.tracking.registry``) to one pinned version and
loads it through the same review.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import logging
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

# Only dotted mlflow imports (they bind `mlflow` too): see training/tracking/store.py.
import mlflow.artifacts
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.models import Model, ModelSignature, infer_signature
from mlflow.models.model import ModelInfo

from training.tracking.registry import CHAMPION, get_alias_version
from training.tracking.runs import active_run_id
from training.tracking.store import ensure_configured, git_commit, package_version

log = logging.getLogger(__name__)

#: Reviewed allow-list for skops trusted types, by module prefix (with the trailing dot, so that
#: ``sklearnx.`` does not pass as ``sklearn.``). A type outside these prefixes makes logging and
#: loading fail. A new entry here is new code that the scoring service will import and run when it
#: loads a model: add one only after reading that code, and say why in the commit.
TRUSTED_TYPE_PREFIXES: tuple[str, ...] = (
    "features.",  # our own transformers (this checkout)
    "training.",  # our own estimators/wrappers (this checkout)
    "lightgbm.",  # LGBMClassifier, Booster
    "feature_engine.",  # encoders, imputers, creation transformers
    "sklearn.",  # Pipeline, ColumnTransformer, ... (skops trusts most of sklearn already)
    "numpy.",  # numpy functions/types used by e.g. FunctionTransformer
    "collections.",  # OrderedDict inside LightGBM/feature-engine fitted state
)

#: Distributions pinned (to the installed version) in every logged model's requirements. mlflow
#: adds its own pin. kycrisk itself is not on PyPI: the service runs from the same checkout.
MODEL_REQUIREMENTS: tuple[str, ...] = (
    "lightgbm",
    "scikit-learn",
    "scipy",
    "pandas",
    "numpy",
    "feature-engine",
    "skops",
)


def review_trusted_types(types: Iterable[str]) -> list[str]:
    """Check type names against ``TRUSTED_TYPE_PREFIXES``: the review of what a model may load.

    Args:
        types: Fully qualified type names (``module.Class``).

    Returns:
        The names, sorted and deduplicated.

    Raises:
        ValueError: naming every type outside the allow-list.
    """
    names = sorted(set(types))
    refused = [name for name in names if not name.startswith(TRUSTED_TYPE_PREFIXES)]
    if refused:
        raise ValueError(
            f"untrusted type(s) in model: {', '.join(refused)}; allowed module prefixes are "
            f"{', '.join(TRUSTED_TYPE_PREFIXES)} (training/tracking/models.py TRUSTED_TYPE_PREFIXES: a new "
            "entry is new code the scoring service will load, so review it first)"
        )
    return names


def trusted_types_for(estimator: Any, extra_trusted_types: Iterable[str] = ()) -> list[str]:
    """The reviewed skops trusted types needed to load ``estimator``.

    Args:
        estimator: A fitted estimator or pipeline.
        extra_trusted_types: Further type names to trust; reviewed like the rest.

    Returns:
        Sorted type names, all within ``TRUSTED_TYPE_PREFIXES``.

    Raises:
        ValueError: if any type is outside the allow-list.
    """
    import skops.io

    found = skops.io.get_untrusted_types(data=skops.io.dumps(estimator))
    return review_trusted_types([*found, *extra_trusted_types])


def model_requirements() -> list[str]:
    """Pins ``name==installed version`` for ``MODEL_REQUIREMENTS`` (missing ones are left out)."""
    pins = []
    for dist in MODEL_REQUIREMENTS:
        try:
            pins.append(f"{dist}=={importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            log.warning("%s is not installed; not pinned in the model's requirements", dist)
    return pins


def _json_safe(value: Any) -> Any:
    # MLmodel is YAML: dates, numpy numbers and tuples must become plain types first
    return json.loads(json.dumps(value, default=lambda v: v.item() if isinstance(v, np.generic) else str(v)))


def log_pipeline(
    pipeline: Any,
    name: str,
    signature_input: pd.DataFrame,
    predictions: Any = None,
    metadata: Mapping[str, Any] | None = None,
    extra_trusted_types: Sequence[str] = (),
    *,
    input_example_rows: int = 5,
    pyfunc_predict_fn: str = "predict_proba",
) -> ModelInfo:
    """Log the whole fitted scikit-learn Pipeline to the active run with skops serialization.

    Args:
        pipeline: Fitted ``sklearn.pipeline.Pipeline`` (preprocessing and model together).
        name: Name of the logged model (e.g. ``"fraud_lgbm"``).
        signature_input: Representative raw input rows (a sample, e.g. a few thousand); the
            signature is inferred from it and its first rows become the input example.
        predictions: Output for ``signature_input``; default ``pipeline.predict_proba(...)``,
            which is what the pyfunc flavour returns.
        metadata: JSON-able facts the service needs: feature set name/version, tier policy,
            training period, model name. ``kycrisk_version`` and ``git_commit`` are added.
        extra_trusted_types: Type names to trust besides those found in the pipeline (reviewed too).
        input_example_rows: Rows of ``signature_input`` saved as the input example.
        pyfunc_predict_fn: Method the pyfunc flavour calls.

    Returns:
        MLflow's ``ModelInfo`` (``model_uri`` is ``models:/<model id>``).

    Raises:
        TypeError: not a Pipeline. ValueError: a type outside ``TRUSTED_TYPE_PREFIXES``.
    """
    from sklearn.pipeline import Pipeline
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(pipeline, Pipeline):
        raise TypeError(
            f"log the whole sklearn Pipeline (the service runs its fitted steps on one row), "
            f"not a {type(pipeline).__name__}"
        )
    check_is_fitted(pipeline)
    active_run_id()
    trusted = trusted_types_for(pipeline, extra_trusted_types)
    if predictions is None:
        predictions = getattr(pipeline, pyfunc_predict_fn)(signature_input)
    # MLflow signatures and input examples hold tz-naive datetimes: record UTC wall times (the
    # pipelines read naive times as UTC).
    signature_input = signature_input.copy()
    for column in signature_input.select_dtypes(include="datetimetz").columns:
        signature_input[column] = signature_input[column].dt.tz_convert("UTC").dt.tz_localize(None)
    signature: ModelSignature = infer_signature(signature_input, predictions)
    git = git_commit()
    full_metadata = {
        **_json_safe(dict(metadata or {})),
        "kycrisk_version": package_version(),
        "git_commit": git.commit or "unknown",
        "git_dirty": git.dirty,
    }
    return mlflow.sklearn.log_model(
        pipeline,
        name=name,
        signature=signature,
        input_example=signature_input.head(input_example_rows),
        metadata=full_metadata,
        pip_requirements=model_requirements(),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        skops_trusted_types=trusted,
        pyfunc_predict_fn=pyfunc_predict_fn,
    )


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A registered pipeline, loaded, with what the registry knows about it."""

    pipeline: Any
    name: str
    version: str
    alias: str | None
    model_uri: str  # pinned: models:/<name>/<version>
    run_id: str | None
    metadata: dict[str, Any]
    tags: dict[str, str]
    signature: ModelSignature | None


def _load_reviewed(model_uri: str) -> tuple[Any, Model]:
    with tempfile.TemporaryDirectory(prefix="kycrisk-model-") as tmp:
        local = mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=tmp)
        model = Model.load(local)
        flavor = model.flavors.get("sklearn")
        if flavor is None:
            raise ValueError(f"{model_uri} has no sklearn flavour")
        if flavor.get("serialization_format") != mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS:
            # pickle/cloudpickle run arbitrary code on load: only skops models pass the review
            raise ValueError(
                f"{model_uri} is serialized as {flavor.get('serialization_format')!r}, not skops"
            )
        # MLflow takes the trusted types from the model's own MLmodel file: review them again here.
        review_trusted_types(flavor.get("skops_trusted_types") or [])
        pipeline = mlflow.sklearn.load_model(local)
    return pipeline, model


def load_pipeline(model_uri: str) -> Any:
    """Load a logged/registered pipeline after reviewing its trusted types.

    Args:
        model_uri: Any model URI (``models:/name/3``, ``models:/name@champion``, ``models:/<id>``).

    Returns:
        The scikit-learn pipeline.

    Raises:
        ValueError: not a skops sklearn model, or it trusts a type outside the allow-list.
    """
    ensure_configured()
    return _load_reviewed(model_uri)[0]


def load_pipeline_and_metadata(model_uri: str) -> tuple[Any, dict[str, Any]]:
    """``load_pipeline`` plus the model's logged metadata (feature set, tier policy, ...)."""
    ensure_configured()
    pipeline, model = _load_reviewed(model_uri)
    return pipeline, dict(model.metadata or {})


def load_model(name: str, alias: str = CHAMPION) -> LoadedModel:
    """Load the pipeline an alias points at, with its version, metadata and tags.

    The alias is resolved once and the pinned version loaded, so a concurrent promotion cannot mix
    one version's metadata with another's model.

    Args:
        name: Registered model name.
        alias: Alias to follow.

    Returns:
        ``LoadedModel``.

    Raises:
        LookupError: the model or alias does not exist.
    """
    version = get_alias_version(name, alias)
    if version is None:
        raise LookupError(f"registered model {name!r} has no alias {alias!r}")
    uri = f"models:/{name}/{version.version}"
    pipeline, model = _load_reviewed(uri)
    return LoadedModel(
        pipeline=pipeline,
        name=name,
        version=str(version.version),
        alias=alias,
        model_uri=uri,
        run_id=version.run_id,
        metadata=dict(model.metadata or {}),
        tags=dict(version.tags or {}),
        signature=model.signature,
    )
