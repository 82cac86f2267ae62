"""Row-level features of the current order, one function per column (Hamilton style), and their reasons.

Features such as ``amount_usd``, ``cross_border`` or ``hour_of_day`` need no history: each is a
plain function named after its column, computed on numpy arrays by both engines (a whole column in
batch, a one-element array online), so that both run literally the same code. ``ROW_REASONS``,
at the end, declares the reason code and sentence of each of them next to its function.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from functools import cache, cached_property
from typing import Any

import numpy as np
import pandas as pd

from features.definitions.history import US_PER_DAY, US_PER_HOUR
from features.reasons import FeatureReason, as_int, binary, flag, money, number, times


class Reference:
    """Reference lookups the row-level features need, loaded on first use.

    Args:
        fx_rates: ``currency, usd_per_unit`` table (or a mapping currency -> rate); default
            ``load_reference("fx_rates")``. USD is 1.0 by definition and needs no table.
        goods_categories: ``category, reference_unit_price_usd`` table (or a mapping category ->
            price); default ``load_reference("goods_categories")``.
    """

    def __init__(self, fx_rates: Any = None, goods_categories: Any = None) -> None:
        self._fx_rates = fx_rates
        self._goods_categories = goods_categories

    @cached_property
    def usd_per_unit(self) -> dict[str, float]:
        return _as_mapping(self._fx_rates, "fx_rates", "currency", "usd_per_unit")

    @cached_property
    def category_price_usd(self) -> dict[str, float]:
        return _as_mapping(self._goods_categories, "goods_categories", "category", "reference_unit_price_usd")


def _as_mapping(table: Any, name: str, key: str, value: str) -> dict[str, float]:
    if table is None:
        from features.reference import load_reference

        table = load_reference(name)
    if isinstance(table, pd.DataFrame):
        return {str(k): float(v) for k, v in zip(table[key], table[value], strict=True)}
    return {str(k): float(v) for k, v in dict(table).items()}


def _isnull(values: np.ndarray) -> np.ndarray:
    if len(values) <= 16:  # one online event: skip pandas' per-call overhead
        return np.array(
            [v is None or v is pd.NA or (isinstance(v, float) and v != v) for v in values], dtype=bool
        )
    return np.asarray(pd.isna(values), dtype=bool)


def _lookup(keys: np.ndarray, mapping: Mapping[str, float]) -> np.ndarray:
    """Map each key to ``mapping[key]`` (NaN for null or unknown keys), vectorised."""
    if len(keys) <= 16:
        return np.array([mapping.get(k, np.nan) if isinstance(k, str) else np.nan for k in keys], dtype=float)
    codes, uniques = pd.factorize(keys)
    table = np.array([mapping.get(str(u), np.nan) for u in uniques] + [np.nan], dtype=float)
    return table[codes]


def _not_equal(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = (np.asarray(a, dtype=object) != np.asarray(b, dtype=object)).astype(float)
    out[_isnull(a) | _isnull(b)] = np.nan
    return out


def usd_rate(currency: np.ndarray, reference: Reference) -> np.ndarray:
    """US dollars per unit of the transaction currency (1.0 for USD)."""
    currency = np.asarray(currency, dtype=object)
    usd = currency == "USD"
    if usd.all():
        return np.ones(len(currency))
    rates = _lookup(currency, reference.usd_per_unit)
    rates[usd] = 1.0
    bad = np.isnan(rates)
    if bad.any():
        missing = sorted({str(c) for c in currency[bad]})
        raise ValueError(f"no USD rate for currency {missing} in fx_rates")
    return rates


def amount_usd(amount: np.ndarray, usd_rate: np.ndarray) -> np.ndarray:
    """Transaction amount converted to USD with the committed rate table."""
    return np.asarray(amount, dtype=float) * usd_rate


def amount(amount: np.ndarray) -> np.ndarray:
    """Transaction amount in its own currency (single-currency data sets such as the handbook's)."""
    return np.asarray(amount, dtype=float)


def cross_border(buyer_country: np.ndarray, seller_country: np.ndarray) -> np.ndarray:
    """1 when the goods ship between two countries (buyer country != seller country), NaN if unknown."""
    return _not_equal(buyer_country, seller_country)


def ip_country_mismatch(ip_country: np.ndarray, buyer_country: np.ndarray) -> np.ndarray:
    """1 when the buyer's IP country differs from the shipping country, NaN if either is unknown."""
    return _not_equal(ip_country, buyer_country)


def unit_price_to_reference(
    unit_price: np.ndarray, usd_rate: np.ndarray, goods_category: np.ndarray, reference: Reference
) -> np.ndarray:
    """Unit price in USD / the category's reference unit price (NaN for an unknown category)."""
    ref = _lookup(np.asarray(goods_category, dtype=object), reference.category_price_usd)
    return np.asarray(unit_price, dtype=float) * usd_rate / ref


def hour_of_day(occurred_at_us: np.ndarray) -> np.ndarray:
    """Hour of the day (0-23, UTC) of the transaction."""
    return ((np.asarray(occurred_at_us, dtype=np.int64) // US_PER_HOUR) % 24).astype(float)


def is_weekend(occurred_at_us: np.ndarray) -> np.ndarray:
    """1 on Saturdays and Sundays (UTC), else 0."""
    weekday = (np.asarray(occurred_at_us, dtype=np.int64) // US_PER_DAY + 3) % 7  # 1970-01-01: Thu
    return (weekday >= 5).astype(float)


def is_night(occurred_at_us: np.ndarray) -> np.ndarray:
    """1 when the hour of day (UTC) is at most 6 (the handbook's night flag), else 0."""
    return (hour_of_day(occurred_at_us) <= 6).astype(float)


# Inputs a row-level function may ask for, besides other row-level features: transaction
# columns, the timestamp in microseconds and the reference lookups.
ROW_INPUTS = (
    "amount",
    "currency",
    "unit_price",
    "quantity",
    "goods_category",
    "payment_method",
    "buyer_country",
    "seller_country",
    "ip_country",
    "occurred_at_us",
    "reference",
)
# name -> function; the public row-level features (usd_rate is an intermediate input).
ROW_FEATURES: dict[str, Callable[..., np.ndarray]] = {
    f.__name__: f
    for f in (
        amount_usd,
        amount,
        cross_border,
        ip_country_mismatch,
        unit_price_to_reference,
        hour_of_day,
        is_weekend,
        is_night,
    )
}
_INTERMEDIATE: dict[str, Callable[..., np.ndarray]] = {"usd_rate": usd_rate}


@cache
def _params(fn: Callable[..., Any]) -> tuple[str, ...]:
    return tuple(inspect.signature(fn).parameters)


def row_feature_inputs(names: tuple[str, ...] | list[str]) -> set[str]:
    """The transaction columns (``ROW_INPUTS``) that computing ``names`` reads."""
    needed: set[str] = set()

    def visit(name: str) -> None:
        fn = ROW_FEATURES.get(name) or _INTERMEDIATE.get(name)
        if fn is None:
            needed.add(name)
            return
        for param in _params(fn):
            if param == name:
                needed.add(param)
            else:
                visit(param)

    for n in names:
        visit(n)
    return needed - {"reference"}


def compute_row_features(
    names: tuple[str, ...] | list[str], inputs: Mapping[str, Any], reference: Reference
) -> dict[str, np.ndarray]:
    """Compute row-level features from transaction columns (any number of rows).

    Args:
        names: row-level features to compute (keys of ``ROW_FEATURES``).
        inputs: column name -> numpy array (``occurred_at_us``: int64 microseconds since the
            epoch, UTC); only the columns ``row_feature_inputs(names)`` are read.
        reference: the reference lookups.

    Returns:
        name -> float64 array, for each of ``names`` (plus intermediates it needed).
    """
    done: dict[str, np.ndarray] = {}

    def value(name: str) -> Any:
        if name == "reference":
            return reference
        if name in done:
            return done[name]
        fn = ROW_FEATURES.get(name) or _INTERMEDIATE.get(name)
        if fn is None:
            return inputs[name]
        kwargs = {p: (inputs[p] if p == name else value(p)) for p in _params(fn)}
        done[name] = fn(**kwargs)
        return done[name]

    for n in names:
        value(n)
    return done


# --- Reasons (the order-level block of the reason catalogue) ----------------------------------

ROW_CODES = {
    "ORDER_AMOUNT": "order amount",
    "CROSS_BORDER": "buyer and seller in different countries",
    "IP_COUNTRY_MISMATCH": "IP address in a country other than the buyer's (shipping) country",
    "PRICE_BELOW_REFERENCE": "unit price compared with the category reference price",
    "ORDER_TIME": "hour of day and day of week of the order",
}


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
            f"unit price is {100 * (r - 1):.0f}% above {ref}" if r < 3 else f"unit price is {times(r)} {ref}"
        )
    return f"unit price is close to {ref} (ratio {r:.2f})"


def _ip_mismatch(v: Any, raw: Mapping[str, Any]) -> str:
    if not flag(v):
        return "the IP address is in the buyer's country"
    ip, home = raw.get("ip_country"), raw.get("buyer_country")
    where = f" (IP in {ip}, buyer in {home})" if isinstance(ip, str) and isinstance(home, str) else ""
    return f"the order came from an IP address outside the buyer's country{where}"


def _hour(v: Any, raw: Mapping[str, Any]) -> str:
    return f"the order was placed between {as_int(v):02d}:00 and {as_int(v):02d}:59 UTC"


_ORDER_AMOUNT = FeatureReason(
    "ORDER_AMOUNT", "the order amount", lambda v, raw: f"order amount is {money(v)}"
)
_UNIT_PRICE = FeatureReason(
    "PRICE_BELOW_REFERENCE", "the unit price compared with the category reference", _unit_price
)
_HOUR = FeatureReason("ORDER_TIME", "the hour of the order", _hour)
# Feature name -> reason, for every row-level feature (and the names other data sets give the
# same columns: the log amount, ``unit_price_ratio``, ``hour``).
ROW_REASONS: dict[str, FeatureReason] = {
    "amount_usd": _ORDER_AMOUNT,
    "log_amount_usd": FeatureReason(
        "ORDER_AMOUNT", "the order amount", lambda v, raw: f"order amount is {money(math.expm1(float(v)))}"
    ),
    "amount": FeatureReason(
        "ORDER_AMOUNT",
        "the order amount",
        lambda v, raw: f"order amount is {number(v)} (in the order's currency)",
    ),
    "cross_border": FeatureReason(
        "CROSS_BORDER",
        "whether the order is cross-border",
        binary(
            "the buyer and the seller are in different countries (cross-border order)",
            "the buyer and the seller are in the same country",
        ),
    ),
    "ip_country_mismatch": FeatureReason(
        "IP_COUNTRY_MISMATCH", "whether the IP country matches the buyer's country", _ip_mismatch
    ),
    "unit_price_to_reference": _UNIT_PRICE,
    "unit_price_ratio": _UNIT_PRICE,
    "hour_of_day": _HOUR,
    "hour": _HOUR,
    "is_night": FeatureReason(
        "ORDER_TIME",
        "whether the order was placed at night",
        binary("the order was placed at night (00:00-06:59 UTC)", "the order was placed in the daytime"),
    ),
    "is_weekend": FeatureReason(
        "ORDER_TIME",
        "whether the order was placed on a weekend",
        binary("the order was placed on a weekend (UTC)", "the order was placed on a weekday (UTC)"),
    ),
}
