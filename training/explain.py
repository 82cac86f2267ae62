"""Per-decision explanations: exact TreeSHAP contributions and plain-language reason codes.

Contributions (``contributions``, ``Explainer``) come from LightGBM's own exact TreeSHAP
(``predict(..., pred_contrib=True)``) and are in the model's **raw score space**: log-odds for
the binary fraud model, not probabilities. For every row, the feature contributions plus the
bias (the expected raw score over the training data) add up to the raw score exactly (up to
floating-point rounding), and the probability is ``sigmoid(raw score)``. A contribution of
+0.7 means the feature's value moved the log-odds up by 0.7 from the average; it says nothing
about causes, only about this model.

Reasons (``reasons_for_row``, ``Explainer.explain``) turn contributions into plain-language
reason codes. Every feature name is mapped to a reason code and a sentence template built from
the value the model saw (``describe_feature``):

- history features are parsed from the name ``features.definitions`` generates,
  ``{entity}_{measure}_{op}_{window}`` plus ``_delay{d}``, ``_with_current`` and
  ``_closed_{ends}`` suffixes (``parse_feature_name``), and one template per operation renders
  them (``buyer_amount_ratio_30d`` = 12.0 -> "order amount is 12× this buyer's 30-day average";
  ``pair_txn_count_all`` = 0 -> "first order between this buyer and this seller"; a window with
  a label delay is named as such: "over the 30 days ending 7 days before the order");
- KYC profile features (``buyer_doc_expired``, ``seller_business_age_days``, ...), screening
  features (``buyer_screen_score``, ...) and features of the order itself (``amount_usd``,
  ``unit_price_to_reference``, ``hour_of_day``, ...) have explicit templates;
- anything else gets the code ``OTHER`` and the sentence ``"{feature} = {value}"``. Building a
  reason never raises: a missing value (NaN, None) says "unknown", a template that cannot render
  a value falls back to the generic sentence.

Features of one code are grouped, so that the top-k list is not five windows of one velocity:
a group's contribution is the sum of its features' contributions, its direction the sign of that
sum, and its sentence is the one of the member that pushes most in that direction. Codes are
stable (they depend on the feature name, never on its value) and listed in ``REASON_CATALOGUE``.

Every reason is a dict of one shape, shared with hard-rule and score reasons (``rule_reasons``):

- ``code``: reason code (``REASON_CATALOGUE`` for model reasons, the policy's codes otherwise);
- ``source``: ``model`` (a feature contribution), ``rule`` (a hard rule that fired) or
  ``score`` (the score-tier reason of the policy);
- ``feature``: the feature (model reasons: the group member shown) or flag (rules), or None;
- ``value``: its value as JSON-ready Python (None when missing);
- ``contribution``: the group's summed contribution in log-odds (None for rule and score reasons);
- ``direction``: ``increases risk`` or ``decreases risk`` (None for score reasons);
- ``message``: one plain-language sentence or phrase;
- ``features``: the features grouped into this reason (model reasons), else ``[]``;
- ``decisive``: for rule and score reasons, whether it produced the final tier and action (the
  policy's ``Reason.decisive``); None for model reasons, which explain the score reason.

Speed (see ``training.bench_explain``): exact TreeSHAP costs about trees × leaves × depth² per
row, so the model size decides the latency. For one request, ``Explainer`` calls
``pred_contrib`` once on a float64 numpy row with one thread and derives the probability from
the contributions: no pandas frame, no second ``predict`` call.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from training.policy import _RULES  # the rule table: code -> (flag, fires on, tier, action)

__all__ = [
    "BIAS_COLUMN",
    "DIRECTIONS",
    "ENTITIES",
    "OPS",
    "REASON_CATALOGUE",
    "Explainer",
    "FeatureSpec",
    "ParsedFeature",
    "booster_of",
    "contributions",
    "describe_feature",
    "message_for",
    "parse_feature_name",
    "reasons_for_row",
    "rule_reasons",
    "screening_sentence",
]

BIAS_COLUMN = "bias"
DIRECTIONS = ("increase", "both")
INCREASES, DECREASES = "increases risk", "decreases risk"

# Entities and operations of ``features.definitions`` (names: ``Aggregation.name``). Longest
# first: "buyer_device_txn_count_all" is the pair (buyer, device), not the buyer.
ENTITIES = (
    "seller_buyercountry",
    "buyer_ipcountry",
    "buyer_device",
    "buyer",
    "seller",
    "device",
    "ip",
    "pair",
)
OPS = (
    "fraud_rate",
    "fraud_count",
    "since_last",
    "nunique",
    "count",
    "sum",
    "mean",
    "max",
    "min",
    "std",
    "ratio",
)
# Operations that aggregate some measure: a name without one is not read this way.
_OPS_NEEDING_MEASURE = frozenset({"nunique", "sum", "mean", "max", "min", "std", "ratio"})
_LABEL_OPS = ("fraud_rate", "fraud_count")
_WINDOW_RE = re.compile(r"(?:\d+[smhdw]|all)")
# Name suffixes, in the order features.definitions appends them: _delay{d}, _with_current,
# _closed_{ends}.
_CLOSED_RE = re.compile(r"_closed_(neither|left|right|both)$")
_CURRENT_SUFFIX = "_with_current"
_DELAY_RE = re.compile(r"_delay(\d+[smhdw])$")
# Unit of ``*_since_last_*`` values: hours (features.definitions, ``since_last``).
SINCE_LAST_UNIT_SECONDS = 3600.0

# Account events (the ``account_events`` contract): singular and plural nouns.
_ACCOUNT_EVENTS = {
    "login": ("login", "logins"),
    "login_failed": ("failed login", "failed logins"),
    "password_reset": ("password reset", "password resets"),
    "device_change": ("device change", "device changes"),
    "twofa_enabled": ("2FA activation", "2FA activations"),
    "twofa_disabled": ("2FA deactivation", "2FA deactivations"),
    "email_change": ("e-mail change", "e-mail changes"),
    "phone_change": ("phone number change", "phone number changes"),
    "address_change": ("address change", "address changes"),
    "account_event": ("account event", "account events"),
    "event": ("account event", "account events"),
}
_TXN_MEASURES = frozenset({"", "txn", "order", "orders", "transaction"})
_NOUNS = {  # measure of a distinct count -> plural noun
    "buyer": "accounts",
    "seller": "sellers",
    "device": "devices",
    "ip": "IP addresses",
    "ipcountry": "IP countries",
    "buyercountry": "buyer countries",
    "payment": "payment methods",
    "ip_country": "IP countries",
    "card": "cards",
    "email": "e-mail addresses",
    "phone": "phone numbers",
    "address": "addresses",
    "category": "goods categories",
    "goods_category": "goods categories",
    "payment_method": "payment methods",
    "country": "countries",
}
_ENTITY_PHRASE = {
    "buyer": "this buyer",
    "seller": "this seller",
    "device": "this device",
    "ip": "this IP address",
    "pair": "this buyer and this seller",
    "buyer_device": "this buyer on this device",
    "buyer_ipcountry": "this buyer from this IP country",
    "seller_buyercountry": "this seller with buyers from this country",
}
_FRAUD_RATE_OWNER = {
    "buyer": "buyer's fraud rate",
    "seller": "seller's fraud rate",
    "device": "this device's fraud rate",
    "ip": "this IP address's fraud rate",
    "pair": "the fraud rate of orders between this buyer and this seller",
    "buyer_device": "the fraud rate of this buyer's orders from this device",
    "buyer_ipcountry": "the fraud rate of this buyer's orders from this IP country",
    "seller_buyercountry": "the fraud rate of this seller's orders from buyers in this country",
}
# (entity, measure) of a distinct count -> code and sentence "{n} {noun}..." builders.
_NUNIQUE = {
    ("seller", "buyer"): ("FAN_IN", "this seller received orders from {n} different buyers{w}"),
    ("device", "buyer"): ("SHARED_DEVICE", "this device has been used by {n} different accounts{w}"),
    ("ip", "buyer"): ("SHARED_IP", "this IP address has been used by {n} different accounts{w}"),
    ("buyer", "seller"): ("FAN_OUT", "this buyer ordered from {n} different sellers{w}"),
    ("buyer", "device"): ("MANY_DEVICES", "this buyer used {n} different devices{w}"),
    ("buyer", "ip"): ("MANY_IPS", "this buyer used {n} different IP addresses{w}"),
    ("buyer", "ipcountry"): (
        "MANY_IP_COUNTRIES",
        "this buyer ordered from IP addresses in {n} different countries{w}",
    ),
    ("buyer", "ip_country"): (
        "MANY_IP_COUNTRIES",
        "this buyer ordered from IP addresses in {n} different countries{w}",
    ),
    ("seller", "buyercountry"): (
        "SELLER_BUYER_COUNTRIES",
        "this seller received orders from buyers in {n} different countries{w}",
    ),
}
_NEW_LINK_CODES = {
    "pair": "NEW_COUNTERPARTY",
    "buyer_device": "NEW_DEVICE",
    "buyer_ipcountry": "NEW_IP_COUNTRY",
    "seller_buyercountry": "NEW_BUYER_COUNTRY_FOR_SELLER",
}
_AMOUNT_MEASURES = frozenset({"amount", "amount_local"})
_KNOWN_MEASURES = frozenset(_ACCOUNT_EVENTS) | _TXN_MEASURES | _AMOUNT_MEASURES | frozenset(_NOUNS)


def _build_catalogue() -> dict[str, str]:
    cat: dict[str, str] = {}
    for entity in ENTITIES:
        e, phrase = entity.upper(), _ENTITY_PHRASE[entity]
        cat[f"{e}_FRAUD_RATE"] = (
            f"share and number of orders of {phrase} labelled fraud, from labels known at the time"
        )
        if entity in _NEW_LINK_CODES:
            continue
        cat[f"AMOUNT_VS_{e}_AVG"] = f"order amount compared with the average order of {phrase}"
        cat[f"{e}_VELOCITY"] = f"number and recency of earlier orders of {phrase}"
        cat[f"{e}_AMOUNT_VELOCITY"] = f"amounts ordered by or from {phrase} in a recent window"
        cat[f"{e}_AMOUNT_HISTORY"] = f"usual order amounts of {phrase} (mean, maximum, spread)"
        cat[f"{e}_ACTIVITY"] = f"other activity history of {phrase}"
    cat |= {
        "NEW_COUNTERPARTY": "history between this buyer and this seller (first order, earlier orders)",
        "NEW_DEVICE": "history of this buyer on this device (a device new to the buyer)",
        "NEW_IP_COUNTRY": "history of this buyer from this IP country (a country new to the buyer)",
        "NEW_BUYER_COUNTRY_FOR_SELLER": "history of this seller with buyers from this country",
        "SELLER_BUYER_COUNTRIES": "number of different buyer countries a seller receives orders from",
        "FAN_IN": "number of different buyers ordering from this seller",
        "FAN_OUT": "number of different sellers this buyer orders from",
        "SHARED_DEVICE": "number of accounts using this device",
        "SHARED_IP": "number of accounts using this IP address",
        "MANY_DEVICES": "number of devices this buyer uses",
        "MANY_IPS": "number of IP addresses this buyer uses",
        "MANY_IP_COUNTRIES": "number of IP countries this buyer orders from",
        "ACCOUNT_EVENTS_BEFORE_ORDER": (
            "logins, failed logins, password resets, device, 2FA and contact changes before the order"
        ),
        # KYC profile
        "CUSTOMER_AGE": "age of the customer",
        "NEW_ACCOUNT": "age of the customer's account",
        "DOC_MISSING": "no identity document on file",
        "DOC_INVALID": "document number failing its check digit",
        "DOC_TYPO_LIKELY": "document number with a likely typo (two adjacent characters swapped)",
        "DOC_EXPIRED": "identity document expired, or close to expiry, at the time of the order",
        "DOC_COUNTRY_MISMATCH": "document issued by a country other than the nationality",
        "STALE_KYC": "time since the last KYC review",
        "NAME_EMAIL_MISMATCH": "e-mail address unrelated to the customer's name",
        "FREE_EMAIL": "free e-mail provider",
        "NEW_EMAIL": "age of the e-mail address",
        "HIGH_RISK_COUNTRY": "country risk of nationality, residence or phone number",
        "COUNTRY_MISMATCH": "phone or nationality from a country other than the residence",
        "NEW_BUSINESS": "age of the registered business",
        "HIGH_RISK_INDUSTRY": "risk class of the declared industry",
        "NO_2FA": "no two-factor authentication at onboarding",
        "CUSTOMER_TYPE": "individual or business customer",
        "CUSTOMER_COUNTRY": "the customer's countries (nationality, residence, document)",
        "ORDER_COUNTRY": "the countries of the order (shipping to and from, IP address)",
        "INDUSTRY": "declared industry",
        "SCREENING_MATCH": "similarity of the name to a sanctions or PEP list entry",
        # customer snapshots (the risk-tier model): behaviour before the onboarding or KYC review
        "CUSTOMER_COUNTRIES": "number of countries the customer's purchases ship from",
        "CUSTOMER_VOLUME": "amount the customer bought and sold in the last 30 days",
        "VOLUME_VS_DECLARED": "activity compared with the monthly volume declared at the last KYC review",
        "CUSTOMER_VELOCITY": "time since the customer's latest order",
        "ACCOUNT_EVENTS_RECENT": (
            "failed logins, password resets, device, 2FA and contact changes in the last 30 days"
        ),
        "LINKED_ACCOUNTS": "other customers sharing a device, phone number, address or e-mail",
        "LINKED_BAD_ACCOUNTS": "linked customers known to be bad (money laundering, synthetic identity, sanctions)",
        "REVIEWED_LEGITIMATE": "an earlier review found the customer legitimate",
        # the order
        "ORDER_AMOUNT": "order amount",
        "CROSS_BORDER": "buyer and seller in different countries",
        "IP_COUNTRY_MISMATCH": "IP address in a country other than the buyer's (shipping) country",
        "PRICE_BELOW_REFERENCE": "unit price compared with the category reference price",
        "RISKY_GOODS": "risk class of the goods category (restricted goods such as precursor chemicals highest)",
        "ORDER_TIME": "hour of day and day of week of the order",
        "QUANTITY": "number of units ordered",
        "GOODS_CATEGORY": "category of the goods",
        "PAYMENT_METHOD": "payment method",
        "CURRENCY": "currency of the order",
        "OTHER": "a feature without a plain-language template: the sentence names it",
    }
    return cat


REASON_CATALOGUE: dict[str, str] = _build_catalogue()


# --- Value formatting -------------------------------------------------------------------------


def _missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    try:
        return bool(isinstance(value, float | np.floating) and math.isnan(value))
    except TypeError:
        return False


def _json_value(value: Any) -> Any:
    """A value as plain JSON-ready Python: numpy scalars unwrapped, missing values as None."""
    if _missing(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isinf(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _int(value: float) -> int:
    return int(round(float(value)))


def _count(value: float, singular: str, plural: str) -> str:
    n = _int(value)
    return f"{n:,} {singular if n == 1 else plural}"


def _number(value: float) -> str:
    v = float(value)
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:,.2f}" if abs(v) >= 1 else f"{v:.3g}"


def _money(value: float) -> str:
    v = float(value)
    sign = "-" if v < 0 else ""
    return f"{sign}${abs(v):,.0f}" if abs(v) >= 100 else f"{sign}${abs(v):,.2f}"


def _times(value: float) -> str:
    v = float(value)
    if v >= 10:
        return f"{v:,.0f}×"
    text = f"{v:.1f}" if v >= 0.95 else f"{v:.2f}"
    return text.rstrip("0").rstrip(".") + "×"


def _percent(rate: float) -> str:
    return f"{100.0 * float(rate):.1f}%"


def _duration(seconds: float) -> str:
    s = abs(float(seconds))
    for limit, unit, size in ((90, "second", 1), (90 * 60, "minute", 60), (48 * 3600, "hour", 3600)):
        if s < limit:
            n = _int(s / size)
            return f"{n} {unit}{'' if n == 1 else 's'}"
    days = s / 86400
    n = _int(days)
    return f"{n:,} day{'' if n == 1 else 's'}"


def _days(days: float) -> str:
    return _duration(float(days) * 86400)


def _flag(value: Any) -> bool:
    return bool(float(value) >= 0.5)


# --- Windows ----------------------------------------------------------------------------------

_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}


def _span(window: str) -> tuple[str, str]:
    """``24h`` -> ("24 hours", "24-hour"); ``1h`` -> ("hour", "1-hour")."""
    n, unit = int(window[:-1]), _UNITS[window[-1]]
    return (unit if n == 1 else f"{n} {unit}s"), f"{n}-{unit}"


def _delay_text(p: ParsedFeature) -> str:
    return _span(p.delay)[0] if p.delay and int(p.delay[:-1]) != 1 else f"1 {_UNITS[p.delay[-1]]}"


def _before(p: ParsedFeature, what: str = "the order") -> str:
    """ "in the 24 hours before the order" (the window is open at ``t``: the order itself is out)."""
    if p.delay:
        if p.window in (None, "all"):
            return f"up to {_delay_text(p)} before {what}"
        return f"in the {_span(p.window)[0]} ending {_delay_text(p)} before {what}"
    if p.window in (None, "all"):
        return f"before {what}" if not p.include_current else f"up to and including {what}"
    if p.include_current:
        return f"in the {_span(p.window)[0]} up to and including {what}"
    return f"in the {_span(p.window)[0]} before {what}"


def _in_window(p: ParsedFeature) -> str:
    """ " in the past 7 days"; "" for the whole history."""
    if p.delay:
        return " " + _before(p)
    if p.window in (None, "all"):
        return ""
    return f" in the past {_span(p.window)[0]}"


def _over(p: ParsedFeature) -> str:
    if p.delay:
        if p.window in (None, "all"):
            return f"over all history up to {_delay_text(p)} before the order"
        return f"over the {_span(p.window)[0]} ending {_delay_text(p)} before the order"
    if p.window in (None, "all"):
        return "over all history"
    return f"over the past {_span(p.window)[0]}"


def _average(p: ParsedFeature) -> str:
    if p.window in (None, "all"):
        return "average over all earlier orders" + (f" up to {_delay_text(p)} before" if p.delay else "")
    if p.delay:
        return f"average in the {_span(p.window)[0]} ending {_delay_text(p)} before the order"
    return f"{_span(p.window)[1]} average"


# --- Feature names ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedFeature:
    """A history feature name, split: ``{entity}_{measure}_{op}_{window}`` plus suffixes.

    Suffixes (``features.definitions.Aggregation.name``): ``_delay{d}`` (the window ends ``d``
    before the order), ``_with_current`` (the window includes the order itself),
    ``_closed_{ends}`` (inclusive window ends). ``measure`` may be empty
    (``seller_fraud_rate_30d``); ``window`` is None only for ``since_last`` without a window.
    """

    entity: str
    measure: str
    op: str
    window: str | None
    delay: str | None = None
    include_current: bool = False
    closed: str | None = None


@functools.lru_cache(maxsize=4096)
def parse_feature_name(name: str) -> ParsedFeature | None:
    """Split a generated history feature name into its parts, or None if it is not one.

    ``buyer_device_nunique_7d`` is read as entity ``buyer``, measure ``device`` (a distinct
    count needs a measure), while ``buyer_device_txn_count_all`` is entity ``buyer_device``.

    Args:
        name: a feature name.

    Returns:
        The parts, or None.
    """
    rest, delay, closed = name, None, None
    m = _CLOSED_RE.search(rest)
    if m:
        closed, rest = m.group(1), rest[: m.start()]
    include_current = rest.endswith(_CURRENT_SUFFIX)
    if include_current:
        rest = rest[: -len(_CURRENT_SUFFIX)]
    m = _DELAY_RE.search(rest)
    if m:
        delay, rest = m.group(1), rest[: m.start()]
    window = None
    head, _, last = rest.rpartition("_")
    if head and _WINDOW_RE.fullmatch(last):
        window, rest = last, head
    op = next((o for o in OPS if rest == o or rest.endswith("_" + o)), None)
    if op is None:
        return None
    if window is None and op != "since_last":
        return None
    body = rest[: -len(op)].rstrip("_")
    candidates = []
    for entity in ENTITIES:
        if body != entity and not body.startswith(entity + "_"):
            continue
        measure = body[len(entity) + 1 :]
        if op in _OPS_NEEDING_MEASURE and not measure:
            continue
        candidates.append(ParsedFeature(entity, measure, op, window, delay, include_current, closed))
    # "buyer_device_change_count_1h" is the buyer's device_change events, not a "change" measure
    # of the (buyer, device) pair: prefer a reading whose measure is known.
    known = [c for c in candidates if c.measure in _KNOWN_MEASURES]
    return (known or candidates or [None])[0]


Renderer = Callable[[Any, Mapping[str, Any]], str]


@dataclass(frozen=True)
class FeatureSpec:
    """How one feature becomes a reason.

    Attributes:
        feature: the feature name.
        code: its reason code (a key of ``REASON_CATALOGUE``).
        subject: what the value is, as a noun phrase ("the buyer's age"); the sentence for a
            missing value is ``"{subject} is unknown"``.
        render: ``(value, raw_inputs) -> sentence`` for a present value.
        kind: ``history``, ``profile``, ``screening``, ``order`` or ``unknown``.
    """

    feature: str
    code: str
    subject: str
    render: Renderer
    kind: str

    def message(self, value: Any, raw_inputs: Mapping[str, Any] | None = None) -> str:
        """The sentence for ``value``; never raises (falls back to ``"{feature} = {value}"``)."""
        raw = raw_inputs if raw_inputs is not None else {}
        try:
            if _missing(value):
                return f"{self.subject} is unknown"
            return self.render(value, raw)
        except Exception:  # noqa: BLE001 - a reason must never break a decision
            return _generic(self.feature, value)


def _generic(feature: str, value: Any) -> str:
    if _missing(value):
        return f"{feature} = unknown"
    try:
        if isinstance(value, bool | np.bool_):
            return f"{feature} = {bool(value)}"
        if isinstance(value, int | float | np.number):
            return f"{feature} = {_number(value)}"
    except (TypeError, ValueError, OverflowError):
        pass
    return f"{feature} = {value}"


def _generic_spec(name: str) -> FeatureSpec:
    return FeatureSpec(name, "OTHER", name, lambda v, raw: _generic(name, v), "unknown")


# --- History templates ------------------------------------------------------------------------


def _history_code(p: ParsedFeature) -> str:
    e = p.entity.upper()
    if p.op in _LABEL_OPS:
        return f"{e}_FRAUD_RATE"
    if p.measure in _ACCOUNT_EVENTS:
        return "ACCOUNT_EVENTS_BEFORE_ORDER"
    if p.entity in _NEW_LINK_CODES:
        return _NEW_LINK_CODES[p.entity]
    if p.op == "nunique" and (p.entity, p.measure) in _NUNIQUE:
        return _NUNIQUE[(p.entity, p.measure)][0]
    if p.measure in _AMOUNT_MEASURES:
        if p.op == "ratio":
            return f"AMOUNT_VS_{e}_AVG"
        if p.op == "sum":
            return f"{e}_AMOUNT_VELOCITY"
        if p.op in _AMOUNT_STATS:
            return f"{e}_AMOUNT_HISTORY"
    if (p.op == "count" and p.measure in _COUNTED_AS_ORDERS) or (
        p.op == "since_last" and p.measure in _TXN_MEASURES
    ):
        return f"{e}_VELOCITY"
    return f"{e}_ACTIVITY"


_OP_LABELS = {
    "count": "number",
    "sum": "total",
    "mean": "average",
    "max": "maximum",
    "min": "minimum",
    "std": "standard deviation",
    "ratio": "ratio to the usual value",
    "nunique": "number of distinct values",
    "since_last": "time since the last one",
    "fraud_rate": "fraud rate",
    "fraud_count": "number of orders labelled fraud",
}
_COUNTED_AS_ORDERS = _TXN_MEASURES | _AMOUNT_MEASURES
# op -> (subject noun, sentence lead)
_AMOUNT_STATS = {
    "mean": ("average order amount", "average order"),
    "max": ("largest order amount", "largest order"),
    "min": ("smallest order amount", "smallest order"),
    "std": ("spread of order amounts", "spread (standard deviation) of order amounts"),
}
# "3 orders {...}": whose orders.
_ORDERS_OF = {
    "buyer": "by this buyer",
    "seller": "received by this seller",
    "device": "from this device",
    "ip": "from this IP address",
    "pair": "between this buyer and this seller",
    "buyer_device": "by this buyer from this device",
    "buyer_ipcountry": "by this buyer from this IP country",
    "seller_buyercountry": "received by this seller from buyers in this country",
}
_FIRST_ORDER = {
    "pair": "first order between this buyer and this seller",
    "buyer_device": "first order by this buyer from this device (a device new to this buyer)",
    "buyer_ipcountry": "first order by this buyer from this IP country",
    "seller_buyercountry": "first order to this seller from a buyer in this country",
}
_PREVIOUS_ORDER = {
    "buyer": "this buyer's previous order",
    "seller": "this seller's previous order",
    "device": "the previous order from this device",
    "ip": "the previous order from this IP address",
    "pair": "this buyer's previous order from this seller",
    "buyer_device": "this buyer's previous order from this device",
    "buyer_ipcountry": "this buyer's previous order from this IP country",
    "seller_buyercountry": "this seller's previous order from a buyer in this country",
}


def _amount_format(p: ParsedFeature) -> Callable[[float], str]:
    if p.measure == "amount":
        return _money
    return lambda v: f"{_number(v)} (in the order's currency)"


def _over_orders(p: ParsedFeature) -> str:
    text = "over all earlier orders" if p.window in (None, "all") and not p.delay else _over(p)
    return text + (" (this one included)" if p.include_current else "")


def _history_subject(p: ParsedFeature) -> str:
    phrase = _ENTITY_PHRASE[p.entity]
    if p.op == "fraud_rate":
        owner = _FRAUD_RATE_OWNER[p.entity]
        return f"{'the ' if p.entity in ('buyer', 'seller') else ''}{owner} {_over(p)}"
    if p.op == "fraud_count":
        return f"the number of orders {_ORDERS_OF[p.entity]} labelled fraud {_over(p)}"
    if p.measure in _ACCOUNT_EVENTS:
        singular, plural = _ACCOUNT_EVENTS[p.measure]
        if p.op == "since_last":
            return f"the time since the last {singular} of {phrase}"
        return f"the number of {plural} of {phrase} {_before(p)}"
    if p.op == "ratio" and p.measure in _AMOUNT_MEASURES:
        return f"the order amount compared with {phrase}'s {_average(p)}"
    if p.op == "nunique":
        noun = _NOUNS.get(p.measure, f"{p.measure.replace('_', ' ')} values")
        return f"the number of different {noun} for {phrase}{_in_window(p)}"
    if p.op == "since_last" and p.measure in _TXN_MEASURES:
        return f"the time since {_PREVIOUS_ORDER[p.entity]}"
    if p.op == "count" and p.measure in _COUNTED_AS_ORDERS:
        return f"the number of orders {_ORDERS_OF[p.entity]} {_before(p, 'this one')}"
    if p.measure in _AMOUNT_MEASURES and p.op == "sum":
        return f"the total amount of orders {_ORDERS_OF[p.entity]} {_before(p, 'this one')}"
    if p.measure in _AMOUNT_MEASURES and p.op in _AMOUNT_STATS:
        return f"the {_AMOUNT_STATS[p.op][0]} of {phrase} {_over_orders(p)}"
    measure = p.measure.replace("_", " ") or "orders"
    return f"the {_OP_LABELS[p.op]} of {measure} for {phrase}{_in_window(p)}"


def _orders_count(p: ParsedFeature, n: float) -> str:
    before = _before(p, "this one")
    if p.entity in _FIRST_ORDER:
        if _int(n) == 0:
            if p.window in (None, "all") and not p.delay:
                return _FIRST_ORDER[p.entity]
            return f"no order {_ORDERS_OF[p.entity]} {before}"
        return f"{_count(n, 'earlier order', 'earlier orders')} {_ORDERS_OF[p.entity]} {before}"
    return f"{_count(n, 'order', 'orders')} {_ORDERS_OF[p.entity]} {before}"


def _history_renderer(p: ParsedFeature) -> Renderer:
    phrase = _ENTITY_PHRASE[p.entity]
    window = _in_window(p)

    if p.op == "fraud_rate":
        owner = _FRAUD_RATE_OWNER[p.entity]
        return lambda v, raw: f"{owner} {_over(p)} (labels known at the time) is {_percent(v)}"
    if p.op == "fraud_count":
        return lambda v, raw: (
            f"{_count(v, 'order', 'orders')} {_ORDERS_OF[p.entity]} labelled fraud {_over(p)} "
            "(labels known at the time)"
        )

    if p.measure in _ACCOUNT_EVENTS:
        singular, plural = _ACCOUNT_EVENTS[p.measure]
        owner = {"buyer": " on the buyer's account", "seller": " on the seller's account"}.get(p.entity, "")
        if p.op == "count":
            return lambda v, raw: f"{_count(v, singular, plural)}{owner} {_before(p)}"
        if p.op == "since_last":
            return lambda v, raw: (
                f"the last {singular}{owner} was {_duration(float(v) * SINCE_LAST_UNIT_SECONDS)} before the order"
            )

    if p.op == "ratio" and p.measure in _AMOUNT_MEASURES:
        return lambda v, raw: f"order amount is {_times(v)} {phrase}'s {_average(p)}"

    if p.op == "nunique":
        if (p.entity, p.measure) in _NUNIQUE:
            template = _NUNIQUE[(p.entity, p.measure)][1]
            return lambda v, raw: template.format(n=f"{_int(v):,}", w=window)
        noun = _NOUNS.get(p.measure, f"{p.measure.replace('_', ' ')} values")
        return lambda v, raw: f"{_int(v):,} different {noun} for {phrase}{window}"

    if p.op == "count" and p.measure in _COUNTED_AS_ORDERS:
        return lambda v, raw: _orders_count(p, v)
    if p.op == "since_last" and p.measure in _TXN_MEASURES:
        lead = _PREVIOUS_ORDER[p.entity]
        return lambda v, raw: f"{lead} was {_duration(float(v) * SINCE_LAST_UNIT_SECONDS)} before this one"

    if p.measure in _AMOUNT_MEASURES:
        fmt = _amount_format(p)
        if p.op == "sum":
            return lambda v, raw: f"{fmt(v)} in orders {_ORDERS_OF[p.entity]} {_before(p, 'this one')}"
        if p.op in _AMOUNT_STATS:
            lead = _AMOUNT_STATS[p.op][1]
            return lambda v, raw: f"{lead} of {phrase} {_over_orders(p)} is {fmt(v)}"

    label = _OP_LABELS[p.op]
    measure = p.measure.replace("_", " ") or "orders"
    return lambda v, raw: f"{label} of {measure} for {phrase}{window} is {_number(v)}"


def _history_spec(name: str, p: ParsedFeature) -> FeatureSpec:
    return FeatureSpec(name, _history_code(p), _history_subject(p), _history_renderer(p), "history")


# --- Profile templates (features.profile.PartyProfileFeatures) -------------------------------


def _risk_level(score: float, high: float, medium: float) -> str:
    return "high" if score >= high else ("medium" if score >= medium else "low")


def _country_risk(party: str, what: str, raw_key: str) -> Renderer:
    def render(v: Any, raw: Mapping[str, Any]) -> str:
        country = raw.get(f"{party}_{raw_key}")
        where = f" ({country})" if isinstance(country, str) and country else ""
        level = _risk_level(float(v), 0.8, 0.5)
        return f"the {party}'s {what}{where} is a {level}-risk country (risk score {float(v):.2f})"

    return render


def _event_country_risk(what: str, country: Any, v: Any) -> str:
    where = f" ({country})" if isinstance(country, str) and country else ""
    level = _risk_level(float(v), 0.8, 0.5)
    return f"the {what}{where} is a {level}-risk country (risk score {float(v):.2f})"


def _binary(yes: str, no: str) -> Renderer:
    return lambda v, raw: yes if _flag(v) else no


def _profile_specs(party: str, event: str = "the order") -> dict[str, tuple[str, str, Renderer]]:
    """Suffix (after ``{party}_``) -> (code, subject, renderer); times are said relative to ``event``."""
    the = f"the {party}'s"

    def doc_expiry(v: Any, raw: Mapping[str, Any]) -> str:
        days = float(v)
        if days < 0:
            return f"{the} identity document expired {_days(-days)} before {event}"
        return f"{the} identity document expires {_days(days)} after {event}"

    def name_email(v: Any, raw: Mapping[str, Any]) -> str:
        s = float(v)
        if s < 0.5:
            return f"{the} e-mail address does not resemble their name (similarity {100 * s:.0f}%)"
        return f"{the} e-mail address resembles their name (similarity {100 * s:.0f}%)"

    def industry_risk(v: Any, raw: Mapping[str, Any]) -> str:
        industry = raw.get(f"{party}_industry")
        where = f" ({industry})" if isinstance(industry, str) and industry else ""
        level = _risk_level(float(v), 0.6, 0.3)
        return f"{the} declared industry{where} is {level} risk (risk score {float(v):.2f})"

    def category(label: str) -> Renderer:
        return lambda v, raw: f"{the} {label} is {v}"

    return {
        "age_years": ("CUSTOMER_AGE", f"{the} age", lambda v, raw: f"the {party} is {_int(v)} years old"),
        "account_age_days": (
            "NEW_ACCOUNT",
            f"{the} account age",
            lambda v, raw: f"{the} account was opened {_days(v)} before {event}",
        ),
        "doc_present": (
            "DOC_MISSING",
            f"whether {the} identity document is on file",
            _binary(f"{the} identity document is on file", f"no identity document on file for the {party}"),
        ),
        "doc_check_digit_valid": (
            "DOC_INVALID",
            f"the check digit of {the} document number",
            _binary(
                f"{the} document number passes its check digit",
                f"{the} document number fails its check digit",
            ),
        ),
        "doc_typo_likely": (
            "DOC_TYPO_LIKELY",
            f"whether {the} document number has a typo",
            _binary(
                f"{the} document number looks like a typo (two adjacent characters swapped)",
                f"no typo pattern in {the} document number",
            ),
        ),
        "doc_expired": (
            "DOC_EXPIRED",
            f"whether {the} identity document had expired",
            _binary(
                f"{the} identity document had expired at the time of {event}",
                f"{the} identity document was valid at the time of {event}",
            ),
        ),
        "doc_days_to_expiry": ("DOC_EXPIRED", f"the expiry of {the} identity document", doc_expiry),
        "doc_country_mismatch": (
            "DOC_COUNTRY_MISMATCH",
            f"whether {the} document country matches their nationality",
            _binary(
                f"{the} document was issued by a country other than their nationality",
                f"{the} document was issued by their country of nationality",
            ),
        ),
        "days_since_kyc_review": (
            "STALE_KYC",
            f"the time since {the} last KYC review",
            lambda v, raw: f"{the} last KYC review was {_days(v)} before {event}",
        ),
        "name_email_similarity": (
            "NAME_EMAIL_MISMATCH",
            f"how well {the} e-mail matches their name",
            name_email,
        ),
        "email_free_domain": (
            "FREE_EMAIL",
            f"whether {the} e-mail is from a free provider",
            _binary(
                f"{the} e-mail address is from a free provider",
                f"{the} e-mail address is not from a free provider",
            ),
        ),
        "email_age_days": (
            "NEW_EMAIL",
            f"the age of {the} e-mail address",
            lambda v, raw: f"{the} e-mail address was first seen {_days(v)} before {event}",
        ),
        "nationality_risk": (
            "HIGH_RISK_COUNTRY",
            f"the risk of {the} nationality",
            _country_risk(party, "nationality", "nationality"),
        ),
        "residence_risk": (
            "HIGH_RISK_COUNTRY",
            f"the risk of {the} country of residence",
            _country_risk(party, "country of residence", "residence_country"),
        ),
        "phone_country_risk": (
            "HIGH_RISK_COUNTRY",
            f"the risk of {the} phone number's country",
            _country_risk(party, "phone number's country", "phone_country"),
        ),
        "phone_residence_mismatch": (
            "COUNTRY_MISMATCH",
            f"whether {the} phone number is from their country of residence",
            _binary(
                f"{the} phone number is from a country other than their residence",
                f"{the} phone number is from their country of residence",
            ),
        ),
        "nationality_residence_mismatch": (
            "COUNTRY_MISMATCH",
            f"whether the {party} lives in their country of nationality",
            _binary(
                f"the {party} lives outside their country of nationality",
                f"the {party} lives in their country of nationality",
            ),
        ),
        "business_age_days": (
            "NEW_BUSINESS",
            f"the age of {the} business",
            lambda v, raw: f"{the} business was registered {_days(v)} before {event}",
        ),
        "industry_risk": ("HIGH_RISK_INDUSTRY", f"the risk of {the} industry", industry_risk),
        "twofa_at_onboarding": (
            "NO_2FA",
            f"whether the {party} had two-factor authentication at onboarding",
            _binary(
                f"the {party} had two-factor authentication at onboarding",
                f"the {party} had no two-factor authentication at onboarding",
            ),
        ),
        "customer_type": ("CUSTOMER_TYPE", f"{the} customer type", category("customer type")),
        "role": ("CUSTOMER_TYPE", f"{the} role", category("role")),
        "nationality": ("CUSTOMER_COUNTRY", f"{the} nationality", category("nationality")),
        "residence_country": (
            "CUSTOMER_COUNTRY",
            f"{the} country of residence",
            category("country of residence"),
        ),
        "document_country": ("CUSTOMER_COUNTRY", f"{the} document country", category("document country")),
        "industry": ("INDUSTRY", f"{the} declared industry", category("declared industry")),
        "volume_vs_declared": (
            "VOLUME_VS_DECLARED",
            f"{the} 30-day volume against the monthly volume declared at KYC",
            lambda v, raw: (
                f"{the} volume in the 30 days before {event} is {_times(v)} the monthly volume declared at KYC"
            ),
        ),
        "declared_monthly_volume_usd": (
            "VOLUME_VS_DECLARED",
            f"the monthly volume the {party} declared at KYC",
            lambda v, raw: f"the {party} declared a monthly volume of {_money(v)} at KYC",
        ),
    }


# --- Screening --------------------------------------------------------------------------------

_LIST_NAMES = {"sanction": "sanctions list", "pep": "PEP list"}
_DOB_TEXT = {
    "exact": "birth date matches",
    "year": "birth year matches",
    "mismatch": "birth date differs",
    "unknown": "birth date unknown",
}
_COUNTRY_TEXT = {"match": "country matches", "mismatch": "country differs"}


def _lookup(key: str, *sources: Mapping[str, Any] | None) -> Any:
    for source in sources:
        if source is not None and key in source and not _missing(source[key]):
            return source[key]
    return None


def screening_sentence(prefix: str, *sources: Mapping[str, Any] | None) -> str | None:
    """ "name matches sanctions list entry WL-00123 (score 93; birth date matches)", or None.

    Args:
        prefix: ``"buyer_"``, ``"seller_"`` or ``""``: the prefix of the ``screen_*`` keys
            (``features.screening.OUTPUT_COLUMNS``).
        sources: mappings to read the keys from, first hit wins (raw inputs, feature row).

    Returns:
        The phrase when an entry id is known, else None.
    """
    entry = _lookup(prefix + "screen_entry_id", *sources)
    if entry is None:
        return None
    list_type = _lookup(prefix + "screen_list_type", *sources)
    score = _lookup(prefix + "screen_score", *sources)
    details = []
    try:
        if score is not None:
            details.append(f"score {float(score):.0f}")
    except (TypeError, ValueError):
        pass
    dob = _lookup(prefix + "screen_dob_match", *sources)
    if dob in _DOB_TEXT:
        details.append(_DOB_TEXT[dob])
    country = _lookup(prefix + "screen_country_match", *sources)
    if country in _COUNTRY_TEXT:
        details.append(_COUNTRY_TEXT[country])
    listed = _LIST_NAMES.get(str(list_type), "watchlist") if list_type is not None else "watchlist"
    owner = f"the {prefix.rstrip('_')}'s " if prefix else ""
    tail = f" ({'; '.join(details)})" if details else ""
    return f"{owner}name matches {listed} entry {entry}{tail}"


def _screening_specs(party: str) -> dict[str, tuple[str, str, Renderer]]:
    prefix = f"{party}_"

    def score(v: Any, raw: Mapping[str, Any]) -> str:
        s = float(v)
        if s <= 0:
            return f"the {party}'s name matches no watchlist entry"
        sentence = screening_sentence(prefix, raw, {prefix + "screen_score": s})
        if sentence is not None:
            return sentence
        list_type = raw.get(prefix + "screen_list_type")
        listed = _LIST_NAMES.get(str(list_type), "watchlist")
        return f"the {party}'s name resembles a {listed} entry (score {s:.0f})"

    def name_score(v: Any, raw: Mapping[str, Any]) -> str:
        s = float(v)
        if s <= 0:
            return f"the {party}'s name matches no watchlist entry"
        sentence = screening_sentence(prefix, raw)
        return (
            sentence
            if sentence is not None
            else f"the {party}'s name resembles a watchlist entry (name score {s:.0f})"
        )

    def categorical(label: str) -> Renderer:
        def render(v: Any, raw: Mapping[str, Any]) -> str:
            sentence = screening_sentence(prefix, raw)
            return sentence if sentence is not None else f"the {party}'s screening {label} is {v}"

        return render

    return {
        "screen_score": ("SCREENING_MATCH", f"the {party}'s screening score", score),
        "screen_name_score": ("SCREENING_MATCH", f"the {party}'s screening name score", name_score),
        "screen_list_type": (
            "SCREENING_MATCH",
            f"the list of the {party}'s screening match",
            categorical("list"),
        ),
        "screen_status": ("SCREENING_MATCH", f"the {party}'s screening status", categorical("status")),
        "screen_dob_match": (
            "SCREENING_MATCH",
            f"the birth-date evidence of the {party}'s screening match",
            categorical("birth-date evidence"),
        ),
        "screen_country_match": (
            "SCREENING_MATCH",
            f"the country evidence of the {party}'s screening match",
            categorical("country evidence"),
        ),
    }


# --- Features of the order itself -------------------------------------------------------------


def _unit_price(v: Any, raw: Mapping[str, Any]) -> str:
    r = float(v)
    category = raw.get("goods_category")
    ref = (
        f"the reference price for {category}"
        if isinstance(category, str) and category
        else "the category reference price"
    )
    if r < 0.95:
        return f"unit price is {100 * (1 - r):.0f}% below {ref}"
    if r > 1.05:
        return (
            f"unit price is {100 * (r - 1):.0f}% above {ref}" if r < 3 else f"unit price is {_times(r)} {ref}"
        )
    return f"unit price is close to {ref} (ratio {r:.2f})"


def _ip_mismatch(v: Any, raw: Mapping[str, Any]) -> str:
    # features.definitions.ip_country_mismatch: IP country != buyer (shipping) country.
    if not _flag(v):
        return "the IP address is in the buyer's country"
    ip, home = raw.get("ip_country"), raw.get("buyer_country")
    where = f" (IP in {ip}, buyer in {home})" if isinstance(ip, str) and isinstance(home, str) else ""
    return f"the order came from an IP address outside the buyer's country{where}"


def _hour(v: Any, raw: Mapping[str, Any]) -> str:
    return f"the order was placed between {_int(v):02d}:00 and {_int(v):02d}:59 UTC"


_ORDER_SPECS: dict[str, tuple[str, str, Renderer]] = {
    "amount_usd": ("ORDER_AMOUNT", "the order amount", lambda v, raw: f"order amount is {_money(v)}"),
    "log_amount_usd": (
        "ORDER_AMOUNT",
        "the order amount",
        lambda v, raw: f"order amount is {_money(math.expm1(float(v)))}",
    ),
    "cross_border": (
        "CROSS_BORDER",
        "whether the order is cross-border",
        _binary(
            "the buyer and the seller are in different countries (cross-border order)",
            "the buyer and the seller are in the same country",
        ),
    ),
    "goods_category_risk": (
        "RISKY_GOODS",
        "the risk class of the goods category",
        lambda v, raw: (
            f"the goods ({raw.get('goods_category') or 'this category'}) are "
            + {0.0: "a low-risk", 1.0: "a restricted"}.get(
                round(float(v), 2), "a high-risk" if float(v) > 0.5 else "a medium-risk"
            )
            + " category"
        ),
    ),
    "ip_country_risk": (
        "HIGH_RISK_COUNTRY",
        "the risk of the IP address's country",
        lambda v, raw: _event_country_risk("IP address's country", raw.get("ip_country"), v),
    ),
    "buyer_country_risk": (
        "HIGH_RISK_COUNTRY",
        "the risk of the country the goods ship to",
        lambda v, raw: _event_country_risk("country the goods ship to", raw.get("buyer_country"), v),
    ),
    "seller_country_risk": (
        "HIGH_RISK_COUNTRY",
        "the risk of the country the goods ship from",
        lambda v, raw: _event_country_risk("country the goods ship from", raw.get("seller_country"), v),
    ),
    "ip_country_mismatch": (
        "IP_COUNTRY_MISMATCH",
        "whether the IP country matches the buyer's country",
        _ip_mismatch,
    ),
    "amount": (
        "ORDER_AMOUNT",
        "the order amount",
        lambda v, raw: f"order amount is {_number(v)} (in the order's currency)",
    ),
    "unit_price_to_reference": (
        "PRICE_BELOW_REFERENCE",
        "the unit price compared with the category reference",
        _unit_price,
    ),
    "unit_price_ratio": (
        "PRICE_BELOW_REFERENCE",
        "the unit price compared with the category reference",
        _unit_price,
    ),
    "hour_of_day": ("ORDER_TIME", "the hour of the order", _hour),
    "hour": ("ORDER_TIME", "the hour of the order", _hour),
    "is_night": (
        "ORDER_TIME",
        "whether the order was placed at night",
        _binary("the order was placed at night (00:00-06:59 UTC)", "the order was placed in the daytime"),
    ),
    "is_weekend": (
        "ORDER_TIME",
        "whether the order was placed on a weekend",
        _binary("the order was placed on a weekend (UTC)", "the order was placed on a weekday (UTC)"),
    ),
    "quantity": ("QUANTITY", "the quantity", lambda v, raw: f"{_count(v, 'unit', 'units')} ordered"),
    "goods_category": ("GOODS_CATEGORY", "the goods category", lambda v, raw: f"goods category is {v}"),
    "payment_method": (
        "PAYMENT_METHOD",
        "the payment method",
        lambda v, raw: f"paid by {str(v).replace('_', ' ')}",
    ),
    "currency": ("CURRENCY", "the currency", lambda v, raw: f"order currency is {v}"),
    "buyer_country": (
        "ORDER_COUNTRY",
        "the country the goods ship to",
        lambda v, raw: f"the goods ship to {v}",
    ),
    "seller_country": (
        "ORDER_COUNTRY",
        "the country the goods ship from",
        lambda v, raw: f"the goods ship from {v}",
    ),
    "ip_country": (
        "ORDER_COUNTRY",
        "the IP address's country",
        lambda v, raw: f"the order came from an IP address in {v}",
    ),
}


# --- Customer snapshots (the risk-tier model, features.customer) ------------------------------

# Raw inputs of a customer-snapshot decision (onboarding, KYC review) carry the snapshot time under
# this key: behaviour features shared by name with the order model then speak of the customer
# "before this decision" instead of "before this order".
SNAPSHOT_CONTEXT = "as_of"
_SNAPSHOT_EVENT = "this decision"


def _share(what: str) -> Renderer:
    return lambda v, raw: f"{_percent(v)} of {what}"


def _snapshot_behaviour_specs() -> dict[str, tuple[str, str, Renderer]]:
    """``features.customer.BEHAVIOUR_COLUMNS`` -> (code, subject, renderer), said of the customer."""
    w30, before = "in the 30 days before this decision", "before this decision"
    specs: dict[str, tuple[str, str, Renderer]] = {}
    for role, verb, noun in (("buyer", "placed", "purchases"), ("seller", "received", "sales")):
        orders = "orders as a buyer" if role == "buyer" else "orders as a seller"
        e = role.upper()
        for window, when in (("30d", w30), ("all", before)):
            specs[f"{role}_txn_count_{window}"] = (
                f"{e}_VELOCITY",
                f"the number of {orders} {when}",
                lambda v, raw, o=orders, w=when, vb=verb: (
                    f"the customer {vb} {_count(v, o.replace('orders', 'order'), o)} {w}"
                ),
            )
            specs[f"{role}_amount_sum_{window}"] = (
                f"{e}_AMOUNT_VELOCITY",
                f"the amount of the customer's {noun} {when}",
                lambda v, raw, n=noun, w=when: f"the customer's {n} {w} add up to {_money(v)}",
            )
            scope = "in the past 30 days" if window == "30d" else "so far"
            specs[f"{role}_crossborder_mean_{window}"] = (
                "CROSS_BORDER",
                f"the share of the customer's cross-border {noun} {scope}",
                _share(f"the customer's {noun} {scope} crossed a border"),
            )
            specs[f"{role}_highrisk_mean_{window}"] = (
                "RISKY_GOODS",
                f"the share of high-risk goods in the customer's {noun} {scope}",
                _share(f"the customer's {noun} {scope} were high-risk or restricted goods"),
            )
        specs[f"{role}_fraud_count_all"] = (
            f"{e}_FRAUD_RATE",
            f"the number of the customer's {noun} labelled fraud, money laundering or restricted goods",
            lambda v, raw, n=noun: (
                f"{_count(v, n[:-1], n)} of the customer {'was' if _int(v) == 1 else 'were'} labelled fraud, "
                "money laundering or restricted goods (labels known before this decision)"
            ),
        )
        specs[f"{role}_fraud_rate_all"] = (
            f"{e}_FRAUD_RATE",
            f"the share of the customer's {noun} labelled fraud, money laundering or restricted goods",
            _share(
                f"the customer's {noun} were labelled fraud, money laundering or restricted goods (labels known before this decision)"
            ),
        )
    specs["buyer_seller_nunique_30d"] = (
        "FAN_OUT",
        "the number of different sellers the customer bought from in the past 30 days",
        lambda v, raw: f"the customer bought from {_int(v):,} different sellers in the past 30 days",
    )
    specs["buyer_sellercountry_nunique_30d"] = (
        "CUSTOMER_COUNTRIES",
        "the number of countries the customer's purchases shipped from in the past 30 days",
        lambda v, raw: (
            f"the customer's purchases in the past 30 days shipped from {_count(v, 'country', 'countries')}"
        ),
    )
    specs["buyer_ipcountry_nunique_30d"] = (
        "MANY_IP_COUNTRIES",
        "the number of IP countries the customer ordered from in the past 30 days",
        lambda v, raw: (
            f"the customer ordered from IP addresses in {_count(v, 'country', 'countries')} in the past 30 days"
        ),
    )
    specs["buyer_restricted_count_all"] = (
        "RISKY_GOODS",
        "the number of the customer's purchases of restricted goods",
        lambda v, raw: (
            f"the customer bought restricted goods (such as drug precursors) {_count(v, 'time', 'times')} before this decision"
        ),
    )
    specs["seller_buyer_nunique_30d"] = (
        "FAN_IN",
        "the number of different buyers the customer sold to in the past 30 days",
        lambda v, raw: f"the customer sold to {_int(v):,} different buyers in the past 30 days",
    )
    specs["seller_buyercountry_nunique_30d"] = (
        "SELLER_BUYER_COUNTRIES",
        "the number of countries the customer's sales shipped to in the past 30 days",
        lambda v, raw: (
            f"the customer's sales in the past 30 days shipped to {_count(v, 'country', 'countries')}"
        ),
    )

    def price(v: Any, raw: Mapping[str, Any]) -> str:
        ratio = math.exp(float(v))
        if ratio < 0.95:
            return f"the customer's sales in the past 30 days were priced {100 * (1 - ratio):.0f}% below the category reference prices on average"
        if ratio > 1.05:
            return f"the customer's sales in the past 30 days were priced {100 * (ratio - 1):.0f}% above the category reference prices on average"
        return "the customer's sales in the past 30 days were priced close to the category reference prices"

    specs["seller_logpricetoref_mean_30d"] = (
        "PRICE_BELOW_REFERENCE",
        "the customer's sale prices against the category reference prices in the past 30 days",
        price,
    )
    specs["customer_amount_sum_30d"] = (
        "CUSTOMER_VOLUME",
        "the customer's volume bought and sold in the past 30 days",
        lambda v, raw: f"the customer bought and sold {_money(v)} in the 30 days before this decision",
    )
    specs["customer_volume_vs_declared"] = (
        "VOLUME_VS_DECLARED",
        "the customer's 30-day volume against the monthly volume declared at KYC",
        lambda v, raw: (
            f"the customer's volume in the past 30 days is {_times(v)} the monthly volume declared at the last KYC review"
        ),
    )
    specs["customer_declared_monthly_volume_usd"] = (
        "VOLUME_VS_DECLARED",
        "the monthly volume the customer declared at KYC",
        lambda v, raw: f"the customer declared a monthly volume of {_money(v)} at the last KYC review",
    )
    specs["customer_txn_since_last_all"] = (
        "CUSTOMER_VELOCITY",
        "the time since the customer's latest order",
        lambda v, raw: (
            f"the customer's latest order was {_duration(float(v) * SINCE_LAST_UNIT_SECONDS)} before this decision"
        ),
    )
    for group, measure in (
        ("password_reset", "password_reset"),
        ("twofa_disabled", "twofa_disabled"),
        ("device_change", "device_change"),
        ("login_failed", "login_failed"),
        ("contact_change", None),
    ):
        singular, plural = (
            _ACCOUNT_EVENTS[measure]
            if measure
            else ("e-mail, phone or address change", "e-mail, phone and address changes")
        )
        specs[f"customer_{group}_count_30d"] = (
            "ACCOUNT_EVENTS_RECENT",
            f"the number of {plural} on the customer's account in the past 30 days",
            lambda v, raw, s=singular, p=plural: (
                f"{_count(v, s, p)} on the customer's account in the past 30 days"
            ),
        )
    specs["customer_device_nunique_all"] = (
        "MANY_DEVICES",
        "the number of devices used on the customer's account",
        lambda v, raw: (
            f"{_count(v, 'device', 'different devices')} used on the customer's account before this decision"
        ),
    )
    specs["customer_linked_nunique_all"] = (
        "LINKED_ACCOUNTS",
        "the number of other customers sharing a device, phone number, address or e-mail with this one",
        lambda v, raw: (
            f"the customer shares a device, phone number, address or e-mail with {_count(v, 'other customer', 'other customers')}"
        ),
    )
    specs["customer_linked_bad_count_all"] = (
        "LINKED_BAD_ACCOUNTS",
        "the number of linked customers known to be bad",
        lambda v, raw: (
            f"{_count(v, 'customer', 'customers')} sharing a device, phone number, address or e-mail with this one "
            f"{'is' if _int(v) == 1 else 'are'} known bad (money laundering, synthetic identity or sanctions)"
        ),
    )
    specs["customer_legitimate_known"] = (
        "REVIEWED_LEGITIMATE",
        "whether an earlier review found the customer legitimate",
        _binary(
            "an earlier review found the customer legitimate", "no earlier review has cleared the customer"
        ),
    )
    return specs


_SNAPSHOT_SPECS = _snapshot_behaviour_specs()


def _snapshot_spec(name: str) -> FeatureSpec | None:
    """The spec of a customer-snapshot feature (risk-tier model), or None."""
    prefix = "customer_"
    if name.startswith(prefix):
        suffix = name[len(prefix) :]
        screening = _screening_specs("customer")
        if suffix in screening:
            code, subject, render = screening[suffix]
            return FeatureSpec(name, code, subject, render, "screening")
        profile = _profile_specs("customer", _SNAPSHOT_EVENT)
        if suffix in profile:
            code, subject, render = profile[suffix]
            return FeatureSpec(name, code, subject, render, "profile")
    if name not in _SNAPSHOT_SPECS:
        return None
    code, subject, render = _SNAPSHOT_SPECS[name]
    if name.startswith(prefix):
        return FeatureSpec(name, code, subject, render, "customer")
    # buyer_*/seller_* names may also be order-model features (fraud_v1 has buyer_txn_count_30d):
    # the order sentence unless the decision is about a customer snapshot
    parsed = parse_feature_name(name)
    order = _history_spec(name, parsed) if parsed is not None else _generic_spec(name)

    def either(v: Any, raw: Mapping[str, Any], customer: Renderer = render) -> str:
        return customer(v, raw) if SNAPSHOT_CONTEXT in raw else order.render(v, raw)

    return FeatureSpec(name, code, subject, either, "customer")


@functools.lru_cache(maxsize=4096)
def describe_feature(name: str) -> FeatureSpec:
    """The reason code and sentence template of a feature (cached: names are few and fixed).

    Explicit templates (profile, screening, order) win over the history-name parser; a name
    neither knows gets the code ``OTHER`` and the generic sentence.

    Args:
        name: the feature name as the model sees it.

    Returns:
        Its ``FeatureSpec``.
    """
    if name in _ORDER_SPECS:
        code, subject, render = _ORDER_SPECS[name]
        return FeatureSpec(name, code, subject, render, "order")
    snapshot = _snapshot_spec(name)
    if snapshot is not None:
        return snapshot
    for party in ("buyer", "seller"):
        if name.startswith(party + "_"):
            suffix = name[len(party) + 1 :]
            screening = _screening_specs(party)
            if suffix in screening:
                code, subject, render = screening[suffix]
                return FeatureSpec(name, code, subject, render, "screening")
            profile = _profile_specs(party)
            if suffix in profile:
                code, subject, render = profile[suffix]
                return FeatureSpec(name, code, subject, render, "profile")
    parsed = parse_feature_name(name)
    if parsed is not None:
        return _history_spec(name, parsed)
    return _generic_spec(name)


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
        spec = describe_feature(feature)
    except Exception:  # noqa: BLE001 - a reason must never break a decision
        return _generic(feature, value)
    return spec.message(value, raw_inputs)


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
    specs: tuple[FeatureSpec, ...]
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
                "value": _json_value(value),
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


def rule_reasons(decision: Any, raw_inputs: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The policy's score and hard-rule reasons in the shape of model reasons.

    A watchlist reason names the matched entry when ``raw_inputs`` has the screening output
    (``screen_entry_id``, ``screen_list_type``, ``screen_score``, ``screen_dob_match``,
    ``screen_country_match``; prefixed ``buyer_`` / ``seller_`` for an order, bare for a
    customer): "The buyer's name matches sanctions list entry WL-00123 (score 93; birth date
    matches)." is appended to the policy's sentence.

    Args:
        decision: a ``training.policy.Decision``.
        raw_inputs: the screening output and the rule flags, optional.

    Returns:
        One reason dict per ``decision.reasons`` entry, in their order: ``source`` is ``score``
        for ``SCORE_*`` codes and ``rule`` otherwise; ``feature`` is the flag the rule reads
        (the matched entry's id key for watchlist rules with a known entry), ``value`` its value.
    """
    raw = raw_inputs if raw_inputs is not None else {}
    out = []
    for reason in decision.reasons:
        code, message = reason.code, reason.message
        if code.startswith("SCORE_"):
            out.append(
                {
                    "code": code,
                    "source": "score",
                    "feature": None,
                    "value": _json_value(getattr(decision, "probability", None)),
                    "contribution": None,
                    "direction": None,
                    "message": message,
                    "features": [],
                    "decisive": bool(reason.decisive),
                }
            )
            continue
        flag = _RULES[code][0] if code in _RULES else None
        feature, value = flag, _json_value(raw.get(flag)) if flag else None
        if code.startswith("WATCHLIST_"):
            hits = []
            for prefix in ("", "buyer_", "seller_"):
                sentence = screening_sentence(prefix, raw)
                if sentence is not None:
                    hits.append(sentence)
                    if feature == flag:
                        feature, value = (
                            prefix + "screen_entry_id",
                            _json_value(raw[prefix + "screen_entry_id"]),
                        )
            if hits:
                message = f"{message.rstrip()} " + " ".join(h[0].upper() + h[1:] + "." for h in hits)
        out.append(
            {
                "code": code,
                "source": "rule",
                "feature": feature,
                "value": value,
                "contribution": None,
                "direction": INCREASES,
                "message": message,
                "features": [],
                "decisive": bool(reason.decisive),
            }
        )
    return out


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
            if _missing(v):
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
