"""Training targets and ground truth of the customer risk-tier model, from labels known before a cut-off.

Training's concern, not a feature: no feature reads these, and they look at labels after the
snapshot. Target definition (``customer_targets``), and why it departs from "seller of one bad order". A
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

from typing import Any

import numpy as np
import pandas as pd

from features.customer.base import (
    BAD_CUSTOMER_LABELS,
    LABEL_COLUMNS,
    MAX_US,
    Timeline,
    as_text,
    check_snapshots,
    factorize,
    label_times,
    require_columns,
    to_us,
    utc_us,
)

REVIEW_CUSTOMER_LABELS = ("pep", "kyc_refresh_required")
# Labels on an order that make its seller / its buyer a bad customer (see the module docstring).
SELLER_BAD_LABELS = ("fraud", "money_laundering")
BUYER_BAD_LABELS = ("money_laundering", "restricted_goods")


# --- 4. targets -------------------------------------------------------------------------------


def _cutoffs(snapshots: pd.DataFrame, cutoff: Any) -> np.ndarray:
    """Per-snapshot label cut-off in µs: a scalar, one value per snapshot, or None (every label)."""
    n = len(snapshots)
    if cutoff is None:
        return np.full(n, MAX_US, dtype=np.int64)
    if isinstance(cutoff, pd.Series | np.ndarray | pd.Index | list | tuple):
        values = to_us(cutoff if isinstance(cutoff, pd.Series) else pd.Series(cutoff), "cutoff")
        if len(values) != n:
            raise ValueError(f"cutoff has {len(values)} values for {n} snapshots")
        return values
    return np.full(n, utc_us(cutoff, "cutoff"), dtype=np.int64)


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
    check_snapshots(snapshots)
    require_columns(customers, ("customer_id",), "customers")
    require_columns(transactions, ("transaction_id", "occurred_at", "buyer_id", "seller_id"), "transactions")
    require_columns(labels, LABEL_COLUMNS, "labels")
    ids = as_text(snapshots["customer_id"])
    known_customers = set(as_text(customers["customer_id"]))
    if not ids.isin(known_customers).all():
        raise ValueError(
            f"snapshots name customers missing from customers (e.g. {ids[~ids.isin(known_customers)].iloc[0]!r})"
        )
    k = _cutoffs(snapshots, cutoff)
    (q_c, buyer, seller), customer_ids = factorize(
        snapshots["customer_id"], transactions["buyer_id"], transactions["seller_id"]
    )
    n_c = len(customer_ids)
    bad = label_times(labels, "customer", BAD_CUSTOMER_LABELS, ids) < k

    occurred = to_us(transactions["occurred_at"], "transactions.occurred_at")
    # A sale counts once its label is known (and it occurred): from max(occurred, known_at).
    sell_known = label_times(labels, "transaction", SELLER_BAD_LABELS, transactions["transaction_id"])
    labelled = sell_known < MAX_US
    n_bad = Timeline(seller[labelled], np.maximum(occurred[labelled], sell_known[labelled]), n_c).count(
        q_c, k
    )
    n_sales = Timeline(seller, occurred, n_c).count(q_c, k)
    bad |= (n_bad >= max(int(seller_min_bad), 1)) & (n_bad >= float(seller_min_share) * n_sales)
    laundering = label_times(labels, "transaction", ("money_laundering",), transactions["transaction_id"])
    labelled = laundering < MAX_US
    sold = Timeline(seller[labelled], np.maximum(occurred[labelled], laundering[labelled]), n_c)
    bad |= sold.count(q_c, k) > 0

    buy_known = label_times(labels, "transaction", BUYER_BAD_LABELS, transactions["transaction_id"])
    labelled = buy_known < MAX_US
    bought = Timeline(buyer[labelled], np.maximum(occurred[labelled], buy_known[labelled]), n_c)
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
    check_snapshots(snapshots)
    require_columns(labels, LABEL_COLUMNS, "labels")
    k = _cutoffs(snapshots, cutoff)
    review = label_times(labels, "customer", REVIEW_CUSTOMER_LABELS, snapshots["customer_id"]) < k
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
    check_snapshots(snapshots)
    require_columns(patterns, ("entity_type", "entity_id", "pattern"), "patterns")
    rows = patterns[patterns["entity_type"] == "customer"].copy()
    rows["entity_id"] = as_text(rows["entity_id"])
    if "stage" not in rows.columns:
        rows["stage"] = "none"
    rows["stage"] = rows["stage"].astype("str").fillna("none")
    rows = rows.sort_values(["entity_id", "pattern", "stage"])
    grouped = rows.groupby("entity_id", sort=False).agg(
        pattern=("pattern", lambda s: "|".join(pd.unique(s.astype(str)))),
        stage=("stage", lambda s: "|".join(pd.unique(s.astype(str)))),
    )
    ids = as_text(snapshots["customer_id"])
    out = grouped.reindex(ids).fillna("none")
    out.index = snapshots.index
    return out.astype({"pattern": "str", "stage": "str"})
