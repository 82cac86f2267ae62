"""The one module that talks to MLflow: store configuration, run logging, model logging, registry and promotion.

Its length (~1,000 lines) is the price of that rule (DESIGN.md section 5): every MLflow call, and the
workarounds MLflow's API needs (name sanitising, skops trusted types, dataset digests), sits here so
that no other module imports ``mlflow``. The gate's pure rules live in ``training.gate``.

Store. ``configure()`` (called explicitly by commands, never at import) points tracking and registry
at, in order: its ``tracking_uri`` argument, ``MLFLOW_TRACKING_URI`` (e.g. an MLflow server: no code
change needed), ``sqlite:///$KYCRISK_MLFLOW_DIR/mlflow.db``, and by default
``sqlite:///<repo>/mlflow/mlflow.db`` where ``<repo>`` is the checkout holding ``pyproject.toml``
next to the ``training`` package. For sqlite stores, experiments are created with their artifact
location in ``artifacts/`` beside the database (MLflow's own default would be ``./mlruns`` under
whatever the current directory happens to be).

Models. The whole scikit-learn Pipeline (preprocessing + LightGBM) is logged with skops
serialization and an explicit, reviewed list of trusted types: every type that skops does not
trust by default must come from a module prefix in ``TRUSTED_TYPE_PREFIXES``, otherwise logging
(and loading) raises ``ValueError`` naming the type. The recorded list is checked again on load,
because MLflow reads it from the model's own ``MLmodel`` file. Requirements are explicit pins of the
installed versions (``MODEL_REQUIREMENTS``). kycrisk's own packages (``features``, ``training``) are
not on PyPI and are not copied into the model: the service runs from the same checkout, and the
model's metadata records ``kycrisk_version`` and ``git_commit`` so that it can check which code the
model was trained with.

Registry. A newly registered version gets the alias ``challenger``; ``promote()`` evaluates champion
and challenger with the same caller-supplied evaluation, applies a ``Gate`` and moves ``champion``
only when the challenger passes. Every decision is written as tags on the challenger's version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import math
import numbers
import os
import re
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Only dotted mlflow imports (they bind `mlflow` too): the checkout's mlflow/ store folder makes
# ruff's isort class a bare `import mlflow` as first-party (see the closing note on pyproject).
import mlflow.data
import mlflow.sklearn
import numpy as np
import pandas as pd
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature, infer_signature
from mlflow.models.model import ModelInfo
from mlflow.tracking import MlflowClient

from training.gate import Check, Gate, PromotionResult, apply_gate, compared, describe_failures

log = logging.getLogger(__name__)

# --- constants --------------------------------------------------------------------------------

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

DATASET_CONTEXTS: tuple[str, ...] = ("training", "validation", "test")

CHAMPION, CHALLENGER = "champion", "challenger"
SCHEMA_SAMPLE_ROWS = 1000
TAG_PREFIX = "kycrisk."

# MLflow switches that only make noise (or phone home) for a command line tool; set as defaults,
# so that an explicit setting in the environment still wins.
QUIET_ENV: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # stdout carries our commands' results
    "MLFLOW_PRINT_MODEL_URLS_ON_CREATION": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}

_MAX_NAME_LENGTH = 250  # MLflow's limit for param/metric/tag keys
_MAX_PARAM_VALUE_LENGTH = 6000
_MAX_DATASET_DIGEST_LENGTH = 36  # MLflow's column size: a full sha256 goes into a tag instead
_BAD_NAME_CHARS = re.compile(r"[^A-Za-z0-9_.\- /]")


class TrackingWarning(UserWarning):
    """Something was not logged as given (skipped metric, truncated parameter, renamed key)."""


# --- store configuration ----------------------------------------------------------------------


@dataclasses.dataclass
class _State:
    tracking_uri: str | None = None
    registry_uri: str | None = None
    artifact_root: Path | None = None


_state = _State()


def repo_root() -> Path:
    """The checkout this package runs from (the folder holding ``pyproject.toml``).

    Returns:
        The repository root; if the package is installed without its checkout, the current directory.
    """
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() else Path.cwd()


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The tracking URI ``configure`` would use, without touching anything.

    Args:
        tracking_uri: Explicit URI (e.g. from a command-line flag); wins over the environment.

    Returns:
        The explicit URI, else ``MLFLOW_TRACKING_URI``, else ``sqlite:///$KYCRISK_MLFLOW_DIR/mlflow.db``,
        else ``sqlite:///<repo>/mlflow/mlflow.db``.
    """
    if tracking_uri:
        return tracking_uri
    if env_uri := os.environ.get("MLFLOW_TRACKING_URI"):
        return env_uri
    store_dir = os.environ.get("KYCRISK_MLFLOW_DIR")
    folder = Path(store_dir).expanduser().resolve() if store_dir else repo_root() / "mlflow"
    return f"sqlite:///{folder / 'mlflow.db'}"


