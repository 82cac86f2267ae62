"""The decision log's canonical JSON: exact, tagged encoding of values and its decoding.

Apart from the records because other state (profiles, the journal, the service's answers) stores
values in the same exact JSON without being decision records.

JSON encoding (``request``, ``features``, ``models``, ``reasons``)
    Canonical JSON: ``json.dumps(value, sort_keys=True, separators=(",", ":"),
    ensure_ascii=False, allow_nan=False)``, stored as UTF-8 text. Finite floats are written with
    Python's ``repr`` (the shortest text that round-trips), so every float64 comes back bit for
    bit, ``-0.0`` included. Values JSON cannot hold are tagged objects with one key:
    ``{"$float": "nan" | "inf" | "-inf"}``, ``{"$datetime": "<isoformat>"}`` and
    ``{"$date": "<isoformat>"}``; reading decodes them back (``NaN`` stays distinct from
    ``null``, which means "no value"). numpy scalars become Python scalars (exactly; float32 widens
    losslessly to float64); ``pd.NA`` and ``pd.NaT`` become ``null``. A user dict shaped like a
    tag is refused, as are sets, bytes, Decimals and numpy datetimes (ambiguous or lossy).
    ``features`` is a JSON object, so its key order is not kept: replay reorders the columns to
    the model's ``feature_names_in_``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

_TAGS = frozenset({"$float", "$datetime", "$date"})
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_dumps = json.JSONEncoder(ensure_ascii=False, allow_nan=False, sort_keys=True, separators=(",", ":")).encode
_quote = json.encoder.encode_basestring  # the C function json.dumps(str, ensure_ascii=False) uses


def _jsonable(value: Any, where: str) -> Any:
    """``value`` as plain JSON types, with the tags of the module docstring (exact round trip)."""
    kind = type(value)
    if kind is float:  # the common case first: feature values
        return value if value - value == 0.0 else _nonfinite(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str:
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            t = type(v)
            if t is float:
                out[k] = v if v - v == 0.0 else _nonfinite(v)
            elif t is str or t is int or t is bool or v is None:
                out[k] = v
            else:
                out[k] = _jsonable(v, f"{where}.{k}")
        if len(out) == 1 and next(iter(out)) in _TAGS:
            raise ValueError(f"{where}: a dict with the single key {next(iter(out))!r} is reserved for tags")
        return out
    if isinstance(value, str):
        return value if type(value) is str else str.__str__(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else _nonfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"{where}: keys must be strings, got {k!r}")
            out[k] = _jsonable(v, f"{where}.{k}")
        if len(out) == 1 and next(iter(out)) in _TAGS:
            raise ValueError(f"{where}: a dict with the single key {next(iter(out))!r} is reserved for tags")
        return out
    if isinstance(value, list | tuple):
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(value)]
    name = type(value).__name__
    if name in ("NAType", "NaTType"):  # pandas' missing markers (NaT is also a datetime)
        return None
    if isinstance(value, datetime):
        if getattr(value, "nanosecond", 0):
            raise ValueError(f"{where}: {value!r} has nanoseconds, which the log cannot keep exactly")
        return {"$datetime": value.isoformat()}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, BaseModel):
        return _jsonable(value.model_dump(), where)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and callable(getattr(value, "item", None)) and getattr(value, "ndim", 1) == 0:
        if dtype.kind in "mM":
            raise TypeError(f"{where}: numpy datetimes are ambiguous; pass pandas Timestamps")
        return _jsonable(value.item(), where)  # numpy scalar -> the exact Python scalar
    raise TypeError(f"{where}: {name} cannot be stored in the decision log")


def _nonfinite(value: float) -> dict[str, str]:
    return {"$float": "nan" if value != value else "inf" if value > 0 else "-inf"}


def _untag(obj: dict) -> Any:
    if len(obj) == 1:
        ((tag, text),) = obj.items()
        if tag == "$float":
            return _NONFINITE[text]
        if tag == "$datetime":
            return datetime.fromisoformat(text)
        if tag == "$date":
            return date.fromisoformat(text)
    return obj


def encode_json(value: Any) -> str:
    """The log's canonical JSON text of a value (see the module docstring for the encoding).

    Args:
        value: JSON-like data; floats, NaN, infinities, dates and numpy scalars are kept exactly.

    Returns:
        Canonical JSON: sorted keys, no white space, non-ASCII characters as themselves.
    """
    return _dumps(_jsonable(value, "value"))


def decode_json(text: str) -> Any:
    """Decode ``encode_json`` text, turning the tags back into floats, datetimes and dates."""
    # every tag is a key starting with "$": text without one needs no (slow) object hook
    return json.loads(text, object_hook=_untag) if '"$' in text else json.loads(text)
