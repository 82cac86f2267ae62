"""Committed reference data (country risk, goods-category prices, FX rates, ...) from ``data/reference``.

The files live in the repository's ``data/reference`` folder (files only, never code). The folder
is found from ``KYCRISK_REFERENCE_DIR`` when set, otherwise next to the installed packages
(editable install or a checkout). Fitted transformers copy what they need from these tables into
their own fitted attributes, so a logged model never reads ``data/`` at serving time.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import pandas as pd
import pycountry

ENV_VAR = "KYCRISK_REFERENCE_DIR"


def reference_dir() -> Path:
    """Return the folder that holds the reference CSV files.

    Returns:
        ``$KYCRISK_REFERENCE_DIR`` when set, else ``<repository>/data/reference``.

    Raises:
        FileNotFoundError: when the folder does not exist, naming where it looked.
    """
    env = os.environ.get(ENV_VAR)
    path = Path(env) if env else Path(__file__).resolve().parent.parent / "data" / "reference"
    if not path.is_dir():
        raise FileNotFoundError(
            f"reference data folder {path} not found; set {ENV_VAR} to the folder holding "
            "countries.csv and the other reference files (install kycrisk from a checkout with "
            "`pip install -e .`)"
        )
    return path


@cache
def load_reference(name: str) -> pd.DataFrame:
    """Read ``data/reference/{name}.csv`` (cached; callers must not mutate the result).

    Args:
        name: file stem, e.g. ``"countries"`` or ``"goods_categories"``.

    Returns:
        The table as written in the CSV; comment lines starting with ``#`` hold its source and date.
    """
    path = reference_dir() / f"{name}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"reference table {path} is missing")
    return pd.read_csv(path, comment="#", keep_default_na=False, na_values=[""])


@cache
def iso_country_codes() -> frozenset[str]:
    """Return every ISO 3166-1 alpha-2 code (from pycountry), plus ``XK`` (Kosovo, user-assigned)."""
    return frozenset(c.alpha_2 for c in pycountry.countries) | {"XK"}
