"""Assembly of the model input frame: an event, its history features, its parties' profiles and screening.

The fraud model's input is one row per transaction holding (1) the transaction's own fields,
(2) its history features from ``features.batch`` (or, online, ``features.online``), (3) the
buyer's and the seller's KYC profile columns, prefixed ``buyer_`` / ``seller_``, and (4) each
party's watchlist screening result at onboarding. The profile columns still hold raw personal
data: the first steps of the model's Pipeline (``features.profile``) turn them into numbers and
drop them, so the preprocessing ships with the model.

The same function builds the frame for training (many rows) and serving (one row), so both paths
produce identical columns. The reason code and sentence of the order's own columns and of the
parties' screening columns are declared at the end, next to these column lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from features.profile import OPTIONAL_PROFILE_COLUMNS, PROFILE_COLUMNS
from features.reasons import FeatureReason, count, is_missing

PARTIES = ("buyer", "seller")
# Transaction fields the model reads directly (categorical ones are encoded in the Pipeline).
EVENT_COLUMNS = (
    "transaction_id",
    "occurred_at",
    "buyer_id",
    "seller_id",
    "currency",
    "goods_category",
    "payment_method",
    "quantity",
    "buyer_country",
    "seller_country",
    "ip_country",
)
SCREEN_COLUMNS = ("screen_score", "screen_status", "screen_list_type", "screen_entry_id", "screen_dob_match")
# Keys and free-text identifiers that must never reach the model as features.
ID_COLUMNS = ("transaction_id", "buyer_id", "seller_id") + tuple(f"{p}_screen_entry_id" for p in PARTIES)


def party_profiles(customers: pd.DataFrame, party: str) -> pd.DataFrame:
    """The profile columns of every customer, prefixed for one party of an event.

    Args:
        customers: the ``customers`` table (contract columns).
        party: ``"buyer"`` or ``"seller"``.

    Returns:
        One row per customer, indexed by ``customer_id``, with columns
        ``{party}_{column}`` for every column of ``features.profile.PROFILE_COLUMNS`` (and
        ``email_first_seen_at`` when present).
    """
    columns = [c for c in PROFILE_COLUMNS + OPTIONAL_PROFILE_COLUMNS if c in customers.columns]
    missing = [c for c in PROFILE_COLUMNS if c not in customers.columns]
    if missing:
        raise ValueError(f"customers table is missing profile columns {missing}")
    frame = customers.set_index("customer_id")[columns]
    return frame.add_prefix(f"{party}_")


def screen_customers(customers: pd.DataFrame, screener) -> pd.DataFrame:
    """Screen every customer against the watchlist as it stood when they were onboarded.

    Screening at onboarding time keeps training point in time: an entry listed after a
    customer's onboarding is not visible to that customer's rows (the service re-screens on every
    ``/onboard`` update).

    Args:
        customers: the ``customers`` table.
        screener: a fitted ``features.screening.WatchlistScreener``.

    Returns:
        One row per customer, indexed by ``customer_id``, with the screener's output columns
        ``screen_score``, ``screen_status``, ``screen_list_type``, ``screen_entry_id``,
        ``screen_dob_match`` (and the screener's other evidence columns).
    """
    names = customers.set_index("customer_id")
    return screener.screen(names, as_of="onboarded_at")


def model_frame(
    transactions: pd.DataFrame,
    history: pd.DataFrame,
    customers: pd.DataFrame,
    screening: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Join transactions, their history features, both parties' profiles and screening.

    Args:
        transactions: ``transactions`` rows (contract columns).
        history: the feature engine's output for the same transactions, with
            ``transaction_id`` (row order may differ).
        customers: the ``customers`` table (must hold every buyer and seller).
        screening: ``screen_customers`` output, or ``None`` to leave screening columns empty.

    Returns:
        One row per transaction in the input order: ``EVENT_COLUMNS``, the history features,
        ``buyer_*`` / ``seller_*`` profile columns and ``buyer_screen_*`` / ``seller_screen_*``.

    Raises:
        ValueError: when a transaction has no history row or a party is not a known customer.
    """
    missing = [c for c in EVENT_COLUMNS if c not in transactions.columns]
    if missing:
        raise ValueError(f"transactions are missing columns {missing}")
    frame = transactions[list(EVENT_COLUMNS)].reset_index(drop=True)
    hist = history.set_index("transaction_id")
    hist = hist.drop(columns=[c for c in hist.columns if c in frame.columns])
    aligned = hist.reindex(frame["transaction_id"])
    if len(hist) and aligned.index.isin(hist.index).sum() != len(frame):
        lost = (~frame["transaction_id"].isin(hist.index)).sum()
        raise ValueError(f"{lost} transactions have no history-feature row")
    parts = [frame, aligned.reset_index(drop=True)]
    for party in PARTIES:
        ids = frame[f"{party}_id"]
        profiles = party_profiles(customers, party)
        joined = profiles.reindex(ids)
        unknown = ~ids.isin(profiles.index)
        if unknown.any():
            raise ValueError(
                f"{int(unknown.sum())} transactions name a {party} that is not a known customer "
                f"(e.g. {ids[unknown].iloc[0]!r})"
            )
        parts.append(joined.reset_index(drop=True))
        if screening is not None:
            screen = screening.reindex(ids)[list(SCREEN_COLUMNS)].add_prefix(f"{party}_")
            parts.append(screen.reset_index(drop=True))
        else:
            parts.append(
                pd.DataFrame(
                    {f"{party}_{c}": pd.Series([None] * len(frame), dtype="object") for c in SCREEN_COLUMNS}
                )
            )
    return pd.concat(parts, axis=1)


# --- Reasons: the declaration of the reason code and sentence of the order's own columns and of
# each party's screening columns (read by training.explain) -------------------------------------

ORDER_COLUMN_CODES = {
    "ORDER_COUNTRY": "the countries of the order (shipping to and from, IP address)",
    "QUANTITY": "number of units ordered",
    "GOODS_CATEGORY": "category of the goods",
    "PAYMENT_METHOD": "payment method",
    "CURRENCY": "currency of the order",
}
# ``EVENT_COLUMNS`` the model reads -> reason.
ORDER_COLUMN_REASONS: dict[str, FeatureReason] = {
    "quantity": FeatureReason(
        "QUANTITY", "the quantity", lambda v, raw: f"{count(v, 'unit', 'units')} ordered"
    ),
    "goods_category": FeatureReason(
        "GOODS_CATEGORY", "the goods category", lambda v, raw: f"goods category is {v}"
    ),
    "payment_method": FeatureReason(
        "PAYMENT_METHOD", "the payment method", lambda v, raw: f"paid by {str(v).replace('_', ' ')}"
    ),
    "currency": FeatureReason("CURRENCY", "the currency", lambda v, raw: f"order currency is {v}"),
    "buyer_country": FeatureReason(
        "ORDER_COUNTRY", "the country the goods ship to", lambda v, raw: f"the goods ship to {v}"
    ),
    "seller_country": FeatureReason(
        "ORDER_COUNTRY", "the country the goods ship from", lambda v, raw: f"the goods ship from {v}"
    ),
    "ip_country": FeatureReason(
        "ORDER_COUNTRY",
        "the IP address's country",
        lambda v, raw: f"the order came from an IP address in {v}",
    ),
}

SCREENING_CODES = {"SCREENING_MATCH": "similarity of the name to a sanctions or PEP list entry"}
_LIST_NAMES = {"sanction": "sanctions list", "pep": "PEP list"}
_DOB_TEXT = {
    "exact": "birth date matches",
    "year": "birth year matches",
    "mismatch": "birth date differs",
    "unknown": "birth date unknown",
}
_COUNTRY_TEXT = {"match": "country matches", "mismatch": "country differs"}


def _first(key: str, *sources: Mapping[str, Any] | None) -> Any:
    for source in sources:
        if source is not None and key in source and not is_missing(source[key]):
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
    entry = _first(prefix + "screen_entry_id", *sources)
    if entry is None:
        return None
    list_type = _first(prefix + "screen_list_type", *sources)
    score = _first(prefix + "screen_score", *sources)
    details = []
    try:
        if score is not None:
            details.append(f"score {float(score):.0f}")
    except (TypeError, ValueError):
        pass
    dob = _first(prefix + "screen_dob_match", *sources)
    if dob in _DOB_TEXT:
        details.append(_DOB_TEXT[dob])
    country = _first(prefix + "screen_country_match", *sources)
    if country in _COUNTRY_TEXT:
        details.append(_COUNTRY_TEXT[country])
    listed = _LIST_NAMES.get(str(list_type), "watchlist") if list_type is not None else "watchlist"
    owner = f"the {prefix.rstrip('_')}'s " if prefix else ""
    tail = f" ({'; '.join(details)})" if details else ""
    return f"{owner}name matches {listed} entry {entry}{tail}"


def screening_reasons(party: str) -> dict[str, FeatureReason]:
    """Screening column suffix (``screen_score``, ...; after ``{party}_``) -> its reason."""
    prefix = f"{party}_"

    def score(v: Any, raw: Mapping[str, Any]) -> str:
        s = float(v)
        if s <= 0:
            return f"the {party}'s name matches no watchlist entry"
        sentence = screening_sentence(prefix, raw, {prefix + "screen_score": s})
        if sentence is not None:
            return sentence
        listed = _LIST_NAMES.get(str(raw.get(prefix + "screen_list_type")), "watchlist")
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

    def categorical(subject: str, label: str) -> FeatureReason:
        def render(v: Any, raw: Mapping[str, Any]) -> str:
            sentence = screening_sentence(prefix, raw)
            return sentence if sentence is not None else f"the {party}'s screening {label} is {v}"

        return FeatureReason("SCREENING_MATCH", subject, render)

    return {
        "screen_score": FeatureReason("SCREENING_MATCH", f"the {party}'s screening score", score),
        "screen_name_score": FeatureReason(
            "SCREENING_MATCH", f"the {party}'s screening name score", name_score
        ),
        "screen_list_type": categorical(f"the list of the {party}'s screening match", "list"),
        "screen_status": categorical(f"the {party}'s screening status", "status"),
        "screen_dob_match": categorical(
            f"the birth-date evidence of the {party}'s screening match", "birth-date evidence"
        ),
        "screen_country_match": categorical(
            f"the country evidence of the {party}'s screening match", "country evidence"
        ),
    }
