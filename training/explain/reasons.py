"""The reason catalogue and the lookup from a feature name to its declared reason code and sentence.

Every reason is declared next to its feature in ``features`` (history aggregations in
``features.definitions``, row-level order features in ``features.definitions.rows``, the order's
own columns and screening in ``features.assemble``, KYC profile and event risk in
``features.profile``, customer behaviour in ``features.customer``); this module only finds the
declaration of a name (``describe_feature``), renders it (``message_for``) and unites the codes of
every block in ``REASON_CATALOGUE``. A name nothing declares gets the code ``OTHER`` and the
sentence ``"{feature} = {value}"``. Building a reason never raises: a missing value (NaN, None)
says "unknown", a template that cannot render a value falls back to the generic sentence.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from features.assemble import ORDER_COLUMN_CODES, ORDER_COLUMN_REASONS, SCREENING_CODES, screening_reasons
from features.customer import BEHAVIOURS, CUSTOMER_CODES, PARTY, TIME_COLUMN
from features.definitions import ROW_REASONS, history_reason_of
from features.definitions.history_reasons import HISTORY_CODES
from features.definitions.rows import ROW_CODES
from features.profile import EVENT_RISK_REASONS, PROFILE_CODES, party_reasons
from features.reasons import FeatureDoc, FeatureReason, generic_doc, generic_sentence, is_missing

__all__ = [
    "DECREASES",
    "INCREASES",
    "REASON_CATALOGUE",
    "SNAPSHOT_CONTEXT",
    "describe_feature",
    "json_value",
    "message_for",
]

INCREASES, DECREASES = "increases risk", "decreases risk"
# Raw inputs of a customer-snapshot decision (onboarding, KYC review) carry the snapshot time under
# this key: behaviour features shared by name with the order model then speak of the customer
# "before this decision" instead of "before this order".
SNAPSHOT_CONTEXT = TIME_COLUMN
_SNAPSHOT_EVENT = "this decision"
_PARTIES = ("buyer", "seller")


def _catalogue(*blocks: Mapping[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for block in blocks:
        for code, meaning in block.items():
            if out.setdefault(code, meaning) != meaning:
                raise ValueError(f"reason code {code} is declared twice with different meanings")
    return out


# Code -> meaning, for every code a model reason can carry.
REASON_CATALOGUE: dict[str, str] = _catalogue(
    HISTORY_CODES,
    PROFILE_CODES,
    SCREENING_CODES,
    CUSTOMER_CODES,
    ROW_CODES,
    ORDER_COLUMN_CODES,
    {"OTHER": "a feature without a plain-language template: the sentence names it"},
)
# Features of the order itself: row-level features, event risk, the order's own columns.
_ORDER_REASONS: dict[str, FeatureReason] = {**ROW_REASONS, **EVENT_RISK_REASONS, **ORDER_COLUMN_REASONS}


def _party_doc(name: str, party: str, event: str = "the order") -> FeatureDoc | None:
    """A screening or profile feature of ``party`` (``{party}_{suffix}``), or None."""
    suffix = name[len(party) + 1 :]
    screening = screening_reasons(party)
    if suffix in screening:
        return FeatureDoc.of(name, screening[suffix], "screening")
    profile = party_reasons(party, event)
    if suffix in profile:
        return FeatureDoc.of(name, profile[suffix], "profile")
    return None


def _snapshot_doc(name: str) -> FeatureDoc | None:
    """A customer-snapshot feature (the risk-tier model), or None."""
    if name.startswith(PARTY + "_"):
        doc = _party_doc(name, PARTY, _SNAPSHOT_EVENT)
        if doc is not None:
            return doc
    if name not in BEHAVIOURS:
        return None
    customer = BEHAVIOURS[name].reason
    if name.startswith(PARTY + "_"):
        return FeatureDoc.of(name, customer, "customer")
    # buyer_*/seller_* names may also be order-model features (fraud_v1 has buyer_txn_count_30d):
    # the order sentence unless the decision is about a customer snapshot.
    order = history_reason_of(name) or generic_doc(name)

    def either(v: Any, raw: Mapping[str, Any]) -> str:
        return customer.render(v, raw) if SNAPSHOT_CONTEXT in raw else order.render(v, raw)

    return FeatureDoc(name, customer.code, customer.subject, either, "customer")


@functools.lru_cache(maxsize=4096)
def describe_feature(name: str) -> FeatureDoc:
    """The reason code and sentence template of a feature (cached: names are few and fixed).

    Declarations of the order's features come first, then customer-snapshot features, then the
    parties' screening and profile features, then history features; a name none declares gets
    the code ``OTHER`` and the generic sentence.

    Args:
        name: the feature name as the model sees it.

    Returns:
        Its ``FeatureDoc``.
    """
    if name in _ORDER_REASONS:
        return FeatureDoc.of(name, _ORDER_REASONS[name], "order")
    doc = _snapshot_doc(name)
    if doc is not None:
        return doc
    for party in _PARTIES:
        if name.startswith(party + "_"):
            doc = _party_doc(name, party)
            if doc is not None:
                return doc
    reason = history_reason_of(name)
    if reason is not None:
        return FeatureDoc.of(name, reason, "history")
    return generic_doc(name)


def message_for(feature: str, value: Any, raw_inputs: Mapping[str, Any] | None = None) -> str:
    """The plain-language sentence for one feature value (never raises).

    Args:
        feature: the feature name.
        value: the value the model saw (NaN or None: "unknown").
        raw_inputs: request data that makes sentences more specific (country codes, the goods
            category, screening match details), optional.

    Returns:
        The sentence.
    """
    try:
        doc = describe_feature(feature)
    except Exception:  # noqa: BLE001 - a reason must never break a decision
        return generic_sentence(feature, value)
    return doc.message(value, raw_inputs)


def json_value(value: Any) -> Any:
    """A value as plain JSON-ready Python: numpy scalars unwrapped, missing values as None."""
    if is_missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isinf(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)
