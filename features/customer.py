"""The customer risk-tier dataset: point-in-time customer snapshots, their behaviour, model frame, targets and ground truth.

The second model scores customers, not orders: at onboarding and then as behaviour accumulates,
each customer gets a risk tier (low: approve; medium: manual review or ask for documents; high:
reject or report). One training row is a *snapshot* ``(customer_id, as_of)``:

1. ``snapshot_times``: each customer right after onboarding (``onboarded_at + 1 µs``, no
   behaviour yet) and then at regular dates while the account exists;
2. ``customer_behaviour``: the customer's behaviour before ``as_of`` as buyer and as seller
   (volumes, counterparties, countries, goods risk, known bad labels, account events, links to
   other customers), vectorised over all snapshots;
3. ``screen_snapshots`` and ``customer_frame``: KYC profile columns (prefixed ``customer_``, for
   ``features.profile.PartyProfileFeatures(party="customer", time_column="as_of")`` inside the
   model's Pipeline), role, behaviour and watchlist screening as of the snapshot;
4. ``customer_targets`` (bad customer) and ``customer_review_targets`` (PEP or KYC refresh), from
   labels known before a cut-off; ``customer_patterns``: the generator's ground truth for
   per-pattern evaluation.

Point in time. A snapshot at ``as_of`` sees only events with ``occurred_at < as_of`` and labels
with ``known_at < as_of`` (strictly before, as in ``features.definitions``); a finite window
``w`` covers ``(as_of - w, as_of)``, open at both ends; ``all`` covers all earlier history in the
frames given. Changing the future never changes a snapshot. The profile itself (the
``customers`` table) is taken as recorded; the KYC transformer handles review dates after the
event.

One function for batch and serving. ``customer_behaviour`` is a pure function of the frames it
receives, computed with sorts and ``np.searchsorted`` over whole tables (no loop per snapshot or
customer). Called for one snapshot with the rows ``customer_rows`` selects (the customer's own
orders, account events and labels, plus the rows that define its links: other customers on the
same devices or sharing a phone, address or e-mail) it returns exactly the batch row: counts
are integers and USD sums are accumulated in integer units of 1/100 cent, so no rounding depends
on which other rows were in the batch. Without the link rows, only the link columns differ.

Target definition (``customer_targets``), and why it departs from "seller of one bad order". A
customer is bad when, from labels known before the cut-off:

- a customer label in ``BAD_CUSTOMER_LABELS`` (money_laundering, synthetic_identity,
  sanctioned) is known, whenever it arrives relative to ``as_of`` (that is what we predict); or
- the customer is the *seller* of an order labelled ``money_laundering`` (a laundering order
  has no innocent seller), or of at least ``seller_min_bad`` (default 3) orders labelled
  ``fraud`` or ``money_laundering`` making up at least ``seller_min_share`` (default 0.5) of
  their sales so far: stolen-goods sellers have every sale labelled. The literal rule "seller of
  >= 1 fraud order" makes victims of sellers: account-takeover and synthetic-identity bust-out
  orders and friendly-fraud chargebacks land on ordinary sellers. On the seed-7 data card data
  set (3,000 customers) 185 sellers have a fraud or laundering label on a sale; 19 are
  stolen-goods sellers or ring companies (every sale labelled), the other 166 are honest sellers
  whose share is at most 17%. ``seller_min_bad=1, seller_min_share=0`` restores the literal
  rule; or
- the customer is the *buyer* of an order labelled ``money_laundering`` (ring members, mules) or
  ``restricted_goods``.

The buyer of a plain ``fraud`` order is *not* bad: account-takeover victims are victims (their
bust-out orders are labelled fraud, the customer is not). A later ``legitimate`` label clears
nothing: a confirmed bad outcome stays bad; ``legitimate`` known before ``as_of`` is the feature
``customer_legitimate_known`` (reviewed and found OK).

``pep`` and ``kyc_refresh_required`` are review outcomes, not bad: ``customer_review_targets``.
Recommended use in the tier policy: PEP status is a fact from screening, not a prediction, so a
PEP match is medium (enhanced due diligence) by rule, never ``report`` (the current
``WATCHLIST_CONFIRMED`` rule must fire on sanctions hits only); an outgrown KYC profile is medium
("ask for documents") by a transparent rule on ``customer_volume_vs_declared`` (e.g. >= 2) or by
a second, review model trained on ``customer_review_targets`` whose tier is capped at medium; the
final tier is the maximum of the bad-customer model's tier, the review tier and the hard rules.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from features.assemble import SCREEN_COLUMNS, party_profiles
from features.contracts import BAD_TRANSACTION_LABELS
from features.definitions import Reference, compute_row_features
from features.definitions.history_reasons import ACCOUNT_EVENT_NOUNS
from features.profile import party_reasons
from features.reasons import (
    SINCE_LAST_UNIT_SECONDS,
    FeatureReason,
    as_int,
    binary,
    count,
    duration,
    money,
    share,
)
from features.reference import load_reference

__all__ = [
    "BAD_CUSTOMER_LABELS",
    "BEHAVIOURS",
    "BEHAVIOUR_COLUMNS",
    "CUSTOMER_CODES",
    "BUYER_BAD_LABELS",
    "ID_COLUMNS",
    "PARTY",
    "REVIEW_CUSTOMER_LABELS",
    "SELLER_BAD_LABELS",
    "TIME_COLUMN",
    "customer_behaviour",
    "customer_flags",
    "customer_frame",
    "customer_patterns",
    "customer_review_targets",
    "customer_rows",
    "profile_links",
    "customer_targets",
    "screen_snapshots",
    "snapshot_times",
]

PARTY = "customer"
TIME_COLUMN = "as_of"
# Keys and free-text identifiers that must never reach the model as features.
ID_COLUMNS = ("customer_id", f"{PARTY}_screen_entry_id")

BAD_CUSTOMER_LABELS = ("money_laundering", "synthetic_identity", "sanctioned")
REVIEW_CUSTOMER_LABELS = ("pep", "kyc_refresh_required")
# Labels on an order that make its seller / its buyer a bad customer (see the module docstring).
SELLER_BAD_LABELS = ("fraud", "money_laundering")
BUYER_BAD_LABELS = ("money_laundering", "restricted_goods")
# Goods-category risk classes (goods_categories.csv ``risk``) counted as high risk.
HIGH_RISK_CLASSES = ("high", "restricted")
# Account-event features: column measure -> event types counted.
EVENT_GROUPS = {
    "password_reset": ("password_reset",),
    "twofa_disabled": ("twofa_disabled",),
    "device_change": ("device_change",),
    "login_failed": ("login_failed",),
    "contact_change": ("email_change", "phone_change", "address_change"),
}
# Profile fields whose equality links two customers (known once both are onboarded).
LINK_PROFILE_COLUMNS = ("phone", "address", "email")

US_PER_DAY = 86_400_000_000
US_PER_HOUR = 3_600_000_000
WINDOW_30D = 30 * US_PER_DAY
# USD sums are accumulated as integers of this many USD (1/100 cent): exact and order-free.
AMOUNT_UNIT = 1e-4
LOG_UNIT = 1e-9
_MIN = np.iinfo(np.int64).min
_MAX = np.iinfo(np.int64).max


class Behaviour(NamedTuple):
    """One output column of ``customer_behaviour``: its meaning and its reason.

    Attributes:
        meaning: one line for the data card.
        reason: reason code, subject and sentence, said of the customer "before this decision".
    """

    meaning: str
    reason: FeatureReason


CUSTOMER_CODES = {
    "CUSTOMER_COUNTRIES": "number of countries the customer's purchases ship from",
    "CUSTOMER_VOLUME": "amount the customer bought and sold in the last 30 days",
    "CUSTOMER_VELOCITY": "time since the customer's latest order",
    "ACCOUNT_EVENTS_RECENT": "failed logins, password resets, device, 2FA and contact changes in the last 30 days",
    "LINKED_ACCOUNTS": "other customers sharing a device, phone number, address or e-mail",
    "LINKED_BAD_ACCOUNTS": "linked customers known to be bad (money laundering, synthetic identity, sanctions)",
    "REVIEWED_LEGITIMATE": "an earlier review found the customer legitimate",
}
_BEFORE = {"30d": "in the 30 days before this decision", "all": "before this decision"}
_SCOPE = {"30d": "in the past 30 days", "all": "so far"}
_LABELLED = "labelled fraud, money laundering or restricted goods"


def _role(role: str, window: str, measure: str, meaning: str) -> tuple[str, Behaviour]:
    """A behaviour column of the customer as buyer or seller: ``{role}_{measure}_{window}``."""
    verb, noun = ("placed", "purchases") if role == "buyer" else ("received", "sales")
    orders, when, scope = f"orders as a {role}", _BEFORE.get(window, ""), _SCOPE.get(window, "")
    reasons = {
        "txn_count": FeatureReason(
            f"{role.upper()}_VELOCITY",
            f"the number of {orders} {when}",
            lambda v, raw: f"the customer {verb} {count(v, f'order as a {role}', orders)} {when}",
        ),
        "amount_sum": FeatureReason(
            f"{role.upper()}_AMOUNT_VELOCITY",
            f"the amount of the customer's {noun} {when}",
            lambda v, raw: f"the customer's {noun} {when} add up to {money(v)}",
        ),
        "crossborder_mean": FeatureReason(
            "CROSS_BORDER",
            f"the share of the customer's cross-border {noun} {scope}",
            share(f"the customer's {noun} {scope} crossed a border"),
        ),
        "highrisk_mean": FeatureReason(
            "RISKY_GOODS",
            f"the share of high-risk goods in the customer's {noun} {scope}",
            share(f"the customer's {noun} {scope} were high-risk or restricted goods"),
        ),
        "fraud_count": FeatureReason(
            f"{role.upper()}_FRAUD_RATE",
            f"the number of the customer's {noun} {_LABELLED}",
            lambda v, raw: (
                f"{count(v, noun[:-1], noun)} of the customer {'was' if as_int(v) == 1 else 'were'} {_LABELLED} "
                "(labels known before this decision)"
            ),
        ),
        "fraud_rate": FeatureReason(
            f"{role.upper()}_FRAUD_RATE",
            f"the share of the customer's {noun} {_LABELLED}",
            share(f"the customer's {noun} were {_LABELLED} (labels known before this decision)"),
        ),
    }
    return f"{role}_{measure}_{window}", Behaviour(meaning, reasons[measure])


def _say(code: str, subject: str, sentence: str) -> FeatureReason:
    """A reason whose sentence puts the value into ``sentence`` at ``{n}`` (an integer count)."""
    return FeatureReason(code, subject, lambda v, raw: sentence.format(n=f"{as_int(v):,}"))


def _countries(code: str, subject: str, lead: str, tail: str = "") -> FeatureReason:
    return FeatureReason(code, subject, lambda v, raw: f"{lead} {count(v, 'country', 'countries')}{tail}")


def _price(v: Any, raw: Mapping[str, Any]) -> str:
    ratio = math.exp(float(v))
    lead = "the customer's sales in the past 30 days were priced"
    if ratio < 0.95:
        return f"{lead} {100 * (1 - ratio):.0f}% below the category reference prices on average"
    if ratio > 1.05:
        return f"{lead} {100 * (ratio - 1):.0f}% above the category reference prices on average"
    return f"{lead} close to the category reference prices"


def _events(group: str, meaning: str) -> Behaviour:
    """An ``EVENT_GROUPS`` count over 30 days."""
    singular, plural = ACCOUNT_EVENT_NOUNS.get(
        group, ("e-mail, phone or address change", "e-mail, phone and address changes")
    )
    return Behaviour(
        meaning,
        FeatureReason(
            "ACCOUNT_EVENTS_RECENT",
            f"the number of {plural} on the customer's account in the past 30 days",
            lambda v, raw: f"{count(v, singular, plural)} on the customer's account in the past 30 days",
        ),
    )


_LINKED_BAD = "sharing a device, phone number, address or e-mail with this one"
# Output of customer_behaviour, in order: column -> meaning and reason. Every column is float64.
# Counts and sums are 0 with no history; shares, means and rates are NaN without a denominator.
BEHAVIOURS: dict[str, Behaviour] = dict(
    [
        _role("buyer", "30d", "txn_count", "orders the customer placed as buyer in the 30 days before as_of"),
        _role(
            "buyer",
            "all",
            "txn_count",
            "orders the customer placed as buyer before as_of (all history given)",
        ),
        _role("buyer", "30d", "amount_sum", "USD amount of those orders, 30 days"),
        _role("buyer", "all", "amount_sum", "USD amount of those orders, all history"),
        (
            "buyer_seller_nunique_30d",
            Behaviour(
                "distinct sellers bought from, 30 days",
                _say(
                    "FAN_OUT",
                    "the number of different sellers the customer bought from in the past 30 days",
                    "the customer bought from {n} different sellers in the past 30 days",
                ),
            ),
        ),
        (
            "buyer_sellercountry_nunique_30d",
            Behaviour(
                "distinct seller (ship-from) countries bought from, 30 days",
                _countries(
                    "CUSTOMER_COUNTRIES",
                    "the number of countries the customer's purchases shipped from in the past 30 days",
                    "the customer's purchases in the past 30 days shipped from",
                ),
            ),
        ),
        (
            "buyer_ipcountry_nunique_30d",
            Behaviour(
                "distinct IP countries the customer ordered from, 30 days",
                _countries(
                    "MANY_IP_COUNTRIES",
                    "the number of IP countries the customer ordered from in the past 30 days",
                    "the customer ordered from IP addresses in",
                    " in the past 30 days",
                ),
            ),
        ),
        _role(
            "buyer",
            "30d",
            "crossborder_mean",
            "share of purchases shipped across a border, 30 days (NaN: none with known countries)",
        ),
        _role("buyer", "all", "crossborder_mean", "share of purchases shipped across a border, all history"),
        _role(
            "buyer",
            "30d",
            "highrisk_mean",
            "share of purchases in high-risk or restricted goods categories, 30 days (NaN: none)",
        ),
        _role(
            "buyer",
            "all",
            "highrisk_mean",
            "share of purchases in high-risk or restricted goods categories, all history",
        ),
        (
            "buyer_restricted_count_all",
            Behaviour(
                "purchases in restricted goods categories (drug precursors), all history",
                FeatureReason(
                    "RISKY_GOODS",
                    "the number of the customer's purchases of restricted goods",
                    lambda v, raw: (
                        "the customer bought restricted goods (such as drug precursors) "
                        f"{count(v, 'time', 'times')} before this decision"
                    ),
                ),
            ),
        ),
        _role(
            "buyer",
            "all",
            "fraud_count",
            "purchases with a fraud/money_laundering/restricted_goods label known before as_of",
        ),
        _role(
            "buyer", "all", "fraud_rate", "buyer_fraud_count_all / buyer_txn_count_all (NaN: no purchases)"
        ),
        _role("seller", "30d", "txn_count", "orders the customer received as seller, 30 days"),
        _role("seller", "all", "txn_count", "orders the customer received as seller, all history"),
        _role("seller", "30d", "amount_sum", "USD amount of those sales, 30 days"),
        _role("seller", "all", "amount_sum", "USD amount of those sales, all history"),
        (
            "seller_buyer_nunique_30d",
            Behaviour(
                "distinct buyers sold to, 30 days",
                _say(
                    "FAN_IN",
                    "the number of different buyers the customer sold to in the past 30 days",
                    "the customer sold to {n} different buyers in the past 30 days",
                ),
            ),
        ),
        (
            "seller_buyercountry_nunique_30d",
            Behaviour(
                "distinct buyer (ship-to) countries sold to, 30 days",
                _countries(
                    "SELLER_BUYER_COUNTRIES",
                    "the number of countries the customer's sales shipped to in the past 30 days",
                    "the customer's sales in the past 30 days shipped to",
                ),
            ),
        ),
        _role(
            "seller",
            "30d",
            "crossborder_mean",
            "share of sales shipped across a border, 30 days (NaN: none with known countries)",
        ),
        _role("seller", "all", "crossborder_mean", "share of sales shipped across a border, all history"),
        _role(
            "seller",
            "30d",
            "highrisk_mean",
            "share of sales in high-risk or restricted goods categories, 30 days (NaN: none)",
        ),
        _role(
            "seller",
            "all",
            "highrisk_mean",
            "share of sales in high-risk or restricted goods categories, all history",
        ),
        (
            "seller_logpricetoref_mean_30d",
            Behaviour(
                "mean natural log of unit price / category reference price over sales, 30 days "
                "(negative: cheap; NaN: none)",
                FeatureReason(
                    "PRICE_BELOW_REFERENCE",
                    "the customer's sale prices against the category reference prices in the past 30 days",
                    _price,
                ),
            ),
        ),
        _role(
            "seller",
            "all",
            "fraud_count",
            "sales with a fraud/money_laundering/restricted_goods label known before as_of",
        ),
        _role("seller", "all", "fraud_rate", "seller_fraud_count_all / seller_txn_count_all (NaN: no sales)"),
        (
            "customer_amount_sum_30d",
            Behaviour(
                "USD amount bought plus sold, 30 days (PartyProfileFeatures reads it for volume_vs_declared)",
                FeatureReason(
                    "CUSTOMER_VOLUME",
                    "the customer's volume bought and sold in the past 30 days",
                    lambda v, raw: (
                        f"the customer bought and sold {money(v)} in the 30 days before this decision"
                    ),
                ),
            ),
        ),
        (
            "customer_volume_vs_declared",
            Behaviour(
                "customer_amount_sum_30d / declared monthly volume (NaN: nothing declared, or 0)",
                # PartyProfileFeatures recomputes this column with the same formula: its reason.
                party_reasons(PARTY, "this decision")["volume_vs_declared"],
            ),
        ),
        (
            "customer_txn_since_last_all",
            Behaviour(
                "hours since the customer's latest order as buyer or seller (NaN: none yet)",
                FeatureReason(
                    "CUSTOMER_VELOCITY",
                    "the time since the customer's latest order",
                    lambda v, raw: (
                        f"the customer's latest order was {duration(float(v) * SINCE_LAST_UNIT_SECONDS)} "
                        "before this decision"
                    ),
                ),
            ),
        ),
        ("customer_password_reset_count_30d", _events("password_reset", "password resets, 30 days")),
        (
            "customer_twofa_disabled_count_30d",
            _events("twofa_disabled", "2FA deactivations, 30 days"),
        ),
        ("customer_device_change_count_30d", _events("device_change", "device changes, 30 days")),
        ("customer_login_failed_count_30d", _events("login_failed", "failed logins, 30 days")),
        (
            "customer_contact_change_count_30d",
            _events("contact_change", "e-mail, phone and address changes, 30 days"),
        ),
        (
            "customer_device_nunique_all",
            Behaviour(
                "distinct devices seen on the account (purchases and account events), all history",
                FeatureReason(
                    "MANY_DEVICES",
                    "the number of devices used on the customer's account",
                    lambda v, raw: (
                        f"{count(v, 'device', 'different devices')} used on the customer's account before this decision"
                    ),
                ),
            ),
        ),
        (
            "customer_linked_nunique_all",
            Behaviour(
                "distinct other customers linked by a shared device, phone, address or e-mail, as known at as_of",
                FeatureReason(
                    "LINKED_ACCOUNTS",
                    "the number of other customers sharing a device, phone number, address or e-mail with this one",
                    lambda v, raw: (
                        "the customer shares a device, phone number, address or e-mail with "
                        f"{count(v, 'other customer', 'other customers')}"
                    ),
                ),
            ),
        ),
        (
            "customer_linked_bad_count_all",
            Behaviour(
                "of those, customers with a bad customer label (BAD_CUSTOMER_LABELS) known before as_of",
                FeatureReason(
                    "LINKED_BAD_ACCOUNTS",
                    "the number of linked customers known to be bad",
                    lambda v, raw: (
                        f"{count(v, 'customer', 'customers')} {_LINKED_BAD} "
                        f"{'is' if as_int(v) == 1 else 'are'} known bad (money laundering, synthetic identity or sanctions)"
                    ),
                ),
            ),
        ),
        (
            "customer_legitimate_known",
            Behaviour(
                "1 when a 'legitimate' customer label (reviewed, found OK) was known before as_of, else 0",
                FeatureReason(
                    "REVIEWED_LEGITIMATE",
                    "whether an earlier review found the customer legitimate",
                    binary(
                        "an earlier review found the customer legitimate",
                        "no earlier review has cleared the customer",
                    ),
                ),
            ),
        ),
    ]
)
BEHAVIOUR_COLUMNS: dict[str, str] = {name: b.meaning for name, b in BEHAVIOURS.items()}

_TX_COLUMNS = (
    "transaction_id",
    "occurred_at",
    "buyer_id",
    "seller_id",
    "amount",
    "currency",
    "goods_category",
    "unit_price",
    "buyer_country",
    "seller_country",
    "device_id",
    "ip_country",
)
_EVENT_COLUMNS = ("customer_id", "occurred_at", "event_type", "device_id")
_LABEL_COLUMNS = ("entity_type", "entity_id", "label", "known_at")


# --- small helpers ----------------------------------------------------------------------------


def _us(values: Any, name: str, allow_null: bool = False) -> np.ndarray:
    """Timestamps (tz-aware, or naive meaning UTC) as int64 microseconds since the epoch."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(s.dtype):
        s = pd.to_datetime(s, utc=True)
    elif s.dt.tz is not None:
        s = s.dt.tz_convert("UTC").dt.tz_localize(None)
    arr = s.to_numpy(dtype="datetime64[us]")
    null = np.isnat(arr)
    if null.any() and not allow_null:
        raise ValueError(f"{name} has {int(null.sum())} null timestamps")
    return arr.astype(np.int64)  # NaT -> int64 min


