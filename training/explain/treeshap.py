"""Exact per-feature contributions from LightGBM's TreeSHAP, and the top reasons of a decision grouped by code.

Contributions (``contributions``, ``Explainer``) come from LightGBM's own exact TreeSHAP
(``predict(..., pred_contrib=True)``) and are in the model's **raw score space**: log-odds for
the binary fraud model, not probabilities. For every row, the feature contributions plus the
bias (the expected raw score over the training data) add up to the raw score exactly (up to
floating-point rounding), and the probability is ``sigmoid(raw score)``. A contribution of
+0.7 means the feature's value moved the log-odds up by 0.7 from the average; it says nothing
about causes, only about this model.

Features of one reason code (``training.explain.reasons.describe_feature``) are grouped, so that
the top-k list is not five windows of one velocity: a group's contribution is the sum of its
features' contributions, its direction the sign of that sum, and its sentence is the one of the
member that pushes most in that direction.

Speed (see ``training.bench.explain``): exact TreeSHAP costs about trees × leaves × depth² per
row, so the model size decides the latency. For one request, ``Explainer`` calls
``pred_contrib`` once on a float64 numpy row with one thread and derives the probability from
the contributions: no pandas frame, no second ``predict`` call.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.reasons import FeatureDoc, is_missing
from training.explain.reasons import DECREASES, INCREASES, describe_feature, json_value

__all__ = ["BIAS_COLUMN", "DIRECTIONS", "Explainer", "booster_of", "contributions", "reasons_for_row"]

BIAS_COLUMN = "bias"
DIRECTIONS = ("increase", "both")


# --- Models and contributions -----------------------------------------------------------------


def booster_of(model: Any) -> lgb.Booster:
    """The LightGBM booster of a Booster, a fitted LGBM scikit-learn model, or a Pipeline ending in one.

    Raises:
        TypeError: no booster can be found.
    """
    if isinstance(model, lgb.Booster):
        return model
    if hasattr(model, "steps"):  # scikit-learn Pipeline: the final estimator
        return booster_of(model.steps[-1][1])
    booster = getattr(model, "booster_", None)
    if isinstance(booster, lgb.Booster):
        return booster
    raise TypeError(f"expected a LightGBM Booster or fitted LGBM model, got {type(model).__name__}")


def _check_single_output(booster: lgb.Booster) -> None:
    if booster.num_model_per_iteration() != 1:
        raise ValueError(
            f"contributions are defined here for single-output models; this one has "
            f"{booster.num_model_per_iteration()} outputs per iteration (multiclass)"
        )


def contributions(model: Any, X_model: pd.DataFrame, *, num_threads: int | None = None) -> pd.DataFrame:
    """Exact per-feature contributions (LightGBM TreeSHAP) in the model's raw log-odds space.

    ``X_model`` holds the model's inputs, i.e. the output of the preprocessing steps of the
    pipeline (``pipeline[:-1].transform(X)``); its columns are reordered to the model's feature
    order, and extra columns are ignored. The input is not modified.

    Args:
        model: a LightGBM Booster, a fitted ``LGBMClassifier`` or a Pipeline ending in one.
        X_model: the model's input rows.
        num_threads: LightGBM threads for this call (None: the model's setting).

    Returns:
        DataFrame with the index of ``X_model``: one column per model feature (its contribution
        to the raw score, in log-odds) in the model's feature order, then ``bias`` (the expected
        raw score, the same in every row). Each row sums to the model's raw score
        (``predict(..., raw_score=True)``); ``sigmoid`` of that sum is the probability.

    Raises:
        ValueError: a model feature is missing from ``X_model``, a feature is named ``bias``, or
            the model is multiclass.
    """
    booster = booster_of(model)
    _check_single_output(booster)
    names = booster.feature_name()
    if BIAS_COLUMN in names:
        raise ValueError(f"a model feature is named {BIAS_COLUMN!r}, the name of the bias column")
    missing = [c for c in names if c not in X_model.columns]
    if missing:
        raise ValueError(f"X_model is missing model feature(s) {missing}")
    kwargs = {} if num_threads is None else {"num_threads": int(num_threads)}
    values = booster.predict(X_model[names], pred_contrib=True, **kwargs)
    return pd.DataFrame(
        np.asarray(values, dtype=np.float64), index=X_model.index, columns=[*names, BIAS_COLUMN]
    )


# --- Reasons ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Layout:
    """Feature -> group, precomputed once per feature list."""

    names: tuple[str, ...]
    specs: tuple[FeatureDoc, ...]
    group_of: np.ndarray  # group index of each feature
    members: tuple[np.ndarray, ...]  # feature indices of each group
    codes: tuple[str, ...]  # code of each group


@functools.lru_cache(maxsize=64)
def _layout(names: tuple[str, ...]) -> _Layout:
    specs = tuple(describe_feature(n) for n in names)
    keys: dict[str, int] = {}
    group_of = np.empty(len(names), dtype=np.intp)
    codes: list[str] = []
    for i, spec in enumerate(specs):
        # OTHER is a bag of unrelated features: never sum them together.
        key = spec.code if spec.code != "OTHER" else f"OTHER:{spec.feature}"
        if key not in keys:
            keys[key] = len(codes)
            codes.append(spec.code)
        group_of[i] = keys[key]
    members = tuple(np.flatnonzero(group_of == g) for g in range(len(codes)))
    return _Layout(names, specs, group_of, members, tuple(codes))


def _check_args(top_k: int, direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int | np.integer) or top_k < 0:
        raise ValueError(f"top_k must be an integer >= 0, got {top_k!r}")


def _reasons(
    layout: _Layout,
    contrib: np.ndarray,
    value_of: Callable[[int], Any],
    raw_inputs: Mapping[str, Any] | None,
    top_k: int,
    direction: str,
) -> list[dict[str, Any]]:
    if top_k == 0 or not len(layout.names):
        return []
    sums = np.bincount(layout.group_of, weights=contrib, minlength=len(layout.codes))
    if direction == "increase":
        candidates = np.flatnonzero(sums > 0)
        order = candidates[np.argsort(-sums[candidates], kind="stable")]
    else:
        candidates = np.flatnonzero(sums != 0)
        order = candidates[np.argsort(-np.abs(sums[candidates]), kind="stable")]
    out = []
    for g in order[:top_k]:
        total = float(sums[g])
        members = layout.members[g]
        sign = 1.0 if total > 0 else -1.0
        i = int(members[np.argmax(contrib[members] * sign)]) if members.size > 1 else int(members[0])
        spec = layout.specs[i]
        value = value_of(i)
        ranked = members[np.argsort(-(contrib[members] * sign), kind="stable")]
        out.append(
            {
                "code": spec.code,
                "source": "model",
                "feature": spec.feature,
                "value": json_value(value),
                "contribution": total,
                "direction": INCREASES if total > 0 else DECREASES,
                "message": spec.message(value, raw_inputs),
                "features": [layout.names[j] for j in ranked],
                "decisive": None,
            }
        )
    return out


def reasons_for_row(
    contrib_row: pd.Series | Mapping[str, float],
    feature_row: pd.Series | Mapping[str, Any],
    raw_inputs: Mapping[str, Any] | None = None,
    top_k: int = 5,
    direction: str = "increase",
) -> list[dict[str, Any]]:
    """The top reasons of one decision, grouped by reason code, with sentences from the actual values.

    Args:
        contrib_row: contributions of one row by feature name (a row of ``contributions``; the
            ``bias`` entry is ignored).
        feature_row: the values the model saw, by feature name (a row of ``X_model``); a
            feature absent here is "unknown" in its sentence.
        raw_inputs: request data that makes sentences more specific, optional: country codes
            (``buyer_nationality``, ``buyer_residence_country``, ``ip_country``, ...),
            ``goods_category``, ``{party}_industry``, screening details
            (``{party}_screen_entry_id``, ``_screen_list_type``, ``_screen_dob_match``, ...).
        top_k: at most this many reasons.
        direction: ``increase``: only groups that push the score up, largest first (for a
            rejection or review); ``both``: groups in either direction, by absolute contribution.

    Returns:
        Reason dicts (the shape described in the module docstring), most important first.

    Raises:
        ValueError: unknown ``direction`` or a negative ``top_k``.
        TypeError: ``contrib_row`` is neither a Series nor a mapping (names are needed).
    """
    _check_args(top_k, direction)
    if not isinstance(contrib_row, pd.Series | Mapping):
        raise TypeError(f"contrib_row must be a pandas Series or a mapping, got {type(contrib_row).__name__}")
    names, values = [], []
    for name, value in contrib_row.items():
        if name == BIAS_COLUMN:
            continue
        names.append(str(name))
        values.append(float(value))
    layout = _layout(tuple(names))
    contrib = np.asarray(values, dtype=np.float64)
    if isinstance(feature_row, pd.Series):
        feature_row = feature_row.to_dict()

    def value_of(i: int) -> Any:
        return feature_row.get(layout.names[i]) if feature_row is not None else None

    return _reasons(layout, contrib, value_of, raw_inputs, top_k, direction)


# --- The fast path for one request ------------------------------------------------------------


def _sigmoid(z: float) -> float:
    """Logistic function without overflow for large |z|."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _categorical_features(booster: lgb.Booster, names: Sequence[str]) -> list[int]:
    params = booster.params or {}
    raw = params.get("categorical_column", params.get("categorical_feature", []))
    if isinstance(raw, int | str):
        raw = [raw]
    out = []
    for item in raw or []:
        if isinstance(item, str) and not item.lstrip("-").isdigit():
            if item.startswith("name:"):
                out.extend(names.index(n) for n in item[5:].split(",") if n in names)
            elif item in names:
                out.append(names.index(item))
        else:
            out.append(int(item))
    return sorted(set(out))


