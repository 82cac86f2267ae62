"""The screening features: evidence categories, the points they add, statuses and output columns.

A match carries evidence besides the name: the birth date (exact, same year only, conflicting,
unknown) and the country (the entry's country equals the customer's nationality or residence,
differs, or either is unknown). This module declares those categories, their default points
(``DEFAULT_DOB_POINTS``, ``DEFAULT_COUNTRY_POINTS``), the statuses and ``OUTPUT_COLUMNS`` (the
``screen_*`` features the models see), and turns the screener's arrays into those columns. The
date and country conversions the evidence rests on sit here too: times are int64 UTC days or
nanoseconds, with ``NAT`` for a missing one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

DOB_EXACT, DOB_YEAR, DOB_MISMATCH, DOB_UNKNOWN = "exact", "year", "mismatch", "unknown"
COUNTRY_MATCH, COUNTRY_MISMATCH, COUNTRY_UNKNOWN = "match", "mismatch", "unknown"
DOB_CATEGORIES = (DOB_EXACT, DOB_YEAR, DOB_MISMATCH, DOB_UNKNOWN)
COUNTRY_CATEGORIES = (COUNTRY_MATCH, COUNTRY_MISMATCH, COUNTRY_UNKNOWN)

STATUS_HIT, STATUS_REVIEW, STATUS_CLEAR = "hit", "review", "clear"

# Points added to the name score. A name without a birth date to corroborate it loses 8 points,
# so that an exact name alone is a possible match (92, review) and becomes a hit with the birth
# date (100); the same year only (94, or 96 with the country) is weak corroboration, as common
# names are listed many times. A conflicting birth date costs far more than an agreeing one
# earns: an exact common name with another birth date (80, clear) ends clearly below a true hit
# with a typo and the right birth date (90-93 + 5). Country evidence is weak on purpose: listed
# people live and hold nationalities elsewhere.
DEFAULT_DOB_POINTS: Mapping[str, float] = {
    DOB_EXACT: 5.0,
    DOB_YEAR: -6.0,
    DOB_MISMATCH: -20.0,
    DOB_UNKNOWN: -8.0,
}
DEFAULT_COUNTRY_POINTS: Mapping[str, float] = {
    COUNTRY_MATCH: 2.0,
    COUNTRY_MISMATCH: -2.0,
    COUNTRY_UNKNOWN: 0.0,
}


OUTPUT_COLUMNS = (
    "screen_score",
    "screen_name_score",
    "screen_status",
    "screen_list_type",
    "screen_entry_id",
    "screen_entry_name",
    "screen_matched_name",
    "screen_dob_match",
    "screen_country_match",
)

# --- Dates, countries, times -------------------------------------------------------------------

NAT = np.iinfo(np.int64).min


def _utc_stamps(values: Any) -> pd.Series:
    """Timestamps as a tz-aware UTC Series; naive ones are taken as UTC, unparseable ones as NaT."""
    if isinstance(values, pd.Series) and pd.api.types.is_datetime64_any_dtype(values):
        stamps = values  # already typed (the contracts' columns): no per-element parsing
        return stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    return pd.to_datetime(pd.Series(values, dtype=object), utc=True, errors="coerce", format="mixed")


def to_days(values: Any) -> np.ndarray:
    """Dates (any of str, datetime, Timestamp, tz-aware or not) to int64 days; NaT -> ``NAT``."""
    return _utc_stamps(values).dt.tz_localize(None).to_numpy(dtype="datetime64[D]").astype(np.int64)


def to_ns(values: Any) -> np.ndarray:
    """Timestamps to int64 UTC nanoseconds; naive ones are taken as UTC; NaT -> ``NAT``."""
    return _utc_stamps(values).dt.tz_localize(None).to_numpy(dtype="datetime64[ns]").astype(np.int64)


def scalar_ns(value: Any) -> int:
    """One timestamp to int64 UTC nanoseconds (naive taken as UTC); null or unparseable -> ``NAT``."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return NAT
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        return NAT
    if stamp is pd.NaT:
        return NAT
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.as_unit("ns").value)


def years(days: np.ndarray) -> np.ndarray:
    """Calendar years of int64 days; ``NAT`` stays ``NAT``."""
    years = days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64)
    return np.where(days == NAT, NAT, years)


def country_text(value: Any) -> str | None:
    """A country code upper-cased and stripped; ``None`` when blank or not text."""
    if isinstance(value, str) and value.strip():
        return value.strip().upper()
    return None


# --- Evidence and output ---------------------------------------------------------------------


def dob_category(customer_days: np.ndarray, entry_days: np.ndarray, entry_years: np.ndarray) -> np.ndarray:
    """Birth-date category per pair, as positions in ``DOB_CATEGORIES``."""
    unknown = (customer_days == NAT) | (entry_days == NAT)
    exact = ~unknown & (customer_days == entry_days)
    year = ~unknown & ~exact & (years(customer_days) == entry_years)
    cat = np.full(customer_days.shape, 2, dtype=np.int64)  # mismatch
    cat[year] = 1
    cat[exact] = 0
    cat[unknown] = 3
    return cat


def country_category(customer_codes: np.ndarray, entry_codes: np.ndarray) -> np.ndarray:
    """Country category per pair (any customer country may agree), as positions in ``COUNTRY_CATEGORIES``."""
    known = (customer_codes != -1).any(axis=1) & (entry_codes >= 0)
    match = (customer_codes == entry_codes[:, None]).any(axis=1) & (entry_codes >= 0)
    cat = np.full(entry_codes.shape, 2, dtype=np.int64)  # unknown
    cat[known] = 1
    cat[match] = 0
    return cat


def empty_output(n: int) -> dict[str, np.ndarray]:
    """The output arrays of ``n`` names without a match: scores 0, status clear, nulls elsewhere."""
    out: dict[str, np.ndarray] = {
        "screen_score": np.zeros(n, dtype=np.float64),
        "screen_name_score": np.zeros(n, dtype=np.float64),
        "screen_status": np.full(n, STATUS_CLEAR, dtype=object),
    }
    for column in OUTPUT_COLUMNS[3:]:
        out[column] = np.full(n, None, dtype=object)
    return out


def output_frame(arrays: dict[str, np.ndarray], index: pd.Index) -> pd.DataFrame:
    """The ``OUTPUT_COLUMNS`` frame of the output arrays (text columns as pandas ``str``)."""
    data = {}
    for column in OUTPUT_COLUMNS:
        values = arrays[column]
        data[column] = pd.Series(values, index=index, dtype=values.dtype if values.dtype != object else "str")
    return pd.DataFrame(data, index=index)