def _sqlite_path(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///"):
        return None
    raw = uri[len("sqlite:///") :].split("?", 1)[0]
    if not raw or raw == ":memory:":
        return None
    return Path(raw).expanduser().resolve()  # relative paths are relative to the current folder


def configure(tracking_uri: str | None = None) -> str:
    """Point MLflow tracking and registry at the project's store and quieten MLflow.

    For a sqlite store, creates its folder and remembers ``<folder>/artifacts`` as the root for the
    artifact locations of experiments that ``start_run`` creates. Safe to call more than once.

    Args:
        tracking_uri: Explicit URI; otherwise see ``resolve_tracking_uri``.

    Returns:
        The tracking URI in use.
    """
    uri = resolve_tracking_uri(tracking_uri)
    db_path = _sqlite_path(uri)
    artifact_root = None
    if db_path is not None:
        artifact_root = db_path.parent / "artifacts"
        artifact_root.mkdir(parents=True, exist_ok=True)
        query = uri.partition("?")[2]
        uri = f"sqlite:///{db_path}" + (f"?{query}" if query else "")

    _quieten_mlflow()
    # mlflow.set_registry_uri also exports MLFLOW_REGISTRY_URI, so a value equal to the one we set
    # last time is ours, not the user's.
    env_registry = os.environ.get("MLFLOW_REGISTRY_URI")
    user_registry = env_registry if env_registry and env_registry != _state.registry_uri else None
    registry_uri = user_registry or uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(registry_uri)
    _state.tracking_uri, _state.registry_uri, _state.artifact_root = uri, registry_uri, artifact_root
    log.debug("MLflow tracking %s, registry %s, artifacts %s", uri, registry_uri, artifact_root)
    return uri


def _quieten_mlflow() -> None:
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)
    with contextlib.suppress(Exception):  # telemetry is optional; never fail a command over it
        from mlflow.telemetry import set_telemetry_client

        set_telemetry_client()  # re-reads MLFLOW_DISABLE_TELEMETRY: drops the client made at import
    if not os.environ.get("MLFLOW_LOGGING_LEVEL"):
        # "Creating initial MLflow database tables...", "Registered model ... already exists", ...
        logging.getLogger("mlflow").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)


def _ensure_configured() -> None:
    if _state.tracking_uri is None:
        configure()


def _client() -> MlflowClient:
    _ensure_configured()
    return MlflowClient()


def ensure_experiment(name: str) -> str:
    """Get or create an experiment; new ones on a sqlite store keep artifacts beside the database.

    Args:
        name: Experiment name.

    Returns:
        The experiment id.
    """
    client = _client()
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise ValueError(f"experiment {name!r} is deleted; restore it or choose another name")
        return experiment.experiment_id
    location = None
    if _state.artifact_root is not None:
        folder = _state.artifact_root / re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        location = folder.as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:
        # created concurrently by another process: use theirs
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise
        return experiment.experiment_id


# --- run logging ------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class GitInfo:
    """The checkout's commit and whether it had uncommitted changes (None when unknown)."""

    commit: str | None
    dirty: bool | None

    def as_tags(self) -> dict[str, str]:
        """Run tags: MLflow's standard commit tag (shown in the UI) and our dirty flag."""
        tags = {f"{TAG_PREFIX}git.dirty": "unknown" if self.dirty is None else str(self.dirty).lower()}
        if self.commit:
            tags["mlflow.source.git.commit"] = self.commit
        return tags


