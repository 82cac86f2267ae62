"""The fraud Pipeline's third-party steps with record methods give what the library steps give."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from feature_engine.encoding import OrdinalEncoder
from feature_engine.selection import DropFeatures
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator

from training.steps import CalibratedRecords, CategoricalEncoder, DropColumns, row_vector

KW = dict(encoding_method="arbitrary", missing_values="ignore", unseen="encode", ignore_format=True)


def _frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(3)
    n = 400
    train = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "country": pd.Series(rng.choice(["DE", "FR", "JP", None], size=n), dtype="str"),
            "method": pd.Series(rng.choice(["card", "wallet"], size=n), dtype="str"),
            "id": np.arange(n),
        }
    )
    test = pd.DataFrame(
        {
            "x": [0.5, -1.0, 2.0],
            "country": pd.Series(["DE", "ZZ", None], dtype="str"),  # seen, unseen, missing
            "method": pd.Series(["card", "wallet", "card"], dtype="str"),  # all seen: stays int64
            "id": [1, 2, 3],
        }
    )
    return train, test


def test_encoder_equals_feature_engine_values_and_dtypes() -> None:
    train, test = _frames()
    variables = ["country", "method"]
    reference = OrdinalEncoder(variables=variables, **KW).fit(train)
    ours = CategoricalEncoder(variables=variables, **KW).fit(train)
    assert ours.encoder_dict_ == reference.encoder_dict_
    assert ours.feature_names_in_ == reference.feature_names_in_
    for frame in (train, test, test[["id", "method", "x", "country"]]):  # reordered columns too
        pd.testing.assert_frame_equal(ours.transform(frame), reference.transform(frame), check_exact=True)
    wrapped = CategoricalEncoder.of(reference)
    expected = reference.transform(test)
    for i, record in enumerate(test.to_dict("records")):
        got = wrapped.transform_record(record)
        assert list(got) == list(expected.columns)
        assert [got[c] for c in expected.columns] == pytest.approx(expected.iloc[i].tolist(), nan_ok=True)
    with pytest.raises(KeyError):
        wrapped.transform_record({"x": 1.0, "country": "DE"})


def test_drop_columns_equals_drop_features() -> None:
    train, test = _frames()
    reference = DropFeatures(features_to_drop=["id"]).fit(train)
    ours = DropColumns(features_to_drop=["id"]).fit(train)
    assert ours.features_to_drop_ == reference.features_to_drop_
    assert ours.feature_names_in_ == reference.feature_names_in_
    for frame in (train, test[["id", "method", "x", "country"]]):
        pd.testing.assert_frame_equal(ours.transform(frame), reference.transform(frame))
    assert ours.transform_record({"x": 1.0, "id": 3}) == {"x": 1.0}
    with pytest.raises(ValueError, match="no columns"):
        DropColumns(features_to_drop=["x", "country", "method", "id"]).fit(train)


@pytest.mark.parametrize("method", ["isotonic", "sigmoid"])
def test_calibrated_records_equal_predict_proba(method: str) -> None:
    rng = np.random.default_rng(5)
    x = rng.normal(size=(600, 4))
    y = (x[:, 0] + rng.normal(size=600) > 0.8).astype(int)
    model = lgb.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1).fit(x[:400], y[:400])
    calibrated = CalibratedClassifierCV(FrozenEstimator(model), method=method).fit(x[400:], y[400:])
    records = CalibratedRecords(calibrated, model.booster_)
    expected = calibrated.predict_proba(x)[:, 1]
    np.testing.assert_array_equal(records.predict_rows(x), expected)
    for i in range(0, 600, 37):
        assert records.predict_record(x[i : i + 1]) == expected[i]


def test_row_vector_reads_names_in_order() -> None:
    v = row_vector({"a": 1, "b": None, "c": 2.5}, ["c", "a", "b"])
    assert v.shape == (1, 3) and v.dtype == np.float64
    np.testing.assert_array_equal(v, [[2.5, 1.0, np.nan]])
    np.testing.assert_array_equal(row_vector({"a": pd.NA, "b": True}, ["a", "b"]), [[np.nan, 1.0]])