def _utc_scalar(value: Any, name: str) -> int:
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError(f"{name} is missing")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.tz_localize(None).to_datetime64().astype("datetime64[us]").astype(np.int64))


def _require(frame: pd.DataFrame, columns: Iterable[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{table} is missing columns {missing}")


def _text(values: pd.Series) -> pd.Series:
    """Ids as text (the contract's type; an adapter may hand over integers), nulls kept."""
    return values.astype("str")


def _factorize(*columns: pd.Series) -> tuple[list[np.ndarray], pd.Index]:
    """One integer code per distinct value across ``columns`` (-1 for null), in one hashing pass.

    Returns:
        The codes of each column (int64 arrays, in order) and the distinct values.
    """
    parts = [_text(c).reset_index(drop=True) for c in columns]
    lengths = [len(p) for p in parts]
    if not sum(lengths):
        return [np.zeros(0, dtype=np.int64) for _ in parts], pd.Index([], dtype="str")
    codes, uniques = pd.factorize(pd.concat(parts, ignore_index=True))
    split = np.split(np.asarray(codes, dtype=np.int64), np.cumsum(lengths)[:-1])
    return split, pd.Index(uniques)


class _Timeline:
    """Events of many entities sorted by (entity, time), answering "how many before t" by searchsorted.

    Every event gets one int64 key ``entity * span + offset`` and the keys are sorted once; the
    events of entity ``c`` with time ``< t`` are exactly those with a key below
    ``c * span + offset(t)``. The offset is the time itself (relative to the earliest event)
    when the time range times the number of entities fits in int64, otherwise the time's rank
    among the event times (same order, so the same answers).

    Args:
        entity: entity code of each event (-1: no entity, the event is ignored).
        times: event times (int64 µs).
        n_entities: an upper bound of every entity code, events' and queries'.
    """

    def __init__(self, entity: np.ndarray, times: np.ndarray, n_entities: int):
        entity = np.asarray(entity, dtype=np.int64)
        times = np.asarray(times, dtype=np.int64)
        valid = entity >= 0
        keep = None
        if not valid.all():
            keep = np.flatnonzero(valid)
            entity, times = entity[keep], times[keep]
        self.first = int(times.min()) if len(times) else 0
        self.last = int(times.max()) if len(times) else 0
        width = self.last - self.first + 3
        self.direct = (int(n_entities) + 1) * width < 2**62
        if self.direct:
            self.span = np.int64(width)
            offset = times - self.first + 1
        else:
            self.sorted_times = np.sort(times)
            self.span = np.int64(len(times) + 1)
            offset = np.searchsorted(self.sorted_times, times, side="left")
        keys = entity * self.span + offset
        order = np.argsort(keys)
        self.keys = keys[order]
        self.order = order if keep is None else keep[order]
        self._times, self._sorted = times, order

    @property
    def times(self) -> np.ndarray:
        """Event times in sorted order."""
        return self._times[self._sorted]

    def __len__(self) -> int:
        return len(self.keys)

    def _offset(self, t: np.ndarray, inclusive: bool) -> np.ndarray:
        if self.direct:
            # clip first: queries may lie far outside the events' range (no overflow, same answer)
            rel = np.clip(t, self.first - 1, self.last + 1) - self.first + 1
            return rel + 1 if inclusive else rel
        return np.searchsorted(self.sorted_times, t, side="right" if inclusive else "left")

    def position(self, entity: np.ndarray, t: np.ndarray, inclusive: bool = False) -> np.ndarray:
        """Index into the sorted events just past the entity's events with time < t (<= t if inclusive)."""
        return np.searchsorted(self.keys, entity * self.span + self._offset(t, inclusive), side="left")

    def start(self, entity: np.ndarray) -> np.ndarray:
        """Index of the entity's first event (its events are ``[start, position(t))``)."""
        return np.searchsorted(self.keys, entity * self.span, side="left")

    def window(self, entity: np.ndarray, t: np.ndarray, width: int | None) -> tuple[np.ndarray, np.ndarray]:
        """``[lo, hi)`` of the entity's events in ``(t - width, t)`` (``width=None``: all before t)."""
        hi = self.position(entity, t)
        if width is None:
            return self.start(entity), hi
        return self.position(entity, np.maximum(t, _MIN + width) - width, inclusive=True), hi

    def count(self, entity: np.ndarray, t: np.ndarray, width: int | None = None) -> np.ndarray:
        lo, hi = self.window(entity, t, width)
        return (hi - lo).astype(np.float64)

    def prefix(self, values: np.ndarray) -> np.ndarray:
        """Integer prefix sums of ``values`` (given in input order) in sorted order, with a leading 0."""
        return np.concatenate(([0], np.cumsum(values[self.order], dtype=np.int64)))


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator as float64, NaN where the denominator is 0."""
    den = np.asarray(denominator, dtype=np.float64)
    out = np.full(den.shape, np.nan)
    np.divide(np.asarray(numerator, dtype=np.float64), den, out=out, where=den != 0)
    return out


def _sorted_pairs(
    entity: np.ndarray, value: np.ndarray, times: np.ndarray, n_entities: int, n_values: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Occurrences of (entity, value) sorted by entity, value, time; and where each pair starts."""
    keep = (entity >= 0) & (value >= 0)
    entity, value, times = entity[keep], value[keep], times[keep]
    if (int(n_entities) + 1) * (int(n_values) + 1) < 2**62:
        pair = entity * np.int64(n_values + 1) + value
        n_pairs = (n_entities + 1) * (n_values + 1)
    else:
        pair, _ = pd.factorize(pd.MultiIndex.from_arrays([entity, value]))
        n_pairs = int(pair.max()) + 1 if len(pair) else 0
    order = _Timeline(np.asarray(pair, dtype=np.int64), times, n_pairs).order
    entity, value, times = entity[order], value[order], times[order]
    new_pair = np.ones(len(times), dtype=bool)
    new_pair[1:] = (entity[1:] != entity[:-1]) | (value[1:] != value[:-1])
    return entity, value, times, new_pair


def _distinct_count(entity, value, times, n_entities: int, n_values: int, q_entity, q_t, width: int | None):
    """Distinct values per entity over ``(t - width, t)`` (``None``: before t), for every query.

    The occurrences of each (entity, value) are merged into open intervals of query time where
    the value is in the window: an occurrence at ``e`` is in the window of ``t`` iff
    ``e < t < e + width``; consecutive occurrences less than ``width`` apart overlap. The
    distinct count at ``t`` is then #(interval starts < t) - #(interval ends <= t).
    """
    entity, value, times, new_pair = _sorted_pairs(entity, value, times, n_entities, n_values)
    if width is None:
        return _Timeline(entity[new_pair], times[new_pair], n_entities).count(q_entity, q_t)
    starts = new_pair.copy()
    starts[1:] |= times[1:] >= times[:-1] + width
    # a segment ends at (its last occurrence + width): the occurrence before the next start
    last = np.ones(len(times), dtype=bool)
    last[:-1] = starts[1:]
    begins = _Timeline(entity[starts], times[starts], n_entities)
    ends = _Timeline(entity[last], times[last] + width, n_entities)
    opened = begins.position(q_entity, q_t) - begins.start(q_entity)
    closed = ends.position(q_entity, q_t, inclusive=True) - ends.start(q_entity)
    return (opened - closed).astype(np.float64)


def _first_use(entity, value, times, n_entities: int, n_values: int) -> pd.DataFrame:
    """Earliest time of each (customer, key) pair; columns ``c``, ``k``, ``t``."""
    entity, value, times, new_pair = _sorted_pairs(entity, value, times, n_entities, n_values)
    return pd.DataFrame({"c": entity[new_pair], "k": value[new_pair], "t": times[new_pair]})


def _pairs(first: pd.DataFrame, max_group: int) -> pd.DataFrame:
    """Link pairs ``(c, other, t)`` of customers sharing a key, ``t`` = when both had it.

    Per key only the first ``max_group`` customers (by first time, then code) are linked: a key
    shared by hundreds of accounts would make the self-join quadratic, and keeping the *first*
    ones keeps the result point in time (a later user cannot change who came first).
    """
    shared = first[first.duplicated("k", keep=False)]
    if shared.empty:
        return pd.DataFrame({"c": [], "other": [], "t": []}, dtype=np.int64)
    shared = shared.sort_values(["k", "t", "c"], kind="stable")
    shared = shared[shared.groupby("k", sort=False).cumcount() < max_group]
    joined = shared.merge(shared, on="k", suffixes=("", "_o"))
    joined = joined[joined["c"] != joined["c_o"]]
    return pd.DataFrame(
        {
            "c": joined["c"].to_numpy(),
            "other": joined["c_o"].to_numpy(),
            "t": np.maximum(joined["t"].to_numpy(), joined["t_o"].to_numpy()),
        }
    )


def _label_times(labels: pd.DataFrame, entity_type: str, wanted: Iterable[str], ids: pd.Series) -> np.ndarray:
    """Earliest ``known_at`` (µs) of a label in ``wanted`` about each of ``ids``; int64 max when none."""
    out = np.full(len(ids), _MAX, dtype=np.int64)
    rel = labels[(labels["entity_type"] == entity_type) & labels["label"].isin(list(wanted))]
    if rel.empty or not len(ids):
        return out
    known = pd.Series(_us(rel["known_at"], "labels.known_at"), index=_text(rel["entity_id"]).to_numpy())
    first = known.groupby(level=0).min()
    text = _text(ids)
    hit = text.isin(first.index).to_numpy()
    out[hit] = first.reindex(text[hit].to_numpy()).to_numpy()
    return out


def _by_id(customers: pd.DataFrame) -> pd.DataFrame:
    """The customers table indexed by its ids as text (first row of a duplicated id)."""
    unique = customers.drop_duplicates("customer_id")
    return unique.set_index(pd.Index(_text(unique["customer_id"]), name="customer_id"), drop=False)


def _check_snapshots(snapshots: pd.DataFrame) -> np.ndarray:
    _require(snapshots, ("customer_id", TIME_COLUMN), "snapshots")
    if snapshots["customer_id"].isna().any():
        raise ValueError("snapshots have null customer_id values")
    return _us(snapshots[TIME_COLUMN], f"snapshots.{TIME_COLUMN}")


# --- 1. snapshots -----------------------------------------------------------------------------


def snapshot_times(
    customers: pd.DataFrame, start: Any, end: Any, every: str | pd.Timedelta = "30D"
) -> pd.DataFrame:
    """Point-in-time snapshots of every customer: at onboarding, then at regular dates.

    Snapshots are taken in ``[start, end)``:

    - at onboarding: ``as_of = onboarded_at + 1 µs``, right after onboarding with no behaviour
      yet (the onboarding decision), for customers onboarded in ``[start, end)``;
    - at the regular dates ``start + k * every`` for ``k = 1, 2, ...`` before ``end``, for every
      customer onboarded strictly before the date. The grid starts one period after ``start`` so
      that every regular snapshot has at least ``every`` of history inside the period (a
      snapshot at ``start`` would see no behaviour from anybody when the data begin there).

    Customers stay in the grid until ``end``: the contract has no closing date (a frozen account
    simply shows no activity).

    Args:
        customers: the ``customers`` table (``customer_id``, ``onboarded_at``).
        start: first instant of the snapshot period (naive means UTC).
        end: end of the period (exclusive).
        every: spacing of the regular dates (``"30D"``, ``"7D"`` or a Timedelta).

    Returns:
        DataFrame with ``customer_id`` (str) and ``as_of`` (``datetime64[us, UTC]``), sorted by
        ``as_of`` then ``customer_id``, with a fresh RangeIndex; no duplicate rows.

    Raises:
        ValueError: missing columns, ``start >= end`` or a non-positive ``every``.
    """
    _require(customers, ("customer_id", "onboarded_at"), "customers")
    t0, t1 = _utc_scalar(start, "start"), _utc_scalar(end, "end")
    step = pd.Timedelta(every)
    if t0 >= t1:
        raise ValueError(f"start {start} is not before end {end}")
    if step <= pd.Timedelta(0):
        raise ValueError(f"every must be positive, got {every}")
    step_us = int(step // pd.Timedelta(microseconds=1))
    ids = _text(customers["customer_id"]).to_numpy()
    onboarded = _us(customers["onboarded_at"], "customers.onboarded_at")
    at_onboarding = onboarded + 1
    keep = (at_onboarding >= t0) & (at_onboarding < t1)
    parts_id = [ids[keep]]
    parts_t = [at_onboarding[keep]]
    grid = np.arange(t0 + step_us, t1, step_us, dtype=np.int64)
    for date in grid:
        active = onboarded < date
        parts_id.append(ids[active])
        parts_t.append(np.full(int(active.sum()), date, dtype=np.int64))
    frame = pd.DataFrame(
        {
            "customer_id": pd.array(np.concatenate(parts_id), dtype="str"),
            TIME_COLUMN: pd.to_datetime(np.concatenate(parts_t).astype("datetime64[us]"), utc=True),
        }
    )
    frame = frame.drop_duplicates().sort_values([TIME_COLUMN, "customer_id"], kind="stable")
    return frame.reset_index(drop=True)


# --- 2. behaviour -----------------------------------------------------------------------------


def customer_behaviour(
    snapshots: pd.DataFrame,
    transactions: pd.DataFrame,
    account_events: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    customers: pd.DataFrame,
    max_link_group: int = 100,
    reference: Reference | None = None,
) -> pd.DataFrame:
    """Behaviour of each snapshot's customer before ``as_of``, as buyer, as seller and as an account.

    Point in time: only orders and account events with ``occurred_at < as_of`` and labels with
    ``known_at < as_of``; 30-day windows are ``(as_of - 30 days, as_of)``; ``all`` means all
    history in the frames given. USD amounts come from ``features.definitions``' row function
    ``amount_usd`` (committed FX table). Vectorised: one sort per event stream and
    ``np.searchsorted`` per window, no loop over snapshots or customers.

    A pure function of its inputs: for one customer at serving time pass the rows
    ``customer_rows`` selects and the result equals the batch row.

    Args:
        snapshots: ``customer_id``, ``as_of`` (e.g. ``snapshot_times``); not modified.
        transactions: ``transactions`` rows (contract columns ``transaction_id``, ``occurred_at``,
            ``buyer_id``, ``seller_id``, ``amount``, ``currency``, ``goods_category``,
            ``unit_price``, ``buyer_country``, ``seller_country``, ``device_id``,
            ``ip_country``).
        account_events: ``account_events`` rows (``customer_id``, ``occurred_at``,
            ``event_type``, ``device_id``); may be empty.
        labels: ``labels`` rows (``entity_type``, ``entity_id``, ``label``, ``known_at``); may be
            empty.
        customers: the ``customers`` table: declared monthly volume of the snapshot's customer,
            and ``onboarded_at`` / phone / address / e-mail of everybody for profile links. Keyword
            only and required: without it two columns would silently be empty.
        max_link_group: a device, phone, address or e-mail links only its first this-many users
            (by first use): keeps the pair join small and point in time.
        reference: FX and category reference lookups (default: the committed tables).

    Returns:
        One row per snapshot, in order and with the index of ``snapshots``; every column is
        float64. Counts and sums are 0 with no history; shares, means and rates are NaN without a
        denominator. Columns (``BEHAVIOUR_COLUMNS`` holds the same list with these meanings):

        - ``buyer_txn_count_30d`` / ``buyer_txn_count_all``: orders placed as buyer, 30 days / all;
        - ``buyer_amount_sum_30d`` / ``buyer_amount_sum_all``: their USD amount;
        - ``buyer_seller_nunique_30d``: distinct sellers bought from, 30 days;
        - ``buyer_sellercountry_nunique_30d``: distinct ship-from countries, 30 days;
        - ``buyer_ipcountry_nunique_30d``: distinct IP countries of the purchases, 30 days;
        - ``buyer_crossborder_mean_30d`` / ``_all``: share of cross-border purchases (among those
          with both countries known);
        - ``buyer_highrisk_mean_30d`` / ``_all``: share of purchases in goods categories of risk
          ``high`` or ``restricted`` (goods_categories.csv);
        - ``buyer_restricted_count_all``: purchases in ``restricted`` categories;
        - ``buyer_fraud_count_all``: purchases with a bad transaction label
          (``BAD_TRANSACTION_LABELS``) known before ``as_of``; ``buyer_fraud_rate_all``: that over
          ``buyer_txn_count_all``;
        - ``seller_txn_count_30d`` / ``_all``, ``seller_amount_sum_30d`` / ``_all``: the same for
          sales;
        - ``seller_buyer_nunique_30d``: distinct buyers; ``seller_buyercountry_nunique_30d``:
          distinct ship-to countries, 30 days;
        - ``seller_crossborder_mean_30d`` / ``_all``, ``seller_highrisk_mean_30d`` / ``_all``: shares
          of sales;
        - ``seller_logpricetoref_mean_30d``: mean ``ln(unit price in USD / category reference
          price)`` of sales, 30 days (stolen goods sell far below the reference);
        - ``seller_fraud_count_all`` / ``seller_fraud_rate_all``: sales with a known bad label;
        - ``customer_amount_sum_30d``: USD bought plus sold, 30 days;
        - ``customer_volume_vs_declared``: that over ``declared_monthly_volume_usd`` (NaN when
          nothing or 0 was declared): outgrown KYC;
        - ``customer_txn_since_last_all``: hours since the latest order in either role;
        - ``customer_{password_reset,twofa_disabled,device_change,login_failed,contact_change}_count_30d``:
          account events of those types in 30 days (contact change: e-mail, phone or address);
        - ``customer_device_nunique_all``: distinct devices on purchases and account events;
        - ``customer_linked_nunique_all``: distinct other customers sharing a device (both used it
          before ``as_of``) or a phone, address or e-mail (both onboarded before ``as_of``);
        - ``customer_linked_bad_count_all``: linked customers with a bad customer label
          (``BAD_CUSTOMER_LABELS``) known before ``as_of``;
        - ``customer_legitimate_known``: 1 when a ``legitimate`` customer label was known before
          ``as_of``.

    Raises:
        ValueError: missing columns, null times or ids, or a snapshot customer missing from
            ``customers``.
    """
    q_t = _check_snapshots(snapshots)
    _require(transactions, _TX_COLUMNS, "transactions")
    _require(account_events, _EVENT_COLUMNS, "account_events")
    _require(labels, _LABEL_COLUMNS, "labels")
    _require(customers, ("customer_id", "onboarded_at", "declared_monthly_volume_usd"), "customers")
    reference = reference or Reference()
    cust = _by_id(customers)
    q_ids = _text(snapshots["customer_id"])
    unknown = ~q_ids.isin(cust.index)
    if unknown.any():
        raise ValueError(
            f"{int(unknown.sum())} snapshots name a customer missing from customers (e.g. {q_ids[unknown].iloc[0]!r})"
        )

    (q_c, cust_c, buyer, seller, ev_c), customer_ids = _factorize(
        snapshots["customer_id"],
        cust["customer_id"],
        transactions["buyer_id"],
        transactions["seller_id"],
        account_events["customer_id"],
    )
    n_c = len(customer_ids)
    occurred = _us(transactions["occurred_at"], "transactions.occurred_at")
    out: dict[str, np.ndarray] = {}

    # Row-level values of every order, from the shared row functions of features.definitions.
    inputs = {
        "amount": transactions["amount"].to_numpy(dtype=float),
        "currency": transactions["currency"].to_numpy(dtype=object),
        "unit_price": transactions["unit_price"].to_numpy(dtype=float),
        "goods_category": transactions["goods_category"].to_numpy(dtype=object),
        "buyer_country": transactions["buyer_country"].to_numpy(dtype=object),
        "seller_country": transactions["seller_country"].to_numpy(dtype=object),
    }
    rows = compute_row_features(["amount_usd", "cross_border", "unit_price_to_reference"], inputs, reference)
    amount_units = np.rint(rows["amount_usd"] / AMOUNT_UNIT).astype(np.int64)
    cross = rows["cross_border"]
    cross_known = (~np.isnan(cross)).astype(np.int64)
    cross_yes = np.nan_to_num(cross, nan=0.0).astype(np.int64)
    goods = load_reference("goods_categories")
    category_code, categories = pd.factorize(_text(transactions["goods_category"]))
    risk = pd.Series(goods["risk"].to_numpy(), index=goods["category"].to_numpy()).reindex(
        np.asarray(categories)
    )
    high = np.append(risk.isin(HIGH_RISK_CLASSES).to_numpy(), False)[category_code].astype(np.int64)
    restricted = np.append(risk.eq("restricted").fillna(False).to_numpy(dtype=bool), False)[category_code]
    restricted = restricted.astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_price = np.log(rows["unit_price_to_reference"])
    price_known = np.isfinite(log_price)
    log_units = np.rint(np.where(price_known, log_price, 0.0) / LOG_UNIT).astype(np.int64)

    # Bad transaction labels known before as_of: an order counts from max(occurred, known).
    bad_known = _label_times(labels, "transaction", BAD_TRANSACTION_LABELS, transactions["transaction_id"])
    is_bad = bad_known < _MAX
    bad_from = np.maximum(occurred[is_bad], bad_known[is_bad])

    country, country_values = _factorize(
        transactions["buyer_country"], transactions["seller_country"], transactions["ip_country"]
    )
    country = dict(zip(("buyer_country", "seller_country", "ip_country"), country, strict=True))
    n_country = len(country_values)

    for role, party, other, other_country in (
        ("buyer", buyer, seller, "seller_country"),
        ("seller", seller, buyer, "buyer_country"),
    ):
        tl = _Timeline(party, occurred, n_c)
        amount, known, yes = tl.prefix(amount_units), tl.prefix(cross_known), tl.prefix(cross_yes)
        risky = tl.prefix(high)
        for window, width in (("30d", WINDOW_30D), ("all", None)):
            lo, hi = tl.window(q_c, q_t, width)
            out[f"{role}_txn_count_{window}"] = (hi - lo).astype(np.float64)
            out[f"{role}_amount_sum_{window}"] = (amount[hi] - amount[lo]) * AMOUNT_UNIT
            out[f"{role}_crossborder_mean_{window}"] = _ratio(yes[hi] - yes[lo], known[hi] - known[lo])
            out[f"{role}_highrisk_mean_{window}"] = _ratio(risky[hi] - risky[lo], hi - lo)
            if role == "buyer" and window == "all":
                r = tl.prefix(restricted)
                out["buyer_restricted_count_all"] = (r[hi] - r[lo]).astype(np.float64)
            if role == "seller" and window == "30d":
                s, k = tl.prefix(log_units), tl.prefix(price_known.astype(np.int64))
                out["seller_logpricetoref_mean_30d"] = _ratio((s[hi] - s[lo]) * LOG_UNIT, k[hi] - k[lo])
        counterpart = "seller" if role == "buyer" else "buyer"
        out[f"{role}_{counterpart}_nunique_30d"] = _distinct_count(
            party, other, occurred, n_c, n_c, q_c, q_t, WINDOW_30D
        )
        out[f"{role}_{other_country.replace('_', '')}_nunique_30d"] = _distinct_count(
            party, country[other_country], occurred, n_c, n_country, q_c, q_t, WINDOW_30D
        )
        if role == "buyer":
            out["buyer_ipcountry_nunique_30d"] = _distinct_count(
                party, country["ip_country"], occurred, n_c, n_country, q_c, q_t, WINDOW_30D
            )
        bad_count = _Timeline(party[is_bad], bad_from, n_c).count(q_c, q_t)
        out[f"{role}_fraud_count_all"] = bad_count
        out[f"{role}_fraud_rate_all"] = _ratio(bad_count, out[f"{role}_txn_count_all"])

    # Both roles together.
    out["customer_amount_sum_30d"] = out["buyer_amount_sum_30d"] + out["seller_amount_sum_30d"]
    declared = cust["declared_monthly_volume_usd"].reindex(q_ids.to_numpy()).to_numpy(dtype=float)
    out["customer_volume_vs_declared"] = _ratio(
        out["customer_amount_sum_30d"], np.where(declared > 0, declared, 0.0)
    )
    both = _Timeline(np.concatenate([buyer, seller]), np.concatenate([occurred, occurred]), n_c)
    hi, first = both.position(q_c, q_t), both.start(q_c)
    latest = both.times[np.maximum(hi - 1, 0)] if len(both) else np.zeros(len(q_t), dtype=np.int64)
    out["customer_txn_since_last_all"] = np.where(hi > first, (q_t - latest) / US_PER_HOUR, np.nan)

    # Account events per type group, 30 days: one timeline keyed by (customer, group).
    ev_t = _us(account_events["occurred_at"], "account_events.occurred_at")
    group_of = {t: i for i, types in enumerate(EVENT_GROUPS.values()) for t in types}
    type_code, types = pd.factorize(_text(account_events["event_type"]))
    groups = np.append([group_of.get(str(t), -1) for t in types], -1).astype(np.int64)[type_code]
    g = np.int64(len(EVENT_GROUPS))
    events = _Timeline(np.where((groups >= 0) & (ev_c >= 0), ev_c * g + groups, -1), ev_t, n_c * int(g))
    for i, name in enumerate(EVENT_GROUPS):
        out[f"customer_{name}_count_30d"] = events.count(q_c * g + i, q_t, WINDOW_30D)

    # Devices and links (point in time: a link exists from the moment both sides had the key).
    (tx_device, ev_device), device_values = _factorize(transactions["device_id"], account_events["device_id"])
    first_use = _first_use(
        np.concatenate([buyer, ev_c]),
        np.concatenate([tx_device, ev_device]),
        np.concatenate([occurred, ev_t]),
        n_c,
        len(device_values),
    )
    out["customer_device_nunique_all"] = _Timeline(
        first_use["c"].to_numpy(), first_use["t"].to_numpy(), n_c
    ).count(q_c, q_t)
    pairs = [_pairs(first_use, max_link_group)]
    onboarded = _us(cust["onboarded_at"], "customers.onboarded_at")
    for column in LINK_PROFILE_COLUMNS:
        if column in cust.columns:
            key, values = pd.factorize(_text(cust[column]).str.strip().str.lower())
            first = _first_use(cust_c, np.asarray(key, dtype=np.int64), onboarded, n_c, len(values))
            pairs.append(_pairs(first, max_link_group))
    links = pd.concat(pairs, ignore_index=True).groupby(["c", "other"], sort=False, as_index=False)["t"].min()
    link_c, link_other, link_t = (links[c].to_numpy(dtype=np.int64) for c in ("c", "other", "t"))
    out["customer_linked_nunique_all"] = _Timeline(link_c, link_t, n_c).count(q_c, q_t)
    all_ids = pd.Series(np.asarray(customer_ids, dtype=object))
    bad_customer = _label_times(labels, "customer", BAD_CUSTOMER_LABELS, all_ids)[link_other]
    flagged = bad_customer < _MAX
    out["customer_linked_bad_count_all"] = _Timeline(
        link_c[flagged], np.maximum(link_t[flagged], bad_customer[flagged]), n_c
    ).count(q_c, q_t)
    legit = _label_times(labels, "customer", ("legitimate",), q_ids)
    out["customer_legitimate_known"] = (legit < q_t).astype(np.float64)

    return pd.DataFrame(
        {name: np.asarray(out[name], dtype=np.float64) for name in BEHAVIOUR_COLUMNS}, index=snapshots.index
    )


def profile_links(customer_id: str, customers: pd.DataFrame) -> np.ndarray:
    """Which rows of ``customers`` are the customer or share a phone, address or e-mail with it.

    The comparison normalises as ``customer_behaviour`` does (text, stripped, lower case); a
    customer missing from ``customers`` links to nobody.

    Returns:
        A boolean mask over the rows of ``customers``.
    """
    ids = _text(customers["customer_id"])
    keep = np.asarray(ids == str(customer_id), dtype=bool)
    if keep.any():
        for column in LINK_PROFILE_COLUMNS:
            if column not in customers.columns:
                continue
            norm = customers[column].astype("str").str.strip().str.lower()
            own = set(norm[keep].dropna())
            if own:
                keep = keep | np.asarray(norm.isin(own) & norm.notna(), dtype=bool)
    return keep


def customer_rows(
    customer_id: str,
    transactions: pd.DataFrame,
    account_events: pd.DataFrame,
    labels: pd.DataFrame,
    customers: pd.DataFrame,
) -> dict[str, pd.DataFrame]:
    """The rows one customer's behaviour depends on: what serving must hand ``customer_behaviour``.

    Args:
        customer_id: the customer.
        transactions, account_events, labels, customers: the full tables (or a state store's
            view of them).

    Returns:
        ``transactions``: the customer's orders (either role) plus every order on a device the
        customer used; ``account_events``: the customer's events plus every event on those
        devices; ``labels``: labels about those orders and about the customer and every linked
        customer; ``customers``: the customer and everyone sharing a device, phone, address or
        e-mail. Without the link rows only ``customer_linked_*`` would differ from the batch.
    """
    cid = str(customer_id)
    tx_buyer, tx_seller = _text(transactions["buyer_id"]), _text(transactions["seller_id"])
    ev_customer = _text(account_events["customer_id"])
    own_tx = (tx_buyer == cid) | (tx_seller == cid)
    own_ev = ev_customer == cid
    my_devices = set(transactions.loc[(tx_buyer == cid).to_numpy(), "device_id"].dropna()) | set(
        account_events.loc[own_ev.to_numpy(), "device_id"].dropna()
    )
    tx_keep = own_tx | transactions["device_id"].isin(my_devices)
    ev_keep = own_ev | account_events["device_id"].isin(my_devices)
    linked = set(tx_buyer[tx_keep & transactions["device_id"].isin(my_devices)]) | set(
        ev_customer[ev_keep & account_events["device_id"].isin(my_devices)]
    )
    profile_keep = profile_links(cid, customers)
    linked |= set(_text(customers.loc[profile_keep, "customer_id"]))
    linked.add(cid)
    tx_ids = set(_text(transactions.loc[tx_keep.to_numpy(), "transaction_id"]))
    entity = _text(labels["entity_id"])
    label_keep = ((labels["entity_type"] == "transaction") & entity.isin(tx_ids)) | (
        (labels["entity_type"] == "customer") & entity.isin(linked)
    )
    return {
        "transactions": transactions[tx_keep.to_numpy()],
        "account_events": account_events[ev_keep.to_numpy()],
        "labels": labels[label_keep.to_numpy()],
        "customers": customers[_text(customers["customer_id"]).isin(linked).to_numpy()],
    }


# --- 3. screening and the model frame -------------------------------------------------------


def screen_snapshots(customers: pd.DataFrame, snapshots: pd.DataFrame, screener) -> pd.DataFrame:
    """Screen each snapshot's customer against the watchlist as it stood at ``as_of``.

    An entry listed after ``as_of`` is invisible to the snapshot (point in time); the same
    customer can turn from clear to hit between two snapshots when they get listed.

    Args:
        customers: the ``customers`` table (name, birth date, nationality, residence).
        snapshots: ``customer_id``, ``as_of``.
        screener: a fitted ``features.screening.WatchlistScreener``.

    Returns:
        The screener's output columns (``screen_score``, ``screen_status``, ``screen_list_type``,
        ``screen_entry_id``, ``screen_dob_match``, ...) for each snapshot, with the index of
        ``snapshots``.
    """
    _check_snapshots(snapshots)
    profiles = _by_id(customers)
    ids = _text(snapshots["customer_id"])
    if (~ids.isin(profiles.index)).any():
        raise ValueError("a snapshot names a customer missing from customers")
    names = profiles.reindex(ids).drop(columns=["customer_id"], errors="ignore")
    names.index = snapshots.index
    names[TIME_COLUMN] = snapshots[TIME_COLUMN].to_numpy()
    return screener.screen(names, as_of=TIME_COLUMN)


def customer_frame(
    customers: pd.DataFrame,
    snapshots: pd.DataFrame,
    behaviour: pd.DataFrame,
    screening: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The customer model's input frame: one row per snapshot.

    Profile columns carry the prefix ``customer_`` (``features.assemble.party_profiles(customers,
    "customer")``): the Pipeline's first step is ``PartyProfileFeatures(party="customer",
    time_column="as_of")``, which turns them into numbers at the snapshot time and drops the
    personal ones (it also recomputes ``customer_volume_vs_declared`` from
    ``customer_amount_sum_30d``, with the same formula).

    Args:
        customers: the ``customers`` table.
        snapshots: ``customer_id``, ``as_of``.
        behaviour: ``customer_behaviour(snapshots, ...)`` (same rows, same index).
        screening: ``screen_snapshots(customers, snapshots, screener)`` (same rows), or ``None``
            to leave the screening columns empty.

    Returns:
        DataFrame with a fresh RangeIndex, in snapshot order:

        - ``customer_id`` (key, never a feature: ``ID_COLUMNS``) and ``as_of`` (the time column);
        - ``customer_{column}`` for every ``features.profile.PROFILE_COLUMNS`` column (and
          ``customer_email_first_seen_at`` when present): raw profile, including the categories
          ``customer_customer_type``, ``customer_industry``, ``customer_residence_country``,
          ``customer_nationality``, ``customer_document_type``, ``customer_document_country``;
        - ``customer_role``: buyer, seller or both (category);
        - every ``BEHAVIOUR_COLUMNS`` column (float64);
        - ``customer_screen_score``, ``customer_screen_status``, ``customer_screen_list_type``,
          ``customer_screen_entry_id`` (an id: ``ID_COLUMNS``), ``customer_screen_dob_match``.

    Raises:
        ValueError: behaviour or screening not aligned with the snapshots, or unknown customers.
    """
    _check_snapshots(snapshots)
    if len(behaviour) != len(snapshots) or not behaviour.index.equals(snapshots.index):
        raise ValueError("behaviour must have one row per snapshot, with the snapshots' index")
    missing = [c for c in BEHAVIOUR_COLUMNS if c not in behaviour.columns]
    if missing:
        raise ValueError(f"behaviour is missing columns {missing}")
    ids = _text(snapshots["customer_id"])
    profiles = party_profiles(customers.drop_duplicates("customer_id"), PARTY)
    profiles.index = _text(profiles.index.to_series())
    if (~ids.isin(profiles.index)).any():
        raise ValueError(
            f"snapshots name customers missing from customers (e.g. {ids[~ids.isin(profiles.index)].iloc[0]!r})"
        )
    roles = _by_id(customers)["role"]
    parts = [
        pd.DataFrame(
            {"customer_id": ids.to_numpy(), TIME_COLUMN: snapshots[TIME_COLUMN].reset_index(drop=True)}
        ),
        profiles.reindex(ids).reset_index(drop=True),
        pd.DataFrame({f"{PARTY}_role": roles.reindex(ids).to_numpy()}),
        behaviour[list(BEHAVIOUR_COLUMNS)].reset_index(drop=True),
    ]
    if screening is not None:
        if len(screening) != len(snapshots) or not screening.index.equals(snapshots.index):
            raise ValueError("screening must have one row per snapshot, with the snapshots' index")
        parts.append(screening[list(SCREEN_COLUMNS)].add_prefix(f"{PARTY}_").reset_index(drop=True))
    else:
        parts.append(
            pd.DataFrame(
                {f"{PARTY}_{c}": pd.Series([None] * len(snapshots), dtype="object") for c in SCREEN_COLUMNS}
            )
        )
    frame = pd.concat(parts, axis=1)
    if not isinstance(frame[TIME_COLUMN].dtype, pd.DatetimeTZDtype):
        frame[TIME_COLUMN] = pd.to_datetime(frame[TIME_COLUMN], utc=True)
    return frame


def customer_flags(frame: pd.DataFrame) -> pd.DataFrame:
    """Hard-rule flags of ``training.policy.TierPolicy`` for customer snapshots.

    ``screen_confirmed`` is a *sanctions* hit only: a PEP is not reported, a PEP hit and any
    ``review`` match are ``screen_possible`` (medium, review). The document flags are read from
    ``PartyProfileFeatures(party="customer")`` output columns when the frame has them (null: the
    check was not run).

    Returns:
        DataFrame with the index of ``frame`` and columns ``screen_confirmed``,
        ``screen_possible`` (bool), ``doc_expired``, ``doc_check_digit_valid``,
        ``doc_typo_likely`` (object: True / False / None).
    """
    status = frame.get(f"{PARTY}_screen_status", pd.Series(None, index=frame.index, dtype="object"))
    lists = frame.get(f"{PARTY}_screen_list_type", pd.Series(None, index=frame.index, dtype="object"))
    hit = status.eq("hit").fillna(False).astype(bool)
    sanction = lists.eq("sanction").fillna(False).astype(bool)
    review = status.eq("review").fillna(False).astype(bool)
    flags = pd.DataFrame(
        {"screen_confirmed": hit & sanction, "screen_possible": (hit & ~sanction) | review}, index=frame.index
    )
    for flag in ("doc_expired", "doc_check_digit_valid", "doc_typo_likely"):
        column = f"{PARTY}_{flag}"
        if column in frame.columns:
            values = frame[column].astype("float64")
            flags[flag] = pd.Series(
                np.where(values.isna(), None, values == 1.0), index=frame.index, dtype="object"
            )
        else:
            flags[flag] = pd.Series(None, index=frame.index, dtype="object")
    return flags


# --- 4. targets -------------------------------------------------------------------------------


def _cutoffs(snapshots: pd.DataFrame, cutoff: Any) -> np.ndarray:
    """Per-snapshot label cut-off in µs: a scalar, one value per snapshot, or None (every label)."""
    n = len(snapshots)
    if cutoff is None:
        return np.full(n, _MAX, dtype=np.int64)
    if isinstance(cutoff, pd.Series | np.ndarray | pd.Index | list | tuple):
        values = _us(cutoff if isinstance(cutoff, pd.Series) else pd.Series(cutoff), "cutoff")
        if len(values) != n:
            raise ValueError(f"cutoff has {len(values)} values for {n} snapshots")
        return values
    return np.full(n, _utc_scalar(cutoff, "cutoff"), dtype=np.int64)


def customer_targets(
    snapshots: pd.DataFrame,
    customers: pd.DataFrame,
    transactions: pd.DataFrame,
    labels: pd.DataFrame,
    cutoff: Any,
    *,
    seller_min_bad: int = 3,
    seller_min_share: float = 0.5,
) -> pd.Series:
    """Bad-customer target per snapshot, from the labels known strictly before ``cutoff``.

    A snapshot's customer is bad (1) when, with labels known before ``cutoff``:

    - a customer label in ``BAD_CUSTOMER_LABELS`` (money_laundering, synthetic_identity,
      sanctioned) is known; or
    - as seller, one order labelled ``money_laundering``, or at least ``seller_min_bad``
      orders labelled ``fraud`` or ``money_laundering`` (``SELLER_BAD_LABELS``) making at least
      ``seller_min_share`` of the customer's sales that occurred before the cut-off (stolen
      goods; the module docstring explains why one fraud-labelled sale is not enough); or
    - as buyer, at least one order labelled ``money_laundering`` or ``restricted_goods``.

    The buyer of a plain ``fraud`` order is not bad (account-takeover victims); ``pep`` and
    ``kyc_refresh_required`` are review outcomes (``customer_review_targets``); ``legitimate``
    clears nothing. The label may arrive before or after ``as_of``: the target says what the
    customer *is*, the features what was known at ``as_of``.

    Args:
        snapshots: ``customer_id``, ``as_of``.
        customers: the ``customers`` table (every snapshot customer must be in it).
        transactions: ``transactions`` (``transaction_id``, ``occurred_at``, ``buyer_id``,
            ``seller_id``).
        labels: the labels table.
        cutoff: first moment whose labels are not used: a timestamp (naive means UTC), one
            timestamp per snapshot (e.g. ``snapshots["as_of"]`` for "already known bad at the
            snapshot"), or ``None`` for every label in the table (evaluation).
        seller_min_bad: minimum number of bad-labelled sales (1 with ``seller_min_share=0``
            gives the literal "seller of one bad order" rule).
        seller_min_share: minimum share of bad-labelled sales among the sales before the cut-off.

    Returns:
        int8 Series named ``target`` with the index of ``snapshots``.

    Raises:
        ValueError: missing columns or unknown customers.
    """
    _check_snapshots(snapshots)
    _require(customers, ("customer_id",), "customers")
    _require(transactions, ("transaction_id", "occurred_at", "buyer_id", "seller_id"), "transactions")
    _require(labels, _LABEL_COLUMNS, "labels")
    ids = _text(snapshots["customer_id"])
    known_customers = set(_text(customers["customer_id"]))
    if not ids.isin(known_customers).all():
        raise ValueError(
            f"snapshots name customers missing from customers (e.g. {ids[~ids.isin(known_customers)].iloc[0]!r})"
        )
    k = _cutoffs(snapshots, cutoff)
    (q_c, buyer, seller), customer_ids = _factorize(
        snapshots["customer_id"], transactions["buyer_id"], transactions["seller_id"]
    )
    n_c = len(customer_ids)
    bad = _label_times(labels, "customer", BAD_CUSTOMER_LABELS, ids) < k

    occurred = _us(transactions["occurred_at"], "transactions.occurred_at")
    # A sale counts once its label is known (and it occurred): from max(occurred, known_at).
    sell_known = _label_times(labels, "transaction", SELLER_BAD_LABELS, transactions["transaction_id"])
    labelled = sell_known < _MAX
    n_bad = _Timeline(seller[labelled], np.maximum(occurred[labelled], sell_known[labelled]), n_c).count(
        q_c, k
    )
    n_sales = _Timeline(seller, occurred, n_c).count(q_c, k)
    bad |= (n_bad >= max(int(seller_min_bad), 1)) & (n_bad >= float(seller_min_share) * n_sales)
    laundering = _label_times(labels, "transaction", ("money_laundering",), transactions["transaction_id"])
    labelled = laundering < _MAX
    sold = _Timeline(seller[labelled], np.maximum(occurred[labelled], laundering[labelled]), n_c)
    bad |= sold.count(q_c, k) > 0

    buy_known = _label_times(labels, "transaction", BUYER_BAD_LABELS, transactions["transaction_id"])
    labelled = buy_known < _MAX
    bought = _Timeline(buyer[labelled], np.maximum(occurred[labelled], buy_known[labelled]), n_c)
    bad |= bought.count(q_c, k) > 0
    return pd.Series(bad.astype("int8"), index=snapshots.index, name="target")


def customer_review_targets(snapshots: pd.DataFrame, labels: pd.DataFrame, cutoff: Any) -> pd.Series:
    """Review target per snapshot: a ``pep`` or ``kyc_refresh_required`` customer label known before ``cutoff``.

    These customers are not bad: they need enhanced due diligence (PEP) or fresh KYC documents
    (outgrown declared activity), i.e. the medium tier (see the module docstring for how the
    policy should use it). A later ``legitimate`` label does not clear it (the review was due).

    Args:
        snapshots: ``customer_id``, ``as_of``.
        labels: the labels table.
        cutoff: as in ``customer_targets`` (scalar, per snapshot, or ``None``).

    Returns:
        int8 Series named ``review_target`` with the index of ``snapshots``.
    """
    _check_snapshots(snapshots)
    _require(labels, _LABEL_COLUMNS, "labels")
    k = _cutoffs(snapshots, cutoff)
    review = _label_times(labels, "customer", REVIEW_CUSTOMER_LABELS, snapshots["customer_id"]) < k
    return pd.Series(review.astype("int8"), index=snapshots.index, name="review_target")


# --- 5. ground truth --------------------------------------------------------------------------


def customer_patterns(snapshots: pd.DataFrame, patterns: pd.DataFrame) -> pd.DataFrame:
    """The generator's ground-truth customer pattern of each snapshot, for per-pattern evaluation.

    Never a feature: ``patterns`` exists only for synthetic data.

    Args:
        snapshots: ``customer_id``, ``as_of``.
        patterns: the generator's ``patterns`` table (``entity_type``, ``entity_id``,
            ``pattern``, ``stage``).

    Returns:
        DataFrame with the index of ``snapshots`` and columns ``pattern`` (e.g.
        ``stolen_goods_seller``, ``account_takeover`` for a victim; ``none`` when the customer is
        in no pattern) and ``stage`` (the customer's role in it, e.g. ``ring_company`` or
        ``mule``, ``pep`` or ``sanctioned``; ``none``). A customer in several patterns gets them
        sorted and joined with ``|``.
    """
    _check_snapshots(snapshots)
    _require(patterns, ("entity_type", "entity_id", "pattern"), "patterns")
    rows = patterns[patterns["entity_type"] == "customer"].copy()
    rows["entity_id"] = _text(rows["entity_id"])
    if "stage" not in rows.columns:
        rows["stage"] = "none"
    rows["stage"] = rows["stage"].astype("str").fillna("none")
    rows = rows.sort_values(["entity_id", "pattern", "stage"])
    grouped = rows.groupby("entity_id", sort=False).agg(
        pattern=("pattern", lambda s: "|".join(pd.unique(s.astype(str)))),
        stage=("stage", lambda s: "|".join(pd.unique(s.astype(str)))),
    )
    ids = _text(snapshots["customer_id"])
    out = grouped.reindex(ids).fillna("none")
    out.index = snapshots.index
    return out.astype({"pattern": "str", "stage": "str"})