def git_commit(path: str | Path | None = None) -> GitInfo:
    """Commit hash and dirty flag of the checkout; tolerant of no git or no repository.

    Args:
        path: Folder inside the repository (default: this checkout).

    Returns:
        ``GitInfo``; fields are None when git is missing or the folder is not a repository.
    """
    cwd = Path(path) if path is not None else repo_root()

    def run(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=20, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = run("rev-parse", "HEAD")
    if commit is None:
        return GitInfo(None, None)
    status = run("status", "--porcelain")
    return GitInfo(commit.strip(), None if status is None else bool(status.strip()))


def _package_version() -> str:
    try:
        return importlib.metadata.version("kycrisk")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


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
    all_tags = {**git_commit().as_tags(), f"{TAG_PREFIX}version": _package_version()}
    all_tags.update({str(k): str(v) for k, v in (tags or {}).items()})
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=all_tags) as run:
        yield run


def _active_run_id() -> str:
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
    _active_run_id()
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
    _active_run_id()
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
    _active_run_id()
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
    _active_run_id()
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
    _active_run_id()
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
    _active_run_id()
    mlflow.log_text(text, artifact_file)
    return artifact_file


# --- model logging ----------------------------------------------------------------------------


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
            f"{', '.join(TRUSTED_TYPE_PREFIXES)} (training/tracking.py TRUSTED_TYPE_PREFIXES: a new "
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
        raise TypeError(f"log the whole sklearn Pipeline, not a {type(pipeline).__name__} (DESIGN.md §4)")
    check_is_fitted(pipeline)
    _active_run_id()
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
        "kycrisk_version": _package_version(),
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


# --- registry ---------------------------------------------------------------------------------

_LOGGED_MODEL_URI = re.compile(r"^models:/(m-[0-9a-f]+)/?$")


def register(model_uri: str, name: str, tags: Mapping[str, Any] | None = None) -> ModelVersion:
    """Register a logged model as a new version of ``name`` and point the alias ``challenger`` at it.

    Args:
        model_uri: ``ModelInfo.model_uri`` (``models:/<model id>``) or any URI MLflow can register.
        name: Registered model name (created if needed).
        tags: Version tags (values are turned into strings).

    Returns:
        The new model version (with the alias set).
    """
    client = _client()
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
    client = _client()
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        # a missing model is RESOURCE_DOES_NOT_EXIST, but the sqlite store reports a missing alias
        # as INVALID_PARAMETER_VALUE, the same code as a malformed alias name (which must raise)
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND") or "not found" in exc.message:
            return None
        raise


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
    _ensure_configured()
    return _load_reviewed(model_uri)[0]


def load_pipeline_and_metadata(model_uri: str) -> tuple[Any, dict[str, Any]]:
    """``load_pipeline`` plus the model's logged metadata (feature set, tier policy, ...)."""
    _ensure_configured()
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


# --- promotion --------------------------------------------------------------------------------


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _record(client: MlflowClient, result: PromotionResult) -> None:
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
    client = _client()
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


__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "DATASET_CONTEXTS",
    "MODEL_REQUIREMENTS",
    "TRUSTED_TYPE_PREFIXES",
    "Check",
    "Gate",
    "GitInfo",
    "LoadedModel",
    "PromotionResult",
    "TrackingWarning",
    "apply_gate",
    "configure",
    "ensure_experiment",
    "frame_digest",
    "get_alias_version",
    "git_commit",
    "load_model",
    "load_pipeline",
    "log_config_file",
    "log_dataset_input",
    "log_figure_files",
    "log_metrics_flat",
    "log_params_flat",
    "log_pipeline",
    "log_text",
    "model_requirements",
    "promote",
    "register",
    "repo_root",
    "resolve_tracking_uri",
    "review_trusted_types",
    "sanitize_name",
    "sha256_files",
    "start_run",
    "trusted_types_for",
]
