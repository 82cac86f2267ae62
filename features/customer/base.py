"""What every part of the customer dataset shares: its constants and a vectorised point-in-time index.

``Timeline`` sorts events of many entities once by (entity, time) and answers "how many before t"
with ``np.searchsorted``; the helpers around it (timestamps as int64 µs, ids as text, one hashing
pass over several id columns, distinct counts over a window, link pairs, label times) serve the
behaviour features (``features.customer.behaviour``), the model frame
(``features.customer.snapshots``) and the training targets (``training.customer_targets``), which
is why they are public and live apart from any one of them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from features.units import US_PER_DAY

PARTY = "customer"
TIME_COLUMN = "as_of"
# Keys and free-text identifiers that must never reach the model as features.
ID_COLUMNS = ("customer_id", f"{PARTY}_screen_entry_id")

BAD_CUSTOMER_LABELS = ("money_laundering", "synthetic_identity", "sanctioned")
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

WINDOW_30D = 30 * US_PER_DAY
# USD sums are accumulated as integers of this many USD (1/100 cent): exact and order-free.
AMOUNT_UNIT = 1e-4
LOG_UNIT = 1e-9
MIN_US = np.iinfo(np.int64).min
MAX_US = np.iinfo(np.int64).max

TX_COLUMNS = (
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
EVENT_COLUMNS = ("customer_id", "occurred_at", "event_type", "device_id")
LABEL_COLUMNS = ("entity_type", "entity_id", "label", "known_at")


# --- small helpers ----------------------------------------------------------------------------


def to_us(values: Any, name: str, allow_null: bool = False) -> np.ndarray:
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


def utc_us(value: Any, name: str) -> int:
    ts = pd.Timestamp(value)
    if ts is pd.NaT:
        raise ValueError(f"{name} is missing")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.tz_localize(None).to_datetime64().astype("datetime64[us]").astype(np.int64))


def require_columns(frame: pd.DataFrame, columns: Iterable[str], table: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{table} is missing columns {missing}")


def as_text(values: pd.Series) -> pd.Series:
    """Ids as text (the contract's type; an adapter may hand over integers), nulls kept."""
    return values.astype("str")


def factorize(*columns: pd.Series) -> tuple[list[np.ndarray], pd.Index]:
    """One integer code per distinct value across ``columns`` (-1 for null), in one hashing pass.

    Returns:
        The codes of each column (int64 arrays, in order) and the distinct values.
    """
    parts = [as_text(c).reset_index(drop=True) for c in columns]
    lengths = [len(p) for p in parts]
    if not sum(lengths):
        return [np.zeros(0, dtype=np.int64) for _ in parts], pd.Index([], dtype="str")
    codes, uniques = pd.factorize(pd.concat(parts, ignore_index=True))
    split = np.split(np.asarray(codes, dtype=np.int64), np.cumsum(lengths)[:-1])
    return split, pd.Index(uniques)


class Timeline:
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
        return self.position(entity, np.maximum(t, MIN_US + width) - width, inclusive=True), hi

    def count(self, entity: np.ndarray, t: np.ndarray, width: int | None = None) -> np.ndarray:
        lo, hi = self.window(entity, t, width)
        return (hi - lo).astype(np.float64)

    def prefix(self, values: np.ndarray) -> np.ndarray:
        """Integer prefix sums of ``values`` (given in input order) in sorted order, with a leading 0."""
        return np.concatenate(([0], np.cumsum(values[self.order], dtype=np.int64)))


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator as float64, NaN where the denominator is 0."""
    den = np.asarray(denominator, dtype=np.float64)
    out = np.full(den.shape, np.nan)
    np.divide(np.asarray(numerator, dtype=np.float64), den, out=out, where=den != 0)
    return out


def sorted_pairs(
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
    order = Timeline(np.asarray(pair, dtype=np.int64), times, n_pairs).order
    entity, value, times = entity[order], value[order], times[order]
    new_pair = np.ones(len(times), dtype=bool)
    new_pair[1:] = (entity[1:] != entity[:-1]) | (value[1:] != value[:-1])
    return entity, value, times, new_pair


def distinct_count(entity, value, times, n_entities: int, n_values: int, q_entity, q_t, width: int | None):
    """Distinct values per entity over ``(t - width, t)`` (``None``: before t), for every query.

    The occurrences of each (entity, value) are merged into open intervals of query time where
    the value is in the window: an occurrence at ``e`` is in the window of ``t`` iff
    ``e < t < e + width``; consecutive occurrences less than ``width`` apart overlap. The
    distinct count at ``t`` is then #(interval starts < t) - #(interval ends <= t).
    """
    entity, value, times, new_pair = sorted_pairs(entity, value, times, n_entities, n_values)
    if width is None:
        return Timeline(entity[new_pair], times[new_pair], n_entities).count(q_entity, q_t)
    starts = new_pair.copy()
    starts[1:] |= times[1:] >= times[:-1] + width
    # a segment ends at (its last occurrence + width): the occurrence before the next start
    last = np.ones(len(times), dtype=bool)
    last[:-1] = starts[1:]
    begins = Timeline(entity[starts], times[starts], n_entities)
    ends = Timeline(entity[last], times[last] + width, n_entities)
    opened = begins.position(q_entity, q_t) - begins.start(q_entity)
    closed = ends.position(q_entity, q_t, inclusive=True) - ends.start(q_entity)
    return (opened - closed).astype(np.float64)


def first_times(entity, value, times, n_entities: int, n_values: int) -> pd.DataFrame:
    """Earliest time of each (customer, key) pair; columns ``c``, ``k``, ``t``."""
    entity, value, times, new_pair = sorted_pairs(entity, value, times, n_entities, n_values)
    return pd.DataFrame({"c": entity[new_pair], "k": value[new_pair], "t": times[new_pair]})


def link_pairs(first: pd.DataFrame, max_group: int) -> pd.DataFrame:
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


def label_times(labels: pd.DataFrame, entity_type: str, wanted: Iterable[str], ids: pd.Series) -> np.ndarray:
    """Earliest ``known_at`` (µs) of a label in ``wanted`` about each of ``ids``; int64 max when none."""
    out = np.full(len(ids), MAX_US, dtype=np.int64)
    rel = labels[(labels["entity_type"] == entity_type) & labels["label"].isin(list(wanted))]
    if rel.empty or not len(ids):
        return out
    known = pd.Series(to_us(rel["known_at"], "labels.known_at"), index=as_text(rel["entity_id"]).to_numpy())
    first = known.groupby(level=0).min()
    text = as_text(ids)
    hit = text.isin(first.index).to_numpy()
    out[hit] = first.reindex(text[hit].to_numpy()).to_numpy()
    return out


def by_id(customers: pd.DataFrame) -> pd.DataFrame:
    """The customers table indexed by its ids as text (first row of a duplicated id)."""
    unique = customers.drop_duplicates("customer_id")
    return unique.set_index(pd.Index(as_text(unique["customer_id"]), name="customer_id"), drop=False)


def check_snapshots(snapshots: pd.DataFrame) -> np.ndarray:
    require_columns(snapshots, ("customer_id", TIME_COLUMN), "snapshots")
    if snapshots["customer_id"].isna().any():
        raise ValueError("snapshots have null customer_id values")
    return to_us(snapshots[TIME_COLUMN], f"snapshots.{TIME_COLUMN}")
