"""The one place in kycrisk that talks to MLflow: store, run logging, models, registry and promotion.

No other module of ``features``, ``training`` or ``serving`` imports ``mlflow``. Every MLflow call,
and every workaround MLflow's API needs (name sanitising, skops trusted types, dataset digests),
sits in this package, so that an MLflow upgrade, or a move to another tracking server, is a change
here alone, and the review of what a loaded model may run (``TRUSTED_TYPE_PREFIXES`` in
``training.tracking.models``) cannot be bypassed by loading a model some other way. The gate's pure rules, which need no MLflow,
live in ``training.gate``.

It is a package rather than one module because that rule gathers four jobs, one module each:

- ``store``: where the store is (``configure``, ``resolve_tracking_uri``), experiments, the git
  commit and package version that runs and models record;
- ``runs``: an open run's parameters, metrics, dataset inputs and artifacts;
- ``models``: logging and loading the whole fitted Pipeline with reviewed skops types;
- ``registry``: registered versions, aliases, and promotion through the gate with its record.

Callers use the names below (``from training import tracking``, then ``tracking.configure()``, ...).
"""

from training.gate import Gate, PromotionResult, apply_gate
from training.tracking.models import (
    LoadedModel,
    load_model,
    load_pipeline,
    load_pipeline_and_metadata,
    log_pipeline,
    review_trusted_types,
    trusted_types_for,
)
from training.tracking.registry import CHALLENGER, CHAMPION, get_alias_version, promote, register
from training.tracking.runs import (
    TrackingWarning,
    log_config_file,
    log_dataset_input,
    log_figure_files,
    log_metrics_flat,
    log_params_flat,
    log_text,
    sanitize_name,
    sha256_files,
    start_run,
)
from training.tracking.store import QUIET_ENV, GitInfo, configure, git_commit, resolve_tracking_uri

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "QUIET_ENV",
    "Gate",
    "GitInfo",
    "LoadedModel",
    "PromotionResult",
    "TrackingWarning",
    "apply_gate",
    "configure",
    "get_alias_version",
    "git_commit",
    "load_model",
    "load_pipeline",
    "load_pipeline_and_metadata",
    "log_config_file",
    "log_dataset_input",
    "log_figure_files",
    "log_metrics_flat",
    "log_params_flat",
    "log_pipeline",
    "log_text",
    "promote",
    "register",
    "resolve_tracking_uri",
    "review_trusted_types",
    "sanitize_name",
    "sha256_files",
    "start_run",
    "trusted_types_for",
]
