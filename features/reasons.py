"""The vocabulary every feature's reason is declared in: ``FeatureReason``, ``FeatureDoc`` and value formatting.

A feature's plain-language reason is declared next to the feature itself (history aggregations in
``features.definitions``, row-level order features beside their functions, KYC profile and event
risk features in ``features.profile``, screening outputs in ``features.screening``, customer
behaviour in ``features.customer``), each as a ``FeatureReason``: a stable reason code, the
subject ("the buyer's age", said when the value is missing) and a renderer that turns the value
the model saw, plus optional raw request data, into one sentence. This module holds only that
shared type and the formatting helpers the renderers use (money, days, percent, counts, ...), so
that every declaration block speaks the same way and ``features`` needs nothing from
``training``; ``training.explain`` looks the declarations up by feature name.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

__all__ = [
    "SINCE_LAST_UNIT_SECONDS",
    "FeatureDoc",
    "FeatureReason",
    "Renderer",
    "as_int",
    "binary",
    "count",
    "days",
    "duration",
    "flag",
    "generic_doc",
    "generic_sentence",
    "is_missing",
    "money",
    "number",
    "percent",
    "risk_level",
    "share",
    "times",
]

Renderer = Callable[[Any, Mapping[str, Any]], str]
# Unit of every ``*_since_last_*`` value: hours (``features.definitions``, ``since_last``).
SINCE_LAST_UNIT_SECONDS = 3600.0


class FeatureReason(NamedTuple):
    """The reason declared for one feature (the feature's name is the key it is declared under).

    Attributes:
        code: stable reason code (a key of the reason catalogue); features of one code are
            grouped into one reason.
        subject: what the value is, as a noun phrase; a missing value reads
            ``"{subject} is unknown"``.
        render: ``(value, raw_inputs) -> sentence`` for a present value.
    """

    code: str
    subject: str
    render: Renderer


@dataclass(frozen=True)
class FeatureDoc:
    """A ``FeatureReason`` bound to a feature name: how that feature becomes a reason.

    Attributes:
        feature: the feature name.
        code: its reason code.
        subject: noun phrase for the value (``"{subject} is unknown"`` when missing).
        render: ``(value, raw_inputs) -> sentence`` for a present value.
        kind: ``history``, ``profile``, ``screening``, ``order``, ``customer`` or ``unknown``.
    """

    feature: str
    code: str
    subject: str
    render: Renderer
    kind: str

    @classmethod
    def of(cls, feature: str, reason: FeatureReason, kind: str) -> FeatureDoc:
        """Bind a declared reason to its feature name."""
        return cls(feature, reason.code, reason.subject, reason.render, kind)

    def message(self, value: Any, raw_inputs: Mapping[str, Any] | None = None) -> str:
        """The sentence for ``value``; never raises (falls back to ``"{feature} = {value}"``)."""
        raw = raw_inputs if raw_inputs is not None else {}
        try:
            if is_missing(value):
                return f"{self.subject} is unknown"
            return self.render(value, raw)
        except Exception:  # noqa: BLE001 - a reason must never break a decision
            return generic_sentence(self.feature, value)


def generic_sentence(feature: str, value: Any) -> str:
    """``"{feature} = {value}"``: the sentence of a feature without a declared reason."""
    if is_missing(value):
        return f"{feature} = unknown"
    try:
        if isinstance(value, bool | np.bool_):
            return f"{feature} = {bool(value)}"
        if isinstance(value, int | float | np.number):
            return f"{feature} = {number(value)}"
    except (TypeError, ValueError, OverflowError):
        pass
    return f"{feature} = {value}"


def generic_doc(name: str) -> FeatureDoc:
    """The ``OTHER`` doc of a feature nothing declares."""
    return FeatureDoc(name, "OTHER", name, lambda v, raw: generic_sentence(name, v), "unknown")


# --- Value formatting -------------------------------------------------------------------------


def is_missing(value: Any) -> bool:
    """True for None, pandas' NA/NaT and float NaN."""
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, float | np.floating) and math.isnan(value))
    except TypeError:
        return False


def as_int(value: float) -> int:
    """The value rounded to the nearest integer."""
    return int(round(float(value)))


def count(value: float, singular: str, plural: str) -> str:
    """``"1 order"``, ``"1,204 orders"``."""
    n = as_int(value)
    return f"{n:,} {singular if n == 1 else plural}"


def number(value: float) -> str:
    """An integer with thousands separators, else two decimals (three significant digits below 1)."""
    v = float(value)
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3g}"


def money(value: float) -> str:
    """US dollars: ``$1,234`` from 100 on, ``$12.50`` below."""
    v = float(value)
    sign = "-" if v < 0 else ""
    return f"{sign}${abs(v):,.0f}" if abs(v) >= 100 else f"{sign}${abs(v):,.2f}"


def times(value: float) -> str:
    """A ratio: ``12×``, ``2.5×``, ``0.33×``."""
    v = float(value)
    if v >= 10:
        return f"{v:,.0f}×"
    text = f"{v:.1f}" if v >= 0.95 else f"{v:.2f}"
    return text.rstrip("0").rstrip(".") + "×"


def percent(rate: float) -> str:
    """A share as ``4.0%``."""
    return f"{100.0 * float(rate):.1f}%"


def duration(seconds: float) -> str:
    """``3 minutes``, ``36 hours``, ``40 days`` (absolute value)."""
    s = abs(float(seconds))
    for limit, unit, size in ((90, "second", 1), (90 * 60, "minute", 60), (48 * 3600, "hour", 3600)):
        if s < limit:
            n = as_int(s / size)
            return f"{n} {unit}{'' if n == 1 else 's'}"
    n = as_int(s / 86400)
    return f"{n:,} day{'' if n == 1 else 's'}"


def days(value: float) -> str:
    """A number of days as a duration."""
    return duration(float(value) * 86400)


def flag(value: Any) -> bool:
    """A 0/1 feature as a boolean (>= 0.5 is yes)."""
    return bool(float(value) >= 0.5)


def binary(yes: str, no: str) -> Renderer:
    """Renderer of a 0/1 feature: ``yes`` or ``no``."""
    return lambda v, raw: yes if flag(v) else no


def share(what: str) -> Renderer:
    """Renderer of a share: ``"4.0% of {what}"``."""
    return lambda v, raw: f"{percent(v)} of {what}"


def risk_level(score: float, high: float, medium: float) -> str:
    """``high``, ``medium`` or ``low`` by two thresholds."""
    return "high" if score >= high else ("medium" if score >= medium else "low")
