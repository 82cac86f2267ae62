"""Assembly of the model input frame: an event, its history features, its parties' profiles and screening.

The fraud model's input is one row per transaction holding (1) the transaction's own fields,
(2) its history features from ``features.batch`` (or, online, ``features.online``), (3) the
buyer's and the seller's KYC profile columns, prefixed ``buyer_`` / ``seller_``, and (4) each
party's watchlist screening result at onboarding. The profile columns still hold raw personal
data: the first steps of the model's Pipeline (``features.profile``) turn them into numbers and
drop them, so the preprocessing ships with the model.

The same function builds the frame for training (many rows) and serving (one row), so both paths
produce identical columns.
"""

from __future__ import annotations

import pandas as pd

from features.profile import OPTIONAL_PROFILE_COLUMNS, PROFILE_COLUMNS

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
