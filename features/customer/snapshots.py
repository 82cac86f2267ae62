"""Snapshots of customers and the risk model's input frame: when to look, whose rows, which columns.

``snapshot_times`` picks the points in time, ``customer_rows`` / ``profile_links`` the rows one
customer's behaviour depends on (what serving hands ``customer_behaviour``),
``screen_snapshots`` and ``customer_frame`` build the model frame, ``customer_flags`` the tier
policy's hard-rule flags.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.assemble import SCREEN_COLUMNS, party_profiles
from features.customer.base import (
    LINK_PROFILE_COLUMNS,
    PARTY,
    TIME_COLUMN,
    as_text,
    by_id,
    check_snapshots,
    require_columns,
    to_us,
    utc_us,
)
from features.customer.behaviour import BEHAVIOUR_COLUMNS

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
    require_columns(customers, ("customer_id", "onboarded_at"), "customers")
    t0, t1 = utc_us(start, "start"), utc_us(end, "end")
    step = pd.Timedelta(every)
    if t0 >= t1:
        raise ValueError(f"start {start} is not before end {end}")
    if step <= pd.Timedelta(0):
        raise ValueError(f"every must be positive, got {every}")
    step_us = int(step // pd.Timedelta(microseconds=1))
    ids = as_text(customers["customer_id"]).to_numpy()
    onboarded = to_us(customers["onboarded_at"], "customers.onboarded_at")
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


def profile_links(customer_id: str, customers: pd.DataFrame) -> np.ndarray:
    """Which rows of ``customers`` are the customer or share a phone, address or e-mail with it.

    The comparison normalises as ``customer_behaviour`` does (text, stripped, lower case); a
    customer missing from ``customers`` links to nobody.

    Returns:
        A boolean mask over the rows of ``customers``.
    """
    ids = as_text(customers["customer_id"])
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
    tx_buyer, tx_seller = as_text(transactions["buyer_id"]), as_text(transactions["seller_id"])
    ev_customer = as_text(account_events["customer_id"])
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
    linked |= set(as_text(customers.loc[profile_keep, "customer_id"]))
    linked.add(cid)
    tx_ids = set(as_text(transactions.loc[tx_keep.to_numpy(), "transaction_id"]))
    entity = as_text(labels["entity_id"])
    label_keep = ((labels["entity_type"] == "transaction") & entity.isin(tx_ids)) | (
        (labels["entity_type"] == "customer") & entity.isin(linked)
    )
    return {
        "transactions": transactions[tx_keep.to_numpy()],
        "account_events": account_events[ev_keep.to_numpy()],
        "labels": labels[label_keep.to_numpy()],
        "customers": customers[as_text(customers["customer_id"]).isin(linked).to_numpy()],
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
    check_snapshots(snapshots)
    profiles = by_id(customers)
    ids = as_text(snapshots["customer_id"])
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
    check_snapshots(snapshots)
    if len(behaviour) != len(snapshots) or not behaviour.index.equals(snapshots.index):
        raise ValueError("behaviour must have one row per snapshot, with the snapshots' index")
    missing = [c for c in BEHAVIOUR_COLUMNS if c not in behaviour.columns]
    if missing:
        raise ValueError(f"behaviour is missing columns {missing}")
    ids = as_text(snapshots["customer_id"])
    profiles = party_profiles(customers.drop_duplicates("customer_id"), PARTY)
    profiles.index = as_text(profiles.index.to_series())
    if (~ids.isin(profiles.index)).any():
        raise ValueError(
            f"snapshots name customers missing from customers (e.g. {ids[~ids.isin(profiles.index)].iloc[0]!r})"
        )
    roles = by_id(customers)["role"]
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
