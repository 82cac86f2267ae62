"""How a history feature reads to people: reason codes and sentences derived from its name's fields.

A history feature (``features.definitions.Aggregation``) is named from its fields,
``{entity}_{measure}_{op}_{window}`` plus ``_delay{d}``, ``_with_current`` and
``_closed_{ends}``; those fields (``HistoryName``) are all its reason needs. ``history_reason``
derives the code and the sentence template from them, one template per operation, with the words
of each entity declared once in ``ENTITY_WORDS`` (``buyer_amount_ratio_30d`` = 12.0 -> "order
amount is 12× this buyer's 30-day average"; ``pair_txn_count_all`` = 0 -> "first order between
this buyer and this seller"; a window with a label delay says so: "over the 30 days ending 7 days
before the order"). ``HISTORY_CODES`` lists every code these templates can give, with its meaning.

Kept apart from ``features.definitions.history`` (the aggregation engine's declarations) because
this is wording only: the engines never read it, and ``history`` imports it, not the reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from features.reasons import (
    SINCE_LAST_UNIT_SECONDS,
    FeatureReason,
    Renderer,
    as_int,
    count,
    duration,
    money,
    number,
    percent,
    times,
)

__all__ = ["ENTITY_WORDS", "HISTORY_CODES", "KNOWN_MEASURES", "EntityWords", "HistoryName", "history_reason"]

_LABEL_OPS = ("fraud_rate", "fraud_count")


@dataclass(frozen=True)
class HistoryName:
    """The fields a history feature's name is generated from.

    ``measure`` is the account event type for filtered account events and empty for the label
    operations (``seller_fraud_rate_30d_delay7d``); ``window`` is None only for ``since_last``
    read from a name without one; ``closed`` is set only for a closure other than the default.
    """

    entity: str
    measure: str
    op: str
    window: str | None
    delay: str | None = None
    include_current: bool = False
    closed: str | None = None

    @property
    def name(self) -> str:
        """``{entity}_{measure}_{op}_{window}`` plus ``_delay{d}``, ``_with_current``, ``_closed_{ends}``."""
        parts = [self.entity, self.measure] if self.measure else [self.entity]
        parts += [self.op] if self.window is None else [self.op, self.window]
        if self.delay is not None:
            parts.append(f"delay{self.delay}")
        if self.include_current:
            parts.append("with_current")
        if self.closed is not None:
            parts.append(f"closed_{self.closed}")
        return "_".join(parts)


@dataclass(frozen=True)
class EntityWords:
    """Every phrase that names one entity (a key of ``features.definitions.ENTITIES``).

    Attributes:
        text: for the data card (``Aggregation.describe``): "the buyer".
        phrase: in reasons: "this buyer".
        orders_of: whose orders: "3 orders {orders_of}".
        previous_order: "{previous_order} was 3 minutes before this one".
        fraud_rate_owner: "{fraud_rate_owner} over the past 30 days ... is 4.0%".
        link: for an entity that links two things (a pair): its code, the code's meaning and
            the sentence of "no earlier order" over all history; None otherwise.
    """

    text: str
    phrase: str
    orders_of: str
    previous_order: str
    fraud_rate_owner: str
    link: tuple[str, str, str] | None = None


ENTITY_WORDS: dict[str, EntityWords] = {
    "buyer": EntityWords(
        "the buyer", "this buyer", "by this buyer", "this buyer's previous order", "buyer's fraud rate"
    ),
    "seller": EntityWords(
        "the seller",
        "this seller",
        "received by this seller",
        "this seller's previous order",
        "seller's fraud rate",
    ),
    "device": EntityWords(
        "this device",
        "this device",
        "from this device",
        "the previous order from this device",
        "this device's fraud rate",
    ),
    "ip": EntityWords(
        "this IP address",
        "this IP address",
        "from this IP address",
        "the previous order from this IP address",
        "this IP address's fraud rate",
    ),
    "pair": EntityWords(
        "this buyer-seller pair",
        "this buyer and this seller",
        "between this buyer and this seller",
        "this buyer's previous order from this seller",
        "the fraud rate of orders between this buyer and this seller",
        (
            "NEW_COUNTERPARTY",
            "history between this buyer and this seller (first order, earlier orders)",
            "first order between this buyer and this seller",
        ),
    ),
    "buyer_device": EntityWords(
        "this buyer on this device",
        "this buyer on this device",
        "by this buyer from this device",
        "this buyer's previous order from this device",
        "the fraud rate of this buyer's orders from this device",
        (
            "NEW_DEVICE",
            "history of this buyer on this device (a device new to the buyer)",
            "first order by this buyer from this device (a device new to this buyer)",
        ),
    ),
    "buyer_ipcountry": EntityWords(
        "this buyer from this IP country",
        "this buyer from this IP country",
        "by this buyer from this IP country",
        "this buyer's previous order from this IP country",
        "the fraud rate of this buyer's orders from this IP country",
        (
            "NEW_IP_COUNTRY",
            "history of this buyer from this IP country (a country new to the buyer)",
            "first order by this buyer from this IP country",
        ),
    ),
    "seller_buyercountry": EntityWords(
        "this seller with buyers in this buyer country",
        "this seller with buyers from this country",
        "received by this seller from buyers in this country",
        "this seller's previous order from a buyer in this country",
        "the fraud rate of this seller's orders from buyers in this country",
        (
            "NEW_BUYER_COUNTRY_FOR_SELLER",
            "history of this seller with buyers from this country",
            "first order to this seller from a buyer in this country",
        ),
    ),
}

# Account events (the ``account_events`` contract): singular and plural nouns.
ACCOUNT_EVENT_NOUNS = {
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
_AMOUNT_MEASURES = frozenset({"amount", "amount_local"})
_COUNTED_AS_ORDERS = _TXN_MEASURES | _AMOUNT_MEASURES
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
# Measures these templates have words for: a name read back prefers a reading with one of them.
KNOWN_MEASURES = frozenset(ACCOUNT_EVENT_NOUNS) | _COUNTED_AS_ORDERS | frozenset(_NOUNS)

_MANY_IP_COUNTRIES = "this buyer ordered from IP addresses in {n} different countries{w}"
# (entity, measure) of a distinct count -> code, its meaning, sentence "{n} ...{w}".
_NUNIQUE = {
    ("seller", "buyercountry"): (
        "SELLER_BUYER_COUNTRIES",
        "number of different buyer countries a seller receives orders from",
        "this seller received orders from buyers in {n} different countries{w}",
    ),
    ("seller", "buyer"): (
        "FAN_IN",
        "number of different buyers ordering from this seller",
        "this seller received orders from {n} different buyers{w}",
    ),
    ("buyer", "seller"): (
        "FAN_OUT",
        "number of different sellers this buyer orders from",
        "this buyer ordered from {n} different sellers{w}",
    ),
    ("device", "buyer"): (
        "SHARED_DEVICE",
        "number of accounts using this device",
        "this device has been used by {n} different accounts{w}",
    ),
    ("ip", "buyer"): (
        "SHARED_IP",
        "number of accounts using this IP address",
        "this IP address has been used by {n} different accounts{w}",
    ),
    ("buyer", "device"): (
        "MANY_DEVICES",
        "number of devices this buyer uses",
        "this buyer used {n} different devices{w}",
    ),
    ("buyer", "ip"): (
        "MANY_IPS",
        "number of IP addresses this buyer uses",
        "this buyer used {n} different IP addresses{w}",
    ),
    ("buyer", "ipcountry"): (
        "MANY_IP_COUNTRIES",
        "number of IP countries this buyer orders from",
        _MANY_IP_COUNTRIES,
    ),
    ("buyer", "ip_country"): (
        "MANY_IP_COUNTRIES",
        "number of IP countries this buyer orders from",
        _MANY_IP_COUNTRIES,
    ),
}
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
# op -> (subject noun, sentence lead)
_AMOUNT_STATS = {
    "mean": ("average order amount", "average order"),
    "max": ("largest order amount", "largest order"),
    "min": ("smallest order amount", "smallest order"),
    "std": ("spread of order amounts", "spread (standard deviation) of order amounts"),
}


def _history_codes() -> dict[str, str]:
    codes: dict[str, str] = {}
    for entity, words in ENTITY_WORDS.items():
        e, phrase = entity.upper(), words.phrase
        codes[f"{e}_FRAUD_RATE"] = (
            f"share and number of orders of {phrase} labelled fraud, from labels known at the time"
        )
        if words.link is not None:
            continue
        codes[f"AMOUNT_VS_{e}_AVG"] = f"order amount compared with the average order of {phrase}"
        codes[f"{e}_VELOCITY"] = f"number and recency of earlier orders of {phrase}"
        codes[f"{e}_AMOUNT_VELOCITY"] = f"amounts ordered by or from {phrase} in a recent window"
        codes[f"{e}_AMOUNT_HISTORY"] = f"usual order amounts of {phrase} (mean, maximum, spread)"
        codes[f"{e}_ACTIVITY"] = f"other activity history of {phrase}"
    codes |= {w.link[0]: w.link[1] for w in ENTITY_WORDS.values() if w.link is not None}
    codes |= {code: meaning for code, meaning, _ in _NUNIQUE.values()}
    codes["ACCOUNT_EVENTS_BEFORE_ORDER"] = (
        "logins, failed logins, password resets, device, 2FA and contact changes before the order"
    )
    return codes


# Every code ``history_reason`` can give -> its meaning.
HISTORY_CODES: dict[str, str] = _history_codes()


# --- Windows ----------------------------------------------------------------------------------

_UNITS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}


def _span(window: str) -> tuple[str, str]:
    """``24h`` -> ("24 hours", "24-hour"); ``1h`` -> ("hour", "1-hour")."""
    n, unit = int(window[:-1]), _UNITS[window[-1]]
    return (unit if n == 1 else f"{n} {unit}s"), f"{n}-{unit}"


def _delay_text(p: HistoryName) -> str:
    return _span(p.delay)[0] if p.delay and int(p.delay[:-1]) != 1 else f"1 {_UNITS[p.delay[-1]]}"


def _before(p: HistoryName, what: str = "the order") -> str:
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


def _in_window(p: HistoryName) -> str:
    """ " in the past 7 days"; "" for the whole history."""
    if p.delay:
        return " " + _before(p)
    if p.window in (None, "all"):
        return ""
    return f" in the past {_span(p.window)[0]}"


def _over(p: HistoryName) -> str:
    if p.delay:
        if p.window in (None, "all"):
            return f"over all history up to {_delay_text(p)} before the order"
        return f"over the {_span(p.window)[0]} ending {_delay_text(p)} before the order"
    if p.window in (None, "all"):
        return "over all history"
    return f"over the past {_span(p.window)[0]}"


def _average(p: HistoryName) -> str:
    if p.window in (None, "all"):
        return "average over all earlier orders" + (f" up to {_delay_text(p)} before" if p.delay else "")
    if p.delay:
        return f"average in the {_span(p.window)[0]} ending {_delay_text(p)} before the order"
    return f"{_span(p.window)[1]} average"


def _over_orders(p: HistoryName) -> str:
    text = "over all earlier orders" if p.window in (None, "all") and not p.delay else _over(p)
    return text + (" (this one included)" if p.include_current else "")


# --- Code, subject, sentence ------------------------------------------------------------------


def _code(p: HistoryName) -> str:
    e = p.entity.upper()
    if p.op in _LABEL_OPS:
        return f"{e}_FRAUD_RATE"
    if p.measure in ACCOUNT_EVENT_NOUNS:
        return "ACCOUNT_EVENTS_BEFORE_ORDER"
    link = ENTITY_WORDS[p.entity].link
    if link is not None:
        return link[0]
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


def _subject(p: HistoryName) -> str:
    words = ENTITY_WORDS[p.entity]
    phrase = words.phrase
    if p.op == "fraud_rate":
        return f"{'the ' if p.entity in ('buyer', 'seller') else ''}{words.fraud_rate_owner} {_over(p)}"
    if p.op == "fraud_count":
        return f"the number of orders {words.orders_of} labelled fraud {_over(p)}"
    if p.measure in ACCOUNT_EVENT_NOUNS:
        singular, plural = ACCOUNT_EVENT_NOUNS[p.measure]
        if p.op == "since_last":
            return f"the time since the last {singular} of {phrase}"
        return f"the number of {plural} of {phrase} {_before(p)}"
    if p.op == "ratio" and p.measure in _AMOUNT_MEASURES:
        return f"the order amount compared with {phrase}'s {_average(p)}"
    if p.op == "nunique":
        noun = _NOUNS.get(p.measure, f"{p.measure.replace('_', ' ')} values")
        return f"the number of different {noun} for {phrase}{_in_window(p)}"
    if p.op == "since_last" and p.measure in _TXN_MEASURES:
        return f"the time since {words.previous_order}"
    if p.op == "count" and p.measure in _COUNTED_AS_ORDERS:
        return f"the number of orders {words.orders_of} {_before(p, 'this one')}"
    if p.measure in _AMOUNT_MEASURES and p.op == "sum":
        return f"the total amount of orders {words.orders_of} {_before(p, 'this one')}"
    if p.measure in _AMOUNT_MEASURES and p.op in _AMOUNT_STATS:
        return f"the {_AMOUNT_STATS[p.op][0]} of {phrase} {_over_orders(p)}"
    measure = p.measure.replace("_", " ") or "orders"
    return f"the {_OP_LABELS[p.op]} of {measure} for {phrase}{_in_window(p)}"


def _orders_count(p: HistoryName, n: float) -> str:
    words = ENTITY_WORDS[p.entity]
    before = _before(p, "this one")
    if words.link is not None:
        if as_int(n) == 0:
            if p.window in (None, "all") and not p.delay:
                return words.link[2]
            return f"no order {words.orders_of} {before}"
        return f"{count(n, 'earlier order', 'earlier orders')} {words.orders_of} {before}"
    return f"{count(n, 'order', 'orders')} {words.orders_of} {before}"


def _amount_format(p: HistoryName) -> Callable[[float], str]:
    if p.measure == "amount":
        return money
    return lambda v: f"{number(v)} (in the order's currency)"


def _renderer(p: HistoryName) -> Renderer:
    words = ENTITY_WORDS[p.entity]
    phrase, orders_of = words.phrase, words.orders_of
    window = _in_window(p)

    if p.op == "fraud_rate":
        owner = words.fraud_rate_owner
        return lambda v, raw: f"{owner} {_over(p)} (labels known at the time) is {percent(v)}"
    if p.op == "fraud_count":
        return lambda v, raw: (
            f"{count(v, 'order', 'orders')} {orders_of} labelled fraud {_over(p)} (labels known at the time)"
        )

    if p.measure in ACCOUNT_EVENT_NOUNS:
        singular, plural = ACCOUNT_EVENT_NOUNS[p.measure]
        owner = {"buyer": " on the buyer's account", "seller": " on the seller's account"}.get(p.entity, "")
        if p.op == "count":
            return lambda v, raw: f"{count(v, singular, plural)}{owner} {_before(p)}"
        if p.op == "since_last":
            return lambda v, raw: (
                f"the last {singular}{owner} was {duration(float(v) * SINCE_LAST_UNIT_SECONDS)} before the order"
            )

    if p.op == "ratio" and p.measure in _AMOUNT_MEASURES:
        return lambda v, raw: f"order amount is {times(v)} {phrase}'s {_average(p)}"

    if p.op == "nunique":
        if (p.entity, p.measure) in _NUNIQUE:
            template = _NUNIQUE[(p.entity, p.measure)][2]
            return lambda v, raw: template.format(n=f"{as_int(v):,}", w=window)
        noun = _NOUNS.get(p.measure, f"{p.measure.replace('_', ' ')} values")
        return lambda v, raw: f"{as_int(v):,} different {noun} for {phrase}{window}"

    if p.op == "count" and p.measure in _COUNTED_AS_ORDERS:
        return lambda v, raw: _orders_count(p, v)
    if p.op == "since_last" and p.measure in _TXN_MEASURES:
        lead = words.previous_order
        return lambda v, raw: f"{lead} was {duration(float(v) * SINCE_LAST_UNIT_SECONDS)} before this one"

    if p.measure in _AMOUNT_MEASURES:
        fmt = _amount_format(p)
        if p.op == "sum":
            return lambda v, raw: f"{fmt(v)} in orders {orders_of} {_before(p, 'this one')}"
        if p.op in _AMOUNT_STATS:
            lead = _AMOUNT_STATS[p.op][1]
            return lambda v, raw: f"{lead} of {phrase} {_over_orders(p)} is {fmt(v)}"

    label = _OP_LABELS[p.op]
    measure = p.measure.replace("_", " ") or "orders"
    return lambda v, raw: f"{label} of {measure} for {phrase}{window} is {number(v)}"


def history_reason(p: HistoryName) -> FeatureReason:
    """The reason of a history feature: code, subject and sentence template, from its fields.

    Args:
        p: the fields of the feature's name (``Aggregation.history_name``).

    Returns:
        Its ``FeatureReason``; the code is a key of ``HISTORY_CODES``.
    """
    return FeatureReason(_code(p), _subject(p), _renderer(p))
