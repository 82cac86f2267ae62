"""History features declared as data: entities, measures, operations and ``Aggregation``, plus reading names back.

An ``Aggregation`` (entity, source stream, measure, operation, window, label delay) is the one
declaration of a history feature: both engines compute it (``features.batch``,
``features.online``), its name is generated from its fields, and its reason code and sentence are
derived from the same fields (``Aggregation.reason``, wording in
``features.definitions.history_reasons``). ``parse_feature_name`` reads a generated name back into
those fields, with the entity and operation tables declared here, for feature names that come
without their declaration (a model's booster knows only names). The semantics of windows, delays
and empty windows are described in ``features.definitions``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from features.contracts import EVENT_TYPES
from features.definitions.history_reasons import ENTITY_WORDS, KNOWN_MEASURES, HistoryName, history_reason
from features.reasons import FeatureReason
from features.units import US_PER_DAY, US_PER_HOUR, US_PER_SECOND

# --- Time ------------------------------------------------------------------------------------

_UNITS = {"s": US_PER_SECOND, "m": 60 * US_PER_SECOND, "h": US_PER_HOUR, "d": US_PER_DAY}
_WINDOW_RE = re.compile(r"^([1-9][0-9]*)([smhd])$")
ALL = "all"


def parse_duration(text: str) -> int:
    """Return a duration such as ``"30m"``, ``"24h"`` or ``"7d"`` in microseconds.

    Args:
        text: a positive integer followed by ``s``, ``m`` (minutes), ``h`` or ``d``.

    Raises:
        ValueError: for anything else.
    """
    match = _WINDOW_RE.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (expected e.g. '1h', '24h', '7d')")
    return int(match.group(1)) * _UNITS[match.group(2)]


# --- Entities and measures -------------------------------------------------------------------

# Entity -> key columns in each source stream. The current transaction (the query) always takes
# its key from the "transactions" columns: a buyer's account events are matched on customer_id.
ENTITIES: dict[str, dict[str, tuple[str, ...]]] = {
    "buyer": {"transactions": ("buyer_id",), "account_events": ("customer_id",)},
    "seller": {"transactions": ("seller_id",), "account_events": ("customer_id",)},
    "device": {"transactions": ("device_id",), "account_events": ("device_id",)},
    "ip": {"transactions": ("ip_address",), "account_events": ("ip_address",)},
    "pair": {"transactions": ("buyer_id", "seller_id")},
    "buyer_device": {
        "transactions": ("buyer_id", "device_id"),
        "account_events": ("customer_id", "device_id"),
    },
    "buyer_ipcountry": {
        "transactions": ("buyer_id", "ip_country"),
        "account_events": ("customer_id", "ip_country"),
    },
    "seller_buyercountry": {"transactions": ("seller_id", "buyer_country")},
}
if set(ENTITY_WORDS) != set(ENTITIES):  # every entity has its words for people, and nothing more
    raise RuntimeError(f"ENTITY_WORDS and ENTITIES differ: {sorted(set(ENTITY_WORDS) ^ set(ENTITIES))}")


@dataclass(frozen=True)
class Measure:
    """What an aggregation looks at in each source event.

    Attributes:
        name: name used in feature names (``amount`` in ``buyer_amount_sum_24h``).
        kind: ``"event"`` (just the event; for counting), ``"numeric"`` or ``"categorical"``.
        columns: source stream -> column holding the value (numeric measures may be derived
            row-level features such as ``amount_usd``).
        text: plain-language description.
    """

    name: str
    kind: str
    columns: Mapping[str, str] = field(default_factory=dict)
    text: str = ""


MEASURES: dict[str, Measure] = {
    m.name: m
    for m in (
        Measure("txn", "event", {}, "transactions"),
        Measure("event", "event", {}, "account events"),
        Measure("amount", "numeric", {"transactions": "amount_usd"}, "amount in USD"),
        Measure(
            "amount_local",
            "numeric",
            {"transactions": "amount"},
            "amount in the transaction currency (single-currency data only)",
        ),
        Measure("buyer", "categorical", {"transactions": "buyer_id"}, "buyers"),
        Measure("seller", "categorical", {"transactions": "seller_id"}, "sellers"),
        Measure(
            "device", "categorical", {"transactions": "device_id", "account_events": "device_id"}, "devices"
        ),
        Measure(
            "ip",
            "categorical",
            {"transactions": "ip_address", "account_events": "ip_address"},
            "IP addresses",
        ),
        Measure(
            "ipcountry",
            "categorical",
            {"transactions": "ip_country", "account_events": "ip_country"},
            "IP countries",
        ),
        Measure("buyercountry", "categorical", {"transactions": "buyer_country"}, "buyer countries"),
        Measure("category", "categorical", {"transactions": "goods_category"}, "goods categories"),
        Measure("payment", "categorical", {"transactions": "payment_method"}, "payment methods"),
    )
}

SOURCES = ("transactions", "account_events")
OPS = (
    "count",
    "sum",
    "mean",
    "max",
    "min",
    "std",
    "ratio",
    "nunique",
    "fraud_count",
    "fraud_rate",
    "since_last",
)
_VALUE_OPS = ("sum", "mean", "max", "min", "std", "ratio")
LABEL_OPS = ("fraud_count", "fraud_rate")
_CLOSED = ("neither", "left", "right", "both")


@dataclass(frozen=True)
class Aggregation:
    """One windowed history feature, declared as data.

    Attributes:
        entity: whose history (a key of ``ENTITIES``).
        measure: a key of ``MEASURES``: ``txn``/``event`` to count events, a numeric measure
            (``amount``) for sum/mean/max/min/std/ratio, a categorical one for ``nunique``.
        op: one of ``OPS``. ``ratio`` = current value / mean over the window;
            ``fraud_rate`` = share of the window's transactions labelled bad by a label known
            before ``t`` (``fraud_count`` = their number); ``since_last`` = hours since the
            latest event in the window.
        window: ``"1h"``, ``"24h"``, ``"7d"``, ``"30d"``, ... or ``"all"``.
        source: ``"transactions"`` or ``"account_events"``.
        event_type: only account events of this type (``None``: all).
        delay: label delay (e.g. ``"7d"``): the window ends ``delay`` before ``t``.
        include_current: add the current transaction to the window (count, sum, mean, max,
            min and std over transactions only).
        closed: which window ends are inclusive (``"neither"``, ``"left"``, ``"right"``,
            ``"both"``); default ``"neither"`` without a delay and ``"left"`` with one. An end
            at ``t`` itself can never be inclusive.
        fill: value for an empty window instead of NaN (e.g. ``0.0``).
    """

    entity: str
    measure: str
    op: str
    window: str
    source: str = "transactions"
    event_type: str | None = None
    delay: str | None = None
    include_current: bool = False
    closed: str | None = None
    fill: float | None = None

    def __post_init__(self) -> None:
        if self.entity not in ENTITIES:
            raise ValueError(f"unknown entity {self.entity!r}; known: {sorted(ENTITIES)}")
        if self.source not in SOURCES:
            raise ValueError(f"unknown source {self.source!r}; known: {SOURCES}")
        if self.source not in ENTITIES[self.entity]:
            raise ValueError(f"entity {self.entity!r} has no key in {self.source}")
        if self.measure not in MEASURES:
            raise ValueError(f"unknown measure {self.measure!r}; known: {sorted(MEASURES)}")
        if self.op not in OPS:
            raise ValueError(f"unknown op {self.op!r}; known: {OPS}")
        kind = MEASURES[self.measure].kind
        if kind != "event" and self.source not in MEASURES[self.measure].columns:
            raise ValueError(f"measure {self.measure!r} is not available in {self.source}")
        if self.op in _VALUE_OPS and kind != "numeric":
            raise ValueError(f"{self.op} needs a numeric measure, got {self.measure!r}")
        if self.op == "nunique" and kind != "categorical":
            raise ValueError(f"nunique needs a categorical measure, got {self.measure!r}")
        if self.op in ("count", "since_last") and kind == "numeric":
            raise ValueError(f"{self.op} counts events: use measure 'txn' or 'event', not {self.measure!r}")
        if self.op in LABEL_OPS:
            if self.source != "transactions" or self.measure != "txn":
                raise ValueError(f"{self.op} is over transactions (measure 'txn')")
            if self.window == ALL:
                raise ValueError(f"{self.op} needs a finite window (labels of pruned history are not kept)")
        if self.event_type is not None:
            if self.source != "account_events":
                raise ValueError("event_type filters account_events only")
            if self.event_type not in EVENT_TYPES:
                raise ValueError(f"unknown event_type {self.event_type!r}")
        if self.window != ALL:
            parse_duration(self.window)
        if self.delay is not None:
            parse_duration(self.delay)
        if self.closed is not None and self.closed not in _CLOSED:
            raise ValueError(f"closed must be one of {_CLOSED}")
        if self.closed_ends in ("right", "both") and self.delay is None:
            # The right end would be t itself: same-timestamp events would leak in.
            raise ValueError("a window without delay cannot include its right end (t itself)")
        if self.include_current:
            if self.source != "transactions" or self.op not in ("count", "sum", "mean", "max", "min", "std"):
                raise ValueError("include_current applies to count/sum/mean/max/min/std over transactions")
            if self.delay is not None:
                raise ValueError("include_current cannot be combined with a delay")

    # -- derived properties ------------------------------------------------------------------

    @property
    def closed_ends(self) -> str:
        """The effective window closure (resolving the default)."""
        if self.closed is not None:
            return self.closed
        return "neither" if self.delay is None else "left"

    @property
    def window_us(self) -> int | None:
        """Window length in microseconds, ``None`` for ``"all"``."""
        return None if self.window == ALL else parse_duration(self.window)

    @property
    def delay_us(self) -> int:
        """Label delay in microseconds (0 without a delay)."""
        return 0 if self.delay is None else parse_duration(self.delay)

    def offsets(self, unit: int = 1) -> tuple[int, int | None]:
        """Return ``(a, b)``: an event at ``e`` is in the window of a row at ``t`` iff
        ``e + a <= t < e + b`` (``b`` is ``None`` for ``"all"``).

        Args:
            unit: time resolution in microseconds that every timestamp is a multiple of; strict
                inequalities become ``+ unit`` (``e < t`` iff ``e + unit <= t``).
        """
        d, w, closed = self.delay_us, self.window_us, self.closed_ends
        a = d if closed in ("right", "both") else d + unit
        if w is None:
            return a, None
        b = w + d + unit if closed in ("left", "both") else w + d
        return a, b

    @property
    def column(self) -> str | None:
        """Column of the source stream holding the measure (``None`` when counting events)."""
        m = MEASURES[self.measure]
        return None if m.kind == "event" else m.columns[self.source]

    @property
    def group(self) -> tuple[str, str, str | None]:
        """Aggregations with the same group share one entity index (``entity, source, event_type``)."""
        return (self.entity, self.source, self.event_type)

    @property
    def history_name(self) -> HistoryName:
        """The fields the name is generated from (and the reason derived from).

        The measure is the account event type for filtered account events and is left out for
        the label operations; ``closed`` is kept only when it differs from the default.
        """
        what = (
            "" if self.op in LABEL_OPS else (self.event_type if self.event_type is not None else self.measure)
        )
        default = "neither" if self.delay is None else "left"
        closed = self.closed if self.closed is not None and self.closed != default else None
        return HistoryName(self.entity, what, self.op, self.window, self.delay, self.include_current, closed)

    @property
    def name(self) -> str:
        """Generated column name: ``{entity}_{measure}_{op}_{window}`` plus suffixes.

        E.g. ``buyer_amount_sum_24h``, ``seller_fraud_rate_30d_delay7d``,
        ``buyer_password_reset_count_1h``. Suffixes: ``_delay{d}``, ``_with_current``, and
        ``_closed_{ends}`` for a closure other than the default.
        """
        return self.history_name.name

    @property
    def reason(self) -> FeatureReason:
        """Reason code, subject and sentence template, derived from the fields (never from the name)."""
        return history_reason(self.history_name)

    def describe(self) -> str:
        """One line of meaning for people (data card, model card, reason codes)."""
        ent = ENTITY_WORDS[self.entity].text
        if self.source == "account_events":
            things = f"{self.event_type} account events" if self.event_type else "account events"
            things += f" of {ent}"
        else:
            things = f"transactions of {ent}"
        text = _DESCRIBE[self.op].format(
            m=MEASURES[self.measure].text, things=things, win=self._window_text()
        )
        if self.fill is not None:
            text += f" ({self.fill:g} when empty)"
        return text

    def _window_text(self) -> str:
        cur = " and this one" if self.include_current else ""
        if self.window == ALL:
            if self.delay is None:
                return f"before this one{cur}"
            return f"up to {self.delay} before this one"
        if self.delay is None:
            return f"in the {self.window} before this one{cur}"
        lo = "[" if self.closed_ends in ("left", "both") else "("
        hi = "]" if self.closed_ends in ("right", "both") else ")"
        w_d = f"{parse_duration(self.window) + parse_duration(self.delay)}"
        span = _fmt_duration(int(w_d))
        return f"in {lo}t-{span}, t-{self.delay}{hi}"


# op -> data-card line, from the measure's text ``m``, whose events ``things`` and the window ``win``.
_DESCRIBE = {
    "count": "number of {things} {win}",
    "sum": "total {m} of {things} {win}",
    "mean": "mean {m} of {things} {win}",
    "max": "largest {m} of {things} {win}",
    "min": "smallest {m} of {things} {win}",
    "std": "sample standard deviation (ddof=1) of the {m} of {things} {win}",
    "ratio": "current {m} / mean {m} of {things} {win}",
    "nunique": "number of distinct {m} in {things} {win}",
    "fraud_count": "number of {things} {win} labelled bad by a label known before this transaction",
    "fraud_rate": "share of {things} {win} labelled bad by a label known before this transaction",
    "since_last": "hours since the latest of the {things} {win}",
}


def _fmt_duration(us: int) -> str:
    for suffix, unit in (("d", US_PER_DAY), ("h", US_PER_HOUR), ("m", 60 * US_PER_SECOND)):
        if us % unit == 0:
            return f"{us // unit}{suffix}"
    return f"{us // US_PER_SECOND}s"


# --- Reading names back -----------------------------------------------------------------------

# Longest first: "buyer_device_txn_count_all" is the pair (buyer, device), not the buyer, and
# "seller_fraud_count_30d" is a fraud_count, not a count of "fraud".
_ENTITIES_LONGEST_FIRST = tuple(sorted(ENTITIES, key=len, reverse=True))
_OPS_LONGEST_FIRST = tuple(sorted(OPS, key=len, reverse=True))
_OPS_NEEDING_MEASURE = frozenset({"nunique", *_VALUE_OPS})
_NAME_WINDOW_RE = re.compile(r"(?:\d+[smhdw]|all)")
_CLOSED_RE = re.compile(r"_closed_(neither|left|right|both)$")
_CURRENT_SUFFIX = "_with_current"
_DELAY_RE = re.compile(r"_delay(\d+[smhdw])$")


@functools.lru_cache(maxsize=4096)
def parse_feature_name(name: str) -> HistoryName | None:
    """Split a generated history feature name into its fields, or None if it is not one.

    The inverse of ``HistoryName.name`` (hence of ``Aggregation.name``), lenient where a name
    from another feature engine differs (``buyer_txn_since_last`` without a window, measures this
    package does not define). ``buyer_device_nunique_7d`` is read as entity ``buyer``, measure
    ``device`` (a distinct count needs a measure), while ``buyer_device_txn_count_all`` is entity
    ``buyer_device``; ``buyer_device_change_count_1h`` is the buyer's ``device_change`` events (a
    reading whose measure the reason templates know wins).

    Args:
        name: a feature name.

    Returns:
        The fields, or None.
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
    if head and _NAME_WINDOW_RE.fullmatch(last):
        window, rest = last, head
    op = next((o for o in _OPS_LONGEST_FIRST if rest == o or rest.endswith("_" + o)), None)
    if op is None or (window is None and op != "since_last"):
        return None
    body = rest[: -len(op)].rstrip("_")
    candidates = []
    for entity in _ENTITIES_LONGEST_FIRST:
        if body != entity and not body.startswith(entity + "_"):
            continue
        measure = body[len(entity) + 1 :]
        if op in _OPS_NEEDING_MEASURE and not measure:
            continue
        candidates.append(HistoryName(entity, measure, op, window, delay, include_current, closed))
    known = [c for c in candidates if c.measure in KNOWN_MEASURES]
    return (known or candidates or [None])[0]
