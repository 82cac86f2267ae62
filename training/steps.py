"""The fraud Pipeline's third-party steps with a record-level method beside their frame method.

feature-engine's ``OrdinalEncoder`` and scikit-learn's ``CalibratedClassifierCV`` only take frames
and arrays; the service scores one order at a time, where their per-call input checks cost more
than the LightGBM prediction itself. This module gives each a one-row method that reads the same
fitted state through the same rule as its frame method, so that ``serving`` runs the fitted steps
instead of copies of them:

- ``CategoricalEncoder``: the models' categorical encoding (a thin ``OrdinalEncoder`` subclass,
  arbitrary codes, unseen and missing values -1). Its ``transform`` gives feature-engine's output
  (values and dtypes) without copying the frame (feature-engine's ``check_X`` copies it whole,
  seconds on the training frame), and ``transform_record`` encodes one record; both read
  ``_code``. ``CategoricalEncoder.of`` wraps an encoder of a model logged before this class.
- ``CalibratedRecords``: the calibrated LightGBM model of a fitted ``CalibratedClassifierCV`` on
  rows already encoded (``row_vector``): one booster call plus the fitted calibrators, as
  ``predict_proba`` computes them.

Kept in ``training`` beside the Pipeline it belongs to (``training.fraud.build_pipeline``), apart
from ``training.fraud`` so that the service imports these steps without the training flow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from feature_engine.dataframe_checks import _check_optional_contains_na, _check_X_matches_training_df
from feature_engine.encoding import OrdinalEncoder
from feature_engine.selection import DropFeatures
from feature_engine.variable_handling import check_all_variables
from sklearn.calibration import CalibratedClassifierCV
from sklearn.isotonic import IsotonicRegression
from sklearn.utils.validation import check_is_fitted


def _missing(value: Any) -> bool:
    return (
        value is None or value is pd.NA or value is pd.NaT or (isinstance(value, float) and math.isnan(value))
    )


def _code(codes: Mapping[Any, int], missing: int | None, value: Any) -> int | None:
    """The learnt code of one value (None when unseen): a missing value has one only if NaN was learnt."""
    return missing if _missing(value) else codes.get(value)


class CategoricalEncoder(OrdinalEncoder):
    """feature-engine's ``OrdinalEncoder`` with ``transform_record`` and a ``transform`` that does not copy.

    Same parameters, fitted state and output as ``OrdinalEncoder``; ``transform`` takes
    feature-engine's own route for anything but a plain frame with ``unseen="encode"``.
    """

    def fit(self, X: pd.DataFrame, y: pd.Series | None = None):
        """``OrdinalEncoder.fit`` on the variables alone (feature-engine copies the frame it is given)."""
        if (
            isinstance(X, pd.DataFrame)
            and self.encoding_method == "arbitrary"
            and isinstance(self.variables, list)
            and X.columns.is_unique
            and not X.empty
            and set(self.variables) <= set(X.columns)
        ):
            super().fit(X[self.variables], y)
            self._get_feature_names_in(X)  # the whole frame's columns, as fitting on X gives
            return self
        return super().fit(X, y)

    def _tables(self) -> dict[str, tuple[dict[Any, int], int | None]]:
        """Per variable: its learnt codes and the code of a missing value (None: unseen)."""
        tables = self.__dict__.get("_code_tables")
        if tables is None:
            tables = {
                var: (
                    dict(codes),
                    next((c for k, c in codes.items() if isinstance(k, float) and math.isnan(k)), None),
                )
                for var, codes in self.encoder_dict_.items()
            }
            self.__dict__["_code_tables"] = tables  # derived from encoder_dict_, rebuilt after unpickling too
        return tables

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_code_tables", None)  # derived: never part of the logged artifact
        return state

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """``OrdinalEncoder.transform``: categories replaced by their codes, unseen and missing -1.

        A column whose every value has a code comes out ``int64``, otherwise ``float64`` (as
        feature-engine's map and fill give). The other columns are those of ``X`` (shared).
        """
        check_is_fitted(self)
        plain = (
            isinstance(X, pd.DataFrame)
            and self.unseen == "encode"
            and not X.empty
            and X.columns.is_unique
            and all(codes for codes in self.encoder_dict_.values())
            and not any(
                isinstance(X[var].dtype, pd.CategoricalDtype) for var in self.encoder_dict_ if var in X
            )
        )
        if not plain:
            return super().transform(X)
        _check_X_matches_training_df(X, self.n_features_in_)
        X = X[self.feature_names_in_]
        if self.missing_values == "raise":
            _check_optional_contains_na(X, self.variables_)
        tables = self._tables()
        encoded = {}
        for var in self.encoder_dict_:
            codes, missing = tables[var]
            positions, distinct = pd.factorize(X[var])  # a missing value gets -1: the appended last entry
            found = [_code(codes, missing, value) for value in distinct] + [missing]
            table = np.array([self._unseen if c is None else c for c in found], dtype=np.int64)
            column = table[positions]
            # feature-engine maps (NaN where unseen) then fills -1: float64 once any row was unseen
            if not np.array([c is not None for c in found])[positions].all():
                column = column.astype("float64")
            encoded[var] = pd.Series(column, index=X.index)
        return X.assign(**encoded)

    def transform_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """``transform`` of one record: its input columns in the fitted order, categories as codes.

        Raises:
            KeyError: the record lacks an input column.
        """
        tables = self._tables()
        unseen = self._unseen
        out = {}
        for column in self.feature_names_in_:
            value = record[column]
            table = tables.get(column)
            if table is not None:
                code = _code(table[0], table[1], value)
                value = unseen if code is None else code
            out[column] = value
        return out

    @classmethod
    def of(cls, encoder: OrdinalEncoder) -> CategoricalEncoder:
        """This class over a fitted ``OrdinalEncoder`` (same state), e.g. from a model logged before it."""
        if isinstance(encoder, cls):
            return encoder
        check_is_fitted(encoder)
        wrapped = cls.__new__(cls)
        wrapped.__dict__.update(encoder.__dict__)
        return wrapped


def _plain(X: Any) -> bool:
    return isinstance(X, pd.DataFrame) and X.columns.is_unique and not X.empty


class DropColumns(DropFeatures):
    """feature-engine's ``DropFeatures`` without its copy of the whole frame in ``fit`` and ``transform``.

    Same parameters, fitted state and output; anything but a plain frame takes feature-engine's route.
    """

    def fit(self, X: pd.DataFrame, y: pd.Series | None = None):
        if not _plain(X):
            return super().fit(X, y)
        self.features_to_drop_ = check_all_variables(X, variables=self.features_to_drop)
        if len(self.features_to_drop_) == len(X.columns):
            raise ValueError(
                "The resulting dataframe will have no columns after dropping all existing variables"
            )
        self._get_feature_names_in(X)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self)
        if not _plain(X):
            return super().transform(X)
        _check_X_matches_training_df(X, self.n_features_in_)
        if list(X.columns) != self.feature_names_in_:
            X = X[self.feature_names_in_]
        return X.drop(columns=self.features_to_drop_)

    def transform_record(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """``transform`` of one record: the record without the dropped columns."""
        dropped = set(self.features_to_drop_)
        return {k: v for k, v in record.items() if k not in dropped}


def row_vector(encoded: Mapping[str, Any], names: Sequence[str]) -> np.ndarray:
    """The model's input row (1 x features, float64, in ``names`` order) from an encoded record.

    As ``LGBMClassifier`` converts the encoded frame: every value as float64, None as NaN.
    """
    values = [encoded[name] for name in names]
    try:
        return np.array([values], dtype=np.float64)
    except (TypeError, ValueError):  # pandas' missing markers (pd.NA, NaT) are NaN to the model too
        return np.array([[math.nan if _missing(v) else float(v) for v in values]], dtype=np.float64)


def calibration_function(calibrator: Any) -> Any:
    """``calibrator.predict`` for one fitted calibrator, without scikit-learn's per-call input checks.

    For an ``IsotonicRegression`` this is the body of its ``_transform`` after ``check_array``
    (cast to the thresholds' dtype, clip, interpolate with its fitted ``f_``, cast back): the same
    numbers (tested against ``predict``), about 0.1 ms less per order. Anything else keeps its
    own ``predict``.
    """
    f = getattr(calibrator, "f_", None)
    if (
        not isinstance(calibrator, IsotonicRegression)
        or f is None
        or not hasattr(calibrator, "X_thresholds_")
    ):
        return calibrator.predict
    dtype = calibrator.X_thresholds_.dtype
    clip = calibrator.out_of_bounds == "clip"
    low, high = calibrator.X_min_, calibrator.X_max_

    def predict(values: np.ndarray) -> np.ndarray:
        t = np.asarray(values, dtype=dtype).reshape(-1)
        if clip:
            t = np.clip(t, low, high)
        return f(t).astype(t.dtype)

    return predict


class CalibratedRecords:
    """``CalibratedClassifierCV.predict_proba`` (positive class) of a binary LightGBM model on encoded rows.

    The mean over the calibrated classifiers of their calibrator applied to LightGBM's
    ``decision_function`` (the raw score in log-odds; its probability for an estimator without
    one), as scikit-learn computes it, from one booster call with one thread.

    Args:
        calibrated: the fitted ``CalibratedClassifierCV`` (two classes).
        booster: the LightGBM booster of its estimator.
    """

    def __init__(self, calibrated: CalibratedClassifierCV, booster: Any):
        if len(calibrated.classes_) != 2:
            raise ValueError(f"a binary model is needed, got classes {list(calibrated.classes_)}")
        self.booster = booster
        self.calibrators = [
            calibration_function(cc.calibrators[0]) for cc in calibrated.calibrated_classifiers_
        ]
        self.raw = all(
            hasattr(cc.estimator, "decision_function") for cc in calibrated.calibrated_classifiers_
        )

    def predict_rows(self, x: np.ndarray) -> np.ndarray:
        """Probabilities of many rows (the same arithmetic as ``predict_record`` row by row)."""
        p = self.booster.predict(x, raw_score=self.raw, num_threads=1)
        total = np.zeros(len(x), dtype=np.float64)
        for calibrate in self.calibrators:
            total += np.asarray(calibrate(p), dtype=np.float64)
        return total / len(self.calibrators)

    def predict_record(self, x: np.ndarray) -> float:
        """The probability of one row (``x``: 1 x features)."""
        p = self.booster.predict(x, raw_score=self.raw, num_threads=1)
        total = 0.0
        for calibrate in self.calibrators:
            total += float(calibrate(p)[0])
        return total / len(self.calibrators)
