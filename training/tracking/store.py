"""Where the MLflow store is, and what every run and model records about the code that made it.

``configure()`` (called explicitly by commands, never at import) points tracking and registry at, in
order: its ``tracking_uri`` argument, ``MLFLOW_TRACKING_URI`` (e.g. an MLflow server: no code change
needed), ``sqlite:///$KYCRISK_MLFLOW_DIR/mlflow.db``, and by default ``sqlite:///<repo>/mlflow/mlflow.db``
where ``<repo>`` is the checkout holding ``pyproject.toml`` next to the ``training`` package. For
sqlite stores, experiments are created with their artifact location in ``artifacts/`` beside the
database (MLflow's own default would be ``./mlruns`` under whatever the current directory happens to
be). The other modules of ``training.tracking`` reach MLflow's client through ``mlflow_client()``,
which configures the default store first if no command did.

The checkout's git commit and kycrisk's version live here too: runs are tagged with them and logged
models carry them in their metadata, so both ``runs`` and ``models`` read them from one place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import logging
import os
import re
import subprocess
from pathlib import Path

# Only dotted mlflow imports (they bind `mlflow` too): the checkout's mlflow/ store folder makes
# ruff's isort class a bare `import mlflow` as first-party.
import mlflow.tracking
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

log = logging.getLogger(__name__)

#: Namespace of kycrisk's own run, model-version and dataset tags.
TAG_PREFIX = "kycrisk."

# MLflow switches that only make noise (or phone home) for a command line tool; set as defaults,
# so that an explicit setting in the environment still wins.
QUIET_ENV: dict[str, str] = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # stdout carries our commands' results
    "MLFLOW_PRINT_MODEL_URLS_ON_CREATION": "false",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
}


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
    root = Path(__file__).resolve().parents[2]  # training/tracking/store.py
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


def ensure_configured() -> None:
    """``configure()`` the default store unless a command configured one already."""
    if _state.tracking_uri is None:
        configure()


def mlflow_client() -> MlflowClient:
    """An MLflow client of the configured store (the default one if nothing was configured)."""
    ensure_configured()
    return MlflowClient()


def ensure_experiment(name: str) -> str:
    """Get or create an experiment; new ones on a sqlite store keep artifacts beside the database.

    Args:
        name: Experiment name.

    Returns:
        The experiment id.
    """
    client = mlflow_client()
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


def package_version() -> str:
    """The installed kycrisk version, or ``"unknown"`` when the checkout is not installed."""
    try:
        return importlib.metadata.version("kycrisk")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
