"""Run logging: open a tagged run and record its parameters, metrics, datasets and artifacts.

MLflow refuses some keys and values that a nested configuration or metric dict naturally holds, so
the workarounds sit here: names are sanitised (and collisions warned about), nested dicts flattened
to ``a.b.c``, over-long parameter values truncated and non-finite metrics skipped, each with a
``TrackingWarning``. Datasets are identified by our own sha256 digests (``sha256_files`` over the
parquet files, or ``frame_digest``): MLflow's digest column holds 36 characters and its own digest
is slow on large frames, so the full digest goes into tags as well.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import numbers
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

# Only dotted mlflow imports (they bind `mlflow` too): see training/tracking/store.py.
import mlflow.data
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from training.tracking.store import TAG_PREFIX, ensure_experiment, git_commit, package_version

log = logging.getLogger(__name__)

DATASET_CONTEXTS: tuple[str, ...] = ("training", "validation", "test")

SCHEMA_SAMPLE_ROWS = 1000  # rows a dataset input's schema is inferred from (log_dataset_input)

_MAX_NAME_LENGTH = 250  # MLflow's limit for param/metric/tag keys
_MAX_PARAM_VALUE_LENGTH = 6000
_MAX_DATASET_DIGEST_LENGTH = 36  # MLflow's column size: a full sha256 goes into a tag instead
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\- /]")


class TrackingWarning(UserWarning):
    """Something was not logged as given (skipped metric, truncated parameter, renamed key)."""


@contextlib.contextmanager
def start_run(
    experiment: str, run_name: str | None = None, tags: Mapping[str, Any] | None = None
) -> Iterator[mlflow.ActiveRun]:
    """Open a run in ``experiment`` (created if needed), tagged with the git commit and kycrisk version.

    The run ends FAILED if the block raises.

    Args:
        experiment: Experiment name.
        run_name: Display name of the run.
        tags: Extra run tags (values are turned into strings).

    Yields:
        The active MLflow run.
    """
    experiment_id = ensure_experiment(experiment)
    all_tags = {**git_commit().as_tags(), f"{TAG_PREFIX}version": package_version()}
    all_tags.update({str(k): str(v) for k, v in (tags or {}).items()})
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=all_tags) as run:
        yield run


def active_run_id() -> str:
    """The active run's id; ``RuntimeError`` outside ``with start_run(...)``."""
    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("no active MLflow run: call this inside `with tracking.start_run(...)`")
    return run.info.run_id


def sanitize_name(name: str) -> str:
    """Make a parameter/metric name MLflow accepts: ASCII letters, digits, ``_ . - /`` and spaces.

    Other characters become ``_``; empty, ``.`` and ``..`` path segments are dropped (MLflow refuses
    names that change under path normalisation); at most 250 characters.

    Args:
        name: Any key.

    Returns:
        The sanitised name (``_`` if nothing is left).
    """
    cleaned = _BAD_NAME_CHARS.sub("_", str(name))
    parts = [part.strip() for part in cleaned.split("/")]
    parts = [("_" + part if part.startswith("..") else part) for part in parts if part not in ("", ".", "..")]
    cleaned = "/".join(parts)[:_MAX_NAME_LENGTH].rstrip("/ ")
    return cleaned or "_"