class Explainer:
    """Score and reasons for one request with a single exact TreeSHAP call on a numpy row.

    The probability comes from the contributions (their sum is the raw score), so a request
    costs one ``pred_contrib`` call: no second ``predict`` and no pandas frame. Categorical
    model features are encoded with the category lists the model was trained with (an unknown
    category becomes missing, as LightGBM does for pandas input).

    Args:
        model: a LightGBM Booster, a fitted ``LGBMClassifier`` or a Pipeline ending in one.
        num_threads: LightGBM threads per call; 1 is fastest for one row (no OpenMP start-up,
            no contention with the other requests).

    Attributes:
        booster: the booster.
        feature_names: the model's features, in the order of a row.
    """

    def __init__(self, model: Any, num_threads: int = 1):
        self.booster = booster_of(model)
        _check_single_output(self.booster)
        self.num_threads = int(num_threads)
        self.feature_names: tuple[str, ...] = tuple(self.booster.feature_name())
        self._layout = _layout(self.feature_names)
        cats = _categorical_features(self.booster, self.feature_names)
        lists = self.booster.pandas_categorical or []
        self._categories: dict[int, dict[Any, float]] = {}
        self._category_names: dict[int, list[Any]] = {}
        if lists and len(lists) == len(cats):
            for i, names in zip(cats, lists, strict=True):
                self._categories[i] = {c: float(k) for k, c in enumerate(names)}
                self._category_names[i] = list(names)
        params = self.booster.params or {}
        objective = str(params.get("objective", "binary"))
        self._sigmoid = (
            float(params.get("sigmoid", 1.0))
            if objective in ("binary", "cross_entropy", "xentropy")
            else None
        )

    def row(self, values: Mapping[str, Any]) -> np.ndarray:
        """A 1 × n float64 row in model order from a mapping of feature values (missing: NaN).

        Raises:
            ValueError: a numeric feature has a value that is not a number.
        """
        x = np.full((1, len(self.feature_names)), np.nan, dtype=np.float64)
        for i, name in enumerate(self.feature_names):
            v = values.get(name)
            if is_missing(v):
                continue
            if i in self._categories:
                x[0, i] = self._categories[i].get(v, np.nan)
                continue
            try:
                x[0, i] = float(v)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"feature {name!r}: {v!r} is not a number") from exc
        return x

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Contributions of one row (1 × n float64, model order): n values then the bias."""
        out = self.booster.predict(x, pred_contrib=True, num_threads=self.num_threads)
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def explain(
        self,
        x: np.ndarray | Mapping[str, Any],
        raw_inputs: Mapping[str, Any] | None = None,
        top_k: int = 5,
        direction: str = "increase",
    ) -> dict[str, Any]:
        """Score and reasons for one request.

        Args:
            x: a 1 × n row from ``row`` (fastest), or a mapping of feature values.
            raw_inputs, top_k, direction: as for ``reasons_for_row``.

        Returns:
            Dict with ``raw_score`` (log-odds), ``probability`` (None for a non-binary
            objective), ``expected_value`` (the bias), ``contributions`` (1-D array of the
            features' contributions, model order) and ``reasons`` (reason dicts).
        """
        _check_args(top_k, direction)
        if isinstance(x, Mapping):
            values = x
            x = self.row(x)
        else:
            values = None
        x = np.ascontiguousarray(x, dtype=np.float64).reshape(1, -1)
        out = self.contributions(x)
        contrib, bias = out[:-1], float(out[-1])
        raw_score = float(contrib.sum() + bias)
        probability = None if self._sigmoid is None else _sigmoid(self._sigmoid * raw_score)

        def value_of(i: int) -> Any:
            if values is not None:
                return values.get(self.feature_names[i])
            v = x[0, i]
            names = self._category_names.get(i)
            if names is not None and not math.isnan(v) and 0 <= int(v) < len(names):
                return names[int(v)]
            return v

        return {
            "raw_score": raw_score,
            "probability": probability,
            "expected_value": bias,
            "contributions": contrib,
            "reasons": _reasons(self._layout, contrib, value_of, raw_inputs, top_k, direction),
        }
