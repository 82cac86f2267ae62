"""Element-wise functions of profile columns, computed once per distinct value of a column.

A party's profile repeats on every one of its orders: phone countries, name/e-mail similarity and
the other per-value work of ``features.profile`` run over the distinct values (about one per
customer) and are spread back to the rows. Apart from ``features.profile`` so that its transformers
read as their formulas.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import phonenumbers
from anyascii import anyascii
from rapidfuzz import fuzz


def _phone_region(number: str) -> str | None:
    try:
        return phonenumbers.region_code_for_number(phonenumbers.parse(number, None)) or None
    except phonenumbers.NumberParseException:
        return None


def per_value(values: pd.Series, compute: Callable[[pd.Series], Any]) -> np.ndarray:
    """``compute`` on each distinct value of ``values`` (and once on a missing one), spread to every row.

    A party's profile repeats on every one of its orders, so an element-wise function of a profile
    column is computed once per distinct value (about once per customer) instead of once per order.

    Args:
        values: a column.
        compute: element-wise function of a Series, returning an aligned array-like.

    Returns:
        ``compute``'s values as an array aligned with ``values``.
    """
    codes, uniques = pd.factorize(values)  # a missing value gets code -1: the appended last entry
    distinct = pd.Series(uniques).reindex(range(len(uniques) + 1))
    return np.asarray(compute(distinct))[codes]


def phone_country(phones: pd.Series) -> pd.Series:
    """ISO country of each E.164 phone number (null when missing or unparseable).

    Args:
        phones: phone numbers such as ``+4915112345678``.

    Returns:
        A string Series aligned with ``phones``.
    """
    codes, uniques = pd.factorize(phones)
    regions = np.array([_phone_region(number) for number in uniques] + [None], dtype=object)
    return pd.Series(regions[codes], index=phones.index, name=phones.name).astype("str")


def _similarity(name: str, email: str) -> float:
    local = "".join(ch for ch in email.split("@", 1)[0].lower() if ch.isalpha())
    ascii_name = anyascii(name).lower()
    tokens = ["".join(ch for ch in token if ch.isalpha()) for token in ascii_name.split()]
    tokens = [t for t in tokens if t]
    if not local or not tokens:
        return 0.0
    # Full tokens found in the local part count fully; otherwise fall back to fuzzy overlap
    # (initials plus surname, small typos).
    joined = "".join(tokens)
    return max(
        fuzz.partial_ratio(local, joined) / 100.0 if len(local) >= 3 else 0.0,
        max(fuzz.partial_ratio(token, local) / 100.0 for token in tokens if len(token) >= 3)
        if any(len(t) >= 3 for t in tokens)
        else 0.0,
    )


def name_email_similarity(names: pd.Series, emails: pd.Series) -> pd.Series:
    """How well an e-mail's local part matches the name, 0 (unrelated) to 1 (built from it).

    Names in any script are transliterated to Latin first; digits and separators in the e-mail
    are ignored, so ``j.smith84@...`` matches "John Smith". Each distinct (name, e-mail) pair is
    scored once.

    Returns:
        A float Series aligned with the inputs; NaN where the name or e-mail is missing.
    """
    name_codes, name_values = pd.factorize(names)
    email_codes, email_values = pd.factorize(emails)
    known = (name_codes >= 0) & (email_codes >= 0)
    pairs, row_pair = np.unique(
        name_codes[known].astype(np.int64) * len(email_values) + email_codes[known], return_inverse=True
    )
    scores = np.array(
        [
            _similarity(name_values[k // len(email_values)], email_values[k % len(email_values)])
            for k in pairs
        ],
        dtype="float64",
    )
    out = np.full(len(names), np.nan)
    out[known] = scores[row_pair]
    return pd.Series(out, index=names.index, dtype="float64")


def as_utc(values: pd.Series) -> pd.Series:
    """Times as tz-aware UTC (all-null columns often arrive tz-naive from JSON or CSV)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values
    return pd.to_datetime(values, utc=True)


def flags_as_float(flags: pd.Series) -> pd.Series:
    """A nullable boolean Series as floats (1.0 / 0.0, NaN for unknown), the model's encoding."""
    return flags.astype("Float64").astype("float64")


def mismatch(a: pd.Series, b: pd.Series) -> pd.Series:
    """1.0 where both values are known and differ, 0.0 where equal, NaN where either is missing."""
    known = a.notna() & b.notna()
    return (a != b).astype("float64").where(known)
