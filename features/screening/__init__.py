"""Sanctions and PEP screening: fuzzy matching of customer names (any script) against the watchlist.

``WatchlistScreener`` (scikit-learn conventions) learns a name index from the ``watchlist`` table
and screens a table of names (``screen``) or one name (``screen_one``, for serving), returning
for each name the best entry with its score and the evidence behind it.

The package splits along three jobs: ``names`` (transliteration, cleaning and the phonetic and
skeleton keys names are compared on), ``screener`` (``WatchlistScreener``: the fitted index,
blocking and scoring) and ``evidence`` (the birth-date and country evidence, statuses and the
``screen_*`` output columns, i.e. the screening features). Each module's docstring explains its
part of the method.
"""

from __future__ import annotations

from features.screening.evidence import (
    COUNTRY_MATCH,
    COUNTRY_MISMATCH,
    COUNTRY_UNKNOWN,
    DOB_EXACT,
    DOB_MISMATCH,
    DOB_UNKNOWN,
    DOB_YEAR,
    OUTPUT_COLUMNS,
)
from features.screening.names import parse_name, phonetic_key, skeleton_key
from features.screening.screener import WATCHLIST_REQUIRED_COLUMNS, WatchlistScreener

__all__ = [
    "DOB_EXACT",
    "DOB_MISMATCH",
    "DOB_UNKNOWN",
    "DOB_YEAR",
    "COUNTRY_MATCH",
    "COUNTRY_MISMATCH",
    "COUNTRY_UNKNOWN",
    "OUTPUT_COLUMNS",
    "WATCHLIST_REQUIRED_COLUMNS",
    "WatchlistScreener",
    "parse_name",
    "phonetic_key",
    "skeleton_key",
]