def _flatten(values: Mapping[str, Any], sep: str, parent: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in values.items():
        full = f"{parent}{sep}{key}" if parent else str(key)
        if isinstance(value, Mapping):
            yield from _flatten(value, sep, full)
        else:
            yield full, value


def _sanitized_items(values: Mapping[str, Any], sep: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    renamed: list[str] = []
    for key, value in _flatten(values, sep):
        clean = sanitize_name(key)
        if clean != key:
            renamed.append(f"{key!r} -> {clean!r}")
        if clean in out:
            warnings.warn(
                f"{key!r} collides with another key as {clean!r}; keeping the last",
                TrackingWarning,
                stacklevel=3,
            )
        out[clean] = value
    if renamed:
        log.debug("renamed for MLflow: %s", ", ".join(renamed))
    return out


def _param_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (Path, datetime, pd.Timestamp)):
        return str(value)
    try:
        return json.dumps(value, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return str(value)


def log_params_flat(params: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Log a nested parameter dict as flat ``a.b.c`` parameters of the active run.

    Lists and other non-strings are logged as JSON; values longer than MLflow's 6000 characters are
    truncated with a ``TrackingWarning``.

    Args:
        params: Possibly nested mapping of parameters.
        prefix: Optional prefix for every key (e.g. ``"model"``).

    Returns:
        The parameters as logged (sanitised name -> string value).
    """
    active_run_id()
    nested = {prefix: params} if prefix else params
    flat = {key: _param_value(value) for key, value in _sanitized_items(nested, ".").items()}
    for key, value in flat.items():
        if len(value) > _MAX_PARAM_VALUE_LENGTH:
            warnings.warn(
                f"parameter {key!r} truncated to {_MAX_PARAM_VALUE_LENGTH} characters",
                TrackingWarning,
                stacklevel=2,
            )
            flat[key] = value[:_MAX_PARAM_VALUE_LENGTH]
    if flat:
        mlflow.log_params(flat)
    return flat


def log_metrics_flat(
    metrics: Mapping[str, Any], step: int | None = None, prefix: str = ""
) -> dict[str, float]:
    """Log a nested metric dict as flat ``a.b.c`` metrics of the active run.

    NaN, infinite and non-numeric values are skipped with one ``TrackingWarning`` naming them (a
    segment too small to score gives NaN; MLflow would store it but it breaks comparisons).

    Args:
        metrics: Possibly nested mapping of numbers (bools log as 0/1).
        step: Optional step.
        prefix: Optional prefix for every key (e.g. ``"test"``).

    Returns:
        The metrics as logged (sanitised name -> float).
    """
    active_run_id()
    nested = {prefix: metrics} if prefix else metrics
    logged: dict[str, float] = {}
    skipped: list[str] = []
    for key, value in _sanitized_items(nested, ".").items():
        if isinstance(value, (bool, np.bool_)):
            value = float(value)
        if not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            skipped.append(f"{key}={value!r}")
            continue
        logged[key] = float(value)
    if skipped:
        warnings.warn(
            f"metrics not logged (not finite numbers): {', '.join(skipped)}", TrackingWarning, stacklevel=2
        )
    if logged:
        mlflow.log_metrics(logged, step=step)
    return logged


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_files(paths: Iterable[str | Path]) -> str:
    """One sha256 over the names and bytes of some files (e.g. a dataset's parquet files).

    Args:
        paths: Files; their order does not matter (sorted by name).

    Returns:
        Hex digest (64 characters).
    """
    digest = hashlib.sha256()
    for path in sorted(Path(p) for p in paths):
        digest.update(path.name.encode())
        digest.update(_sha256_file(path).encode())
    return digest.hexdigest()


def frame_digest(df: pd.DataFrame) -> str:
    """A sha256 of a DataFrame's columns, dtypes and values (row order matters, the index does not).

    Args:
        df: Any DataFrame.

    Returns:
        Hex digest (64 characters).
    """
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in df.dtypes.items()]).encode())
    digest.update(np.int64(len(df)).tobytes())
    if len(df.columns):
        digest.update(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def log_config_file(path: str | Path, artifact_path: str = "config") -> str:
    """Attach a configuration file to the active run and tag the run with its sha256.

    Args:
        path: The file.
        artifact_path: Folder within the run's artifacts.

    Returns:
        The artifact's path within the run.
    """
    path = Path(path)
    active_run_id()
    mlflow.log_artifact(str(path), artifact_path=artifact_path)
    mlflow.set_tags({f"{TAG_PREFIX}config.file": path.name, f"{TAG_PREFIX}config.sha256": _sha256_file(path)})
    return f"{artifact_path}/{path.name}"


def log_dataset_input(
    df: pd.DataFrame,
    name: str,
    source: str | Path,
    context: str,
    digest: str | None = None,
    targets: str | None = None,
) -> str:
    """Record a dataset used by the active run as an MLflow dataset input.

    MLflow stores the schema, row count, source and a digest of at most 36 characters; the full
    digest also goes into the input's tags and into the run tag ``kycrisk.dataset.<context>.sha256``.

    Args:
        df: The frame the run used (not copied or modified).
        name: Dataset name (e.g. ``"train"``).
        source: Where it came from: a path or URI (e.g. the parquet folder).
        context: One of ``DATASET_CONTEXTS``.
        digest: Our digest, e.g. ``sha256_files(parquet files)``; default ``frame_digest(df)``
            (MLflow's own digest is slow on large frames).
        targets: Optional label column name present in ``df``.

    Returns:
        The full digest.
    """
    if context not in DATASET_CONTEXTS:
        raise ValueError(f"context must be one of {DATASET_CONTEXTS}, got {context!r}")
    active_run_id()
    full = digest or frame_digest(df)
    short = full[:_MAX_DATASET_DIGEST_LENGTH]
    with warnings.catch_warnings():
        # MLflow registers the local-file source type twice and warns about its own ambiguity; the
        # integer-column hint is about model signatures, not recorded datasets
        warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted")
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer column")
        try:
            dataset = mlflow.data.from_pandas(
                df, source=str(source), name=name, digest=short, targets=targets
            )
            understood = True
        except MlflowException:
            # a source MLflow cannot interpret (e.g. "generator:seed=7"): MLflow records the code
            # location instead; the given source is kept in our tag
            dataset = mlflow.data.from_pandas(df, name=name, digest=short, targets=targets)
            understood = False
        # MLflow infers the schema from the whole frame when logging (over a minute for a few
        # hundred thousand rows of ~120 columns); the column types are the same on a sample, so
        # fill the dataset's cached schema from one. The profile still counts every row.
        dataset.__dict__["schema"] = infer_signature(df.head(SCHEMA_SAMPLE_ROWS)).inputs
        mlflow.log_input(dataset, context=context, tags={"sha256": full})
    if not understood:
        warnings.warn(
            f"MLflow cannot interpret dataset source {str(source)!r}; kept as a tag",
            TrackingWarning,
            stacklevel=2,
        )
    mlflow.set_tags(
        {
            f"{TAG_PREFIX}dataset.{context}.name": name,
            f"{TAG_PREFIX}dataset.{context}.sha256": full,
            f"{TAG_PREFIX}dataset.{context}.source": str(source),
            f"{TAG_PREFIX}dataset.{context}.rows": str(len(df)),
        }
    )
    return full


def log_figure_files(paths: Iterable[str | Path], artifact_path: str = "figures") -> list[str]:
    """Attach image/HTML files (plots) to the active run.

    Args:
        paths: Existing files.
        artifact_path: Folder within the run's artifacts.

    Returns:
        The artifacts' paths within the run.
    """
    active_run_id()
    logged = []
    for path in map(Path, paths):
        if not path.is_file():
            raise FileNotFoundError(f"figure file not found: {path}")
        mlflow.log_artifact(str(path), artifact_path=artifact_path)
        logged.append(f"{artifact_path}/{path.name}")
    return logged


def log_text(text: str, artifact_file: str = "model_card.md") -> str:
    """Attach a text artifact (e.g. the Markdown model card) to the active run.

    Args:
        text: The content.
        artifact_file: Path within the run's artifacts.

    Returns:
        ``artifact_file``.
    """
    active_run_id()
    mlflow.log_text(text, artifact_file)
    return artifact_file
