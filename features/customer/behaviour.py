"""Customer behaviour before a snapshot (``customer_behaviour``), each column declared once with its meaning and reason.

``BEHAVIOURS`` lists the output columns in order, each with its data-card meaning and its reason
code and sentence (said of the customer "before this decision"); ``customer_behaviour`` computes
them for every snapshot at once, with sorts and ``np.searchsorted`` (``features.customer.base``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from features.contracts import BAD_TRANSACTION_LABELS
from features.customer.base import (
    AMOUNT_UNIT,
    BAD_CUSTOMER_LABELS,
    EVENT_COLUMNS,
    EVENT_GROUPS,
    HIGH_RISK_CLASSES,
    LABEL_COLUMNS,
    LINK_PROFILE_COLUMNS,
    LOG_UNIT,
    MAX_US,
    PARTY,
    TX_COLUMNS,
    WINDOW_30D,
    Timeline,
    as_text,
    by_id,
    check_snapshots,
    distinct_count,
    factorize,
    first_times,
    label_times,
    link_pairs,
    ratio,
    require_columns,
    to_us,
)
from features.definitions import Reference, compute_row_features
from features.definitions.history_reasons import ACCOUNT_EVENT_NOUNS
from features.profile import party_reasons
from features.reasons import (
    SINCE_LAST_UNIT_SECONDS,
    FeatureReason,
    as_int,
    binary,
    count,
    duration,
    money,
    share,
)
from features.reference import load_reference
from features.units import US_PER_HOUR


class Behaviour(NamedTuple):
    """One output column of ``customer_behaviour``: its meaning and its reason.

    Attributes:
        meaning: one line for the data card.
        reason: reason code, subject and sentence, said of the customer "before this decision".
    """

    meaning: str
    reason: FeatureReason


CUSTOMER_CODES = {
    "CUSTOMER_COUNTRIES": "number of countries the customer's purchases ship from",
    "CUSTOMER_VOLUME": "amount the customer bought and sold in the last 30 days",
    "CUSTOMER_VELOCITY": "time since the customer's latest order",
    "ACCOUNT_EVENTS_RECENT": "failed logins, password resets, device, 2FA and contact changes in the last 30 days",
    "LINKED_ACCOUNTS": "other customers sharing a device, phone number, address or e-mail",
    "LINKED_BAD_ACCOUNTS": "linked customers known to be bad (money laundering, synthetic identity, sanctions)",
    "REVIEWED_LEGITIMATE": "an earlier review found the customer legitimate",
}
_BEFORE = {"30d": "in the 30 days before this decision", "all": "before this decision"}
_SCOPE = {"30d": "in the past 30 days", "all": "so far"}
_LABELLED = "labelled fraud, money laundering or restricted goods"


def _role(role: str, window: str, measure: str, meaning: str) -> tuple[str, Behaviour]:
    """A behaviour column of the customer as buyer or seller: ``{role}_{measure}_{window}``."""
    verb, noun = ("placed", "purchases") if role == "buyer" else ("received", "sales")
    orders, when, scope = f"orders as a {role}", _BEFORE.get(window, ""), _SCOPE.get(window, "")
    reasons = {
        "txn_count": FeatureReason(
            f"{role.upper()}_VELOCITY",
            f"the number of {orders} {when}",
            lambda v, raw: f"the customer {verb} {count(v, f'order as a {role}', orders)} {when}",
        ),
        "amount_sum": FeatureReason(
            f"{role.upper()}_AMOUNT_VELOCITY",
            f"the amount of the customer's {noun} {when}",
            lambda v, raw: f"the customer's {noun} {when} add up to {money(v)}",
        ),
        "crossborder_mean": FeatureReason(
            "CROSS_BORDER",
            f"the share of the customer's cross-border {noun} {scope}",
            share(f"the customer's {noun} {scope} crossed a border"),
        ),
        "highrisk_mean": FeatureReason(
            "RISKY_GOODS",
            f"the share of high-risk goods in the customer's {noun} {scope}",
            share(f"the customer's {noun} {scope} were high-risk or restricted goods"),
        ),
        "fraud_count": FeatureReason(
            f"{role.upper()}_FRAUD_RATE",
            f"the number of the customer's {noun} {_LABELLED}",
            lambda v, raw: (
                f"{count(v, noun[:-1], noun)} of the customer {'was' if as_int(v) == 1 else 'were'} {_LABELLED} "
                "(labels known before this decision)"
            ),
        ),
        "fraud_rate": FeatureReason(
            f"{role.upper()}_FRAUD_RATE",
            f"the share of the customer's {noun} {_LABELLED}",
            share(f"the customer's {noun} were {_LABELLED} (labels known before this decision)"),
        ),
    }
    return f"{role}_{measure}_{window}", Behaviour(meaning, reasons[measure])


def _say(code: str, subject: str, sentence: str) -> FeatureReason:
    """A reason whose sentence puts the value into ``sentence`` at ``{n}`` (an integer count)."""
    return FeatureReason(code, subject, lambda v, raw: sentence.format(n=f"{as_int(v):,}"))


def _countries(code: str, subject: str, lead: str, tail: str = "") -> FeatureReason:
    return FeatureReason(code, subject, lambda v, raw: f"{lead} {count(v, 'country', 'countries')}{tail}")


def _price(v: Any, raw: Mapping[str, Any]) -> str:
    ratio = math.exp(float(v))
    lead = "the customer's sales in the past 30 days were priced"
    if ratio < 0.95:
        return f"{lead} {100 * (1 - ratio):.0f}% below the category reference prices on average"
    if ratio > 1.05:
        return f"{lead} {100 * (ratio - 1):.0f}% above the category reference prices on average"
    return f"{lead} close to the category reference prices"


def _events(group: str, meaning: str) -> Behaviour:
    """An ``EVENT_GROUPS`` count over 30 days."""
    singular, plural = ACCOUNT_EVENT_NOUNS.get(
        group, ("e-mail, phone or address change", "e-mail, phone and address changes")
    )
    return Behaviour(
        meaning,
        FeatureReason(
            "ACCOUNT_EVENTS_RECENT",
            f"the number of {plural} on the customer's account in the past 30 days",
            lambda v, raw: f"{count(v, singular, plural)} on the customer's account in the past 30 days",
        ),
    )


_LINKED_BAD = "sharing a device, phone number, address or e-mail with this one"
# Output of customer_behaviour, in order: column -> meaning and reason. Every column is float64.
# Counts and sums are 0 with no history; shares, means and rates are NaN without a denominator.
BEHAVIOURS: dict[str, Behaviour] = dict(
    [
        _role("buyer", "30d", "txn_count", "orders the customer placed as buyer in the 30 days before as_of"),
        _role(
            "buyer",
            "all",
            "txn_count",
            "orders the customer placed as buyer before as_of (all history given)",
        ),
        _role("buyer", "30d", "amount_sum", "USD amount of those orders, 30 days"),
        _role("buyer", "all", "amount_sum", "USD amount of those orders, all history"),
        (
            "buyer_seller_nunique_30d",
            Behaviour(
                "distinct sellers bought from, 30 days",
                _say(
                    "FAN_OUT",
                    "the number of different sellers the customer bought from in the past 30 days",
                    "the customer bought from {n} different sellers in the past 30 days",
                ),
            ),
        ),
        (
            "buyer_sellercountry_nunique_30d",
            Behaviour(
                "distinct seller (ship-from) countries bought from, 30 days",
                _countries(
                    "CUSTOMER_COUNTRIES",
                    "the number of countries the customer's purchases shipped from in the past 30 days",
                    "the customer's purchases in the past 30 days shipped from",
                ),
            ),
        ),
        (
            "buyer_ipcountry_nunique_30d",
            Behaviour(
                "distinct IP countries the customer ordered from, 30 days",
                _countries(
                    "MANY_IP_COUNTRIES",
                    "the number of IP countries the customer ordered from in the past 30 days",
                    "the customer ordered from IP addresses in",
                    " in the past 30 days",
                ),
            ),
        ),
        _role(
            "buyer",
            "30d",
            "crossborder_mean",
            "share of purchases shipped across a border, 30 days (NaN: none with known countries)",
        ),
        _role("buyer", "all", "crossborder_mean", "share of purchases shipped across a border, all history"),
        _role(
            "buyer",
            "30d",
            "highrisk_mean",
            "share of purchases in high-risk or restricted goods categories, 30 days (NaN: none)",
        ),
        _role(
            "buyer",
            "all",
            "highrisk_mean",
            "share of purchases in high-risk or restricted goods categories, all history",
        ),
        (
            "buyer_restricted_count_all",
            Behaviour(
                "purchases in restricted goods categories (drug precursors), all history",
                FeatureReason(
                    "RISKY_GOODS",
                    "the number of the customer's purchases of restricted goods",
                    lambda v, raw: (
                        "the customer bought restricted goods (such as drug precursors) "
                        f"{count(v, 'time', 'times')} before this decision"
                    ),
                ),
            ),
        ),
        _role(
            "buyer",
            "all",
            "fraud_count",
            "purchases with a fraud/money_laundering/restricted_goods label known before as_of",
        ),
        _role(
            "buyer", "all", "fraud_rate", "buyer_fraud_count_all / buyer_txn_count_all (NaN: no purchases)"
        ),
        _role("seller", "30d", "txn_count", "orders the customer received as seller, 30 days"),
        _role("seller", "all", "txn_count", "orders the customer received as seller, all history"),
        _role("seller", "30d", "amount_sum", "USD amount of those sales, 30 days"),
        _role("seller", "all", "amount_sum", "USD amount of those sales, all history"),
        (
            "seller_buyer_nunique_30d",
            Behaviour(
                "distinct buyers sold to, 30 days",
                _say(
                    "FAN_IN",
                    "the number of different buyers the customer sold to in the past 30 days",
                    "the customer sold to {n} different buyers in the past 30 days",
                ),
            ),
        ),
        (
            "seller_buyercountry_nunique_30d",
            Behaviour(
                "distinct buyer (ship-to) countries sold to, 30 days",
                _countries(
                    "SELLER_BUYER_COUNTRIES",
                    "the number of countries the customer's sales shipped to in the past 30 days",
                    "the customer's sales in the past 30 days shipped to",
                ),
            ),
        ),
        _role(
            "seller",
            "30d",
            "crossborder_mean",
            "share of sales shipped across a border, 30 days (NaN: none with known countries)",
        ),
        _role("seller", "all", "crossborder_mean", "share of sales shipped across a border, all history"),
        _role(
            "seller",
            "30d",
            "highrisk_mean",
            "share of sales in high-risk or restricted goods categories, 30 days (NaN: none)",
        ),
        _role(
            "seller",
            "all",
            "highrisk_mean",
            "share of sales in high-risk or restricted goods categories, all history",
        ),
        (
            "seller_logpricetoref_mean_30d",
            Behaviour(
                "mean natural log of unit price / category reference price over sales, 30 days "
                "(negative: cheap; NaN: none)",
                FeatureReason(
                    "PRICE_BELOW_REFERENCE",
                    "the customer's sale prices against the category reference prices in the past 30 days",
                    _price,
                ),
            ),
        ),
        _role(
            "seller",
            "all",
            "fraud_count",
            "sales with a fraud/money_laundering/restricted_goods label known before as_of",
        ),
        _role("seller", "all", "fraud_rate", "seller_fraud_count_all / seller_txn_count_all (NaN: no sales)"),
        (
            "customer_amount_sum_30d",
            Behaviour(
                "USD amount bought plus sold, 30 days (PartyProfileFeatures reads it for volume_vs_declared)",
                FeatureReason(
                    "CUSTOMER_VOLUME",
                    "the customer's volume bought and sold in the past 30 days",
                    lambda v, raw: (
                        f"the customer bought and sold {money(v)} in the 30 days before this decision"
                    ),
                ),
            ),
        ),
        (
            "customer_volume_vs_declared",
            Behaviour(
                "customer_amount_sum_30d / declared monthly volume (NaN: nothing declared, or 0)",
                # PartyProfileFeatures recomputes this column with the same formula: its reason.
                party_reasons(PARTY, "this decision")["volume_vs_declared"],
            ),
        ),
        (
            "customer_txn_since_last_all",
            Behaviour(
                "hours since the customer's latest order as buyer or seller (NaN: none yet)",
                FeatureReason(
                    "CUSTOMER_VELOCITY",
                    "the time since the customer's latest order",
                    lambda v, raw: (
                        f"the customer's latest order was {duration(float(v) * SINCE_LAST_UNIT_SECONDS)} "
                        "before this decision"
                    ),
                ),
            ),
        ),
        ("customer_password_reset_count_30d", _events("password_reset", "password resets, 30 days")),
        (
            "customer_twofa_disabled_count_30d",
            _events("twofa_disabled", "2FA deactivations, 30 days"),
        ),
        ("customer_device_change_count_30d", _events("device_change", "device changes, 30 days")),
        ("customer_login_failed_count_30d", _events("login_failed", "failed logins, 30 days")),
        (
            "customer_contact_change_count_30d",
            _events("contact_change", "e-mail, phone and address changes, 30 days"),
        ),
        (
            "customer_device_nunique_all",
            Behaviour(
                "distinct devices seen on the account (purchases and account events), all history",
                FeatureReason(
                    "MANY_DEVICES",
                    "the number of devices used on the customer's account",
                    lambda v, raw: (
                        f"{count(v, 'device', 'different devices')} used on the customer's account before this decision"
                    ),
                ),
            ),
        ),
        (
            "customer_linked_nunique_all",
            Behaviour(
                "distinct other customers linked by a shared device, phone, address or e-mail, as known at as_of",
                FeatureReason(
                    "LINKED_ACCOUNTS",
                    "the number of other customers sharing a device, phone number, address or e-mail with this one",
                    lambda v, raw: (
                        "the customer shares a device, phone number, address or e-mail with "
                        f"{count(v, 'other customer', 'other customers')}"
                    ),
                ),
            ),
        ),
        (
            "customer_linked_bad_count_all",
            Behaviour(
                "of those, customers with a bad customer label (BAD_CUSTOMER_LABELS) known before as_of",
                FeatureReason(
                    "LINKED_BAD_ACCOUNTS",
                    "the number of linked customers known to be bad",
                    lambda v, raw: (
                        f"{count(v, 'customer', 'customers')} {_LINKED_BAD} "
                        f"{'is' if as_int(v) == 1 else 'are'} known bad (money laundering, synthetic identity or sanctions)"
                    ),
                ),
            ),
        ),
        (
            "customer_legitimate_known",
            Behaviour(
                "1 when a 'legitimate' customer label (reviewed, found OK) was known before as_of, else 0",
                FeatureReason(
                    "REVIEWED_LEGITIMATE",
                    "whether an earlier review found the customer legitimate",
                    binary(
                        "an earlier review found the customer legitimate",
                        "no earlier review has cleared the customer",
                    ),
                ),
            ),
        ),
    ]
)
BEHAVIOUR_COLUMNS: dict[str, str] = {name: b.meaning for name, b in BEHAVIOURS.items()}


# --- 2. behaviour -----------------------------------------------------------------------------


def customer_behaviour(
    snapshots: pd.DataFrame,
    transactions: pd.DataFrame,
    account_events: pd.DataFrame,
    labels: pd.DataFrame,
    *,
    customers: pd.DataFrame,
    max_link_group: int = 100,
    reference: Reference | None = None,
) -> pd.DataFrame:
    """Behaviour of each snapshot's customer before ``as_of``, as buyer, as seller and as an account.

    Point in time: only orders and account events with ``occurred_at < as_of`` and labels with
    ``known_at < as_of``; 30-day windows are ``(as_of - 30 days, as_of)``; ``all`` means all
    history in the frames given. USD amounts come from ``features.definitions``' row function
    ``amount_usd`` (committed FX table). Vectorised: one sort per event stream and
    ``np.searchsorted`` per window, no loop over snapshots or customers.

    A pure function of its inputs: for one customer at serving time pass the rows
    ``customer_rows`` selects and the result equals the batch row.

    Args:
        snapshots: ``customer_id``, ``as_of`` (e.g. ``snapshot_times``); not modified.
        transactions: ``transactions`` rows (contract columns ``transaction_id``, ``occurred_at``,
            ``buyer_id``, ``seller_id``, ``amount``, ``currency``, ``goods_category``,
            ``unit_price``, ``buyer_country``, ``seller_country``, ``device_id``,
            ``ip_country``).
        account_events: ``account_events`` rows (``customer_id``, ``occurred_at``,
            ``event_type``, ``device_id``); may be empty.
        labels: ``labels`` rows (``entity_type``, ``entity_id``, ``label``, ``known_at``); may be
            empty.
        customers: the ``customers`` table: declared monthly volume of the snapshot's customer,
            and ``onboarded_at`` / phone / address / e-mail of everybody for profile links. Keyword
            only and required: without it two columns would silently be empty.
        max_link_group: a device, phone, address or e-mail links only its first this-many users
            (by first use): keeps the pair join small and point in time.
        reference: FX and category reference lookups (default: the committed tables).

    Returns:
        One row per snapshot, in order and with the index of ``snapshots``; every column is
        float64. Counts and sums are 0 with no history; shares, means and rates are NaN without a
        denominator. Columns (``BEHAVIOUR_COLUMNS`` holds the same list with these meanings):

        - ``buyer_txn_count_30d`` / ``buyer_txn_count_all``: orders placed as buyer, 30 days / all;
        - ``buyer_amount_sum_30d`` / ``buyer_amount_sum_all``: their USD amount;
        - ``buyer_seller_nunique_30d``: distinct sellers bought from, 30 days;
        - ``buyer_sellercountry_nunique_30d``: distinct ship-from countries, 30 days;
        - ``buyer_ipcountry_nunique_30d``: distinct IP countries of the purchases, 30 days;
        - ``buyer_crossborder_mean_30d`` / ``_all``: share of cross-border purchases (among those
          with both countries known);
        - ``buyer_highrisk_mean_30d`` / ``_all``: share of purchases in goods categories of risk
          ``high`` or ``restricted`` (goods_categories.csv);
        - ``buyer_restricted_count_all``: purchases in ``restricted`` categories;
        - ``buyer_fraud_count_all``: purchases with a bad transaction label
          (``BAD_TRANSACTION_LABELS``) known before ``as_of``; ``buyer_fraud_rate_all``: that over
          ``buyer_txn_count_all``;
        - ``seller_txn_count_30d`` / ``_all``, ``seller_amount_sum_30d`` / ``_all``: the same for
          sales;
        - ``seller_buyer_nunique_30d``: distinct buyers; ``seller_buyercountry_nunique_30d``:
          distinct ship-to countries, 30 days;
        - ``seller_crossborder_mean_30d`` / ``_all``, ``seller_highrisk_mean_30d`` / ``_all``: shares
          of sales;
        - ``seller_logpricetoref_mean_30d``: mean ``ln(unit price in USD / category reference
          price)`` of sales, 30 days (stolen goods sell far below the reference);
        - ``seller_fraud_count_all`` / ``seller_fraud_rate_all``: sales with a known bad label;
        - ``customer_amount_sum_30d``: USD bought plus sold, 30 days;
        - ``customer_volume_vs_declared``: that over ``declared_monthly_volume_usd`` (NaN when
          nothing or 0 was declared): outgrown KYC;
        - ``customer_txn_since_last_all``: hours since the latest order in either role;
        - ``customer_{password_reset,twofa_disabled,device_change,login_failed,contact_change}_count_30d``:
          account events of those types in 30 days (contact change: e-mail, phone or address);
        - ``customer_device_nunique_all``: distinct devices on purchases and account events;
        - ``customer_linked_nunique_all``: distinct other customers sharing a device (both used it
          before ``as_of``) or a phone, address or e-mail (both onboarded before ``as_of``);
        - ``customer_linked_bad_count_all``: linked customers with a bad customer label
          (``BAD_CUSTOMER_LABELS``) known before ``as_of``;
        - ``customer_legitimate_known``: 1 when a ``legitimate`` customer label was known before
          ``as_of``.

    Raises:
        ValueError: missing columns, null times or ids, or a snapshot customer missing from
            ``customers``.
    """
    q_t = check_snapshots(snapshots)
    require_columns(transactions, TX_COLUMNS, "transactions")
    require_columns(account_events, EVENT_COLUMNS, "account_events")
    require_columns(labels, LABEL_COLUMNS, "labels")
    require_columns(customers, ("customer_id", "onboarded_at", "declared_monthly_volume_usd"), "customers")
    reference = reference or Reference()
    cust = by_id(customers)
    q_ids = as_text(snapshots["customer_id"])
    unknown = ~q_ids.isin(cust.index)
    if unknown.any():
        raise ValueError(
            f"{int(unknown.sum())} snapshots name a customer missing from customers (e.g. {q_ids[unknown].iloc[0]!r})"
        )

    (q_c, cust_c, buyer, seller, ev_c), customer_ids = factorize(
        snapshots["customer_id"],
        cust["customer_id"],
        transactions["buyer_id"],
        transactions["seller_id"],
        account_events["customer_id"],
    )
    n_c = len(customer_ids)
    occurred = to_us(transactions["occurred_at"], "transactions.occurred_at")
    out: dict[str, np.ndarray] = {}

    # Row-level values of every order, from the shared row functions of features.definitions.
    inputs = {
        "amount": transactions["amount"].to_numpy(dtype=float),
        "currency": transactions["currency"].to_numpy(dtype=object),
        "unit_price": transactions["unit_price"].to_numpy(dtype=float),
        "goods_category": transactions["goods_category"].to_numpy(dtype=object),
        "buyer_country": transactions["buyer_country"].to_numpy(dtype=object),
        "seller_country": transactions["seller_country"].to_numpy(dtype=object),
    }
    rows = compute_row_features(["amount_usd", "cross_border", "unit_price_to_reference"], inputs, reference)
    amount_units = np.rint(rows["amount_usd"] / AMOUNT_UNIT).astype(np.int64)
    cross = rows["cross_border"]
    cross_known = (~np.isnan(cross)).astype(np.int64)
    cross_yes = np.nan_to_num(cross, nan=0.0).astype(np.int64)
    goods = load_reference("goods_categories")
    category_code, categories = pd.factorize(as_text(transactions["goods_category"]))
    risk = pd.Series(goods["risk"].to_numpy(), index=goods["category"].to_numpy()).reindex(
        np.asarray(categories)
    )
    high = np.append(risk.isin(HIGH_RISK_CLASSES).to_numpy(), False)[category_code].astype(np.int64)
    restricted = np.append(risk.eq("restricted").fillna(False).to_numpy(dtype=bool), False)[category_code]
    restricted = restricted.astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_price = np.log(rows["unit_price_to_reference"])
    price_known = np.isfinite(log_price)
    log_units = np.rint(np.where(price_known, log_price, 0.0) / LOG_UNIT).astype(np.int64)

    # Bad transaction labels known before as_of: an order counts from max(occurred, known).
    bad_known = label_times(labels, "transaction", BAD_TRANSACTION_LABELS, transactions["transaction_id"])
    is_bad = bad_known < MAX_US
    bad_from = np.maximum(occurred[is_bad], bad_known[is_bad])

    country, country_values = factorize(
        transactions["buyer_country"], transactions["seller_country"], transactions["ip_country"]
    )
    country = dict(zip(("buyer_country", "seller_country", "ip_country"), country, strict=True))
    n_country = len(country_values)

    for role, party, other, other_country in (
        ("buyer", buyer, seller, "seller_country"),
        ("seller", seller, buyer, "buyer_country"),
    ):
        tl = Timeline(party, occurred, n_c)
        amount, known, yes = tl.prefix(amount_units), tl.prefix(cross_known), tl.prefix(cross_yes)
        risky = tl.prefix(high)
        for window, width in (("30d", WINDOW_30D), ("all", None)):
            lo, hi = tl.window(q_c, q_t, width)
            out[f"{role}_txn_count_{window}"] = (hi - lo).astype(np.float64)
            out[f"{role}_amount_sum_{window}"] = (amount[hi] - amount[lo]) * AMOUNT_UNIT
            out[f"{role}_crossborder_mean_{window}"] = ratio(yes[hi] - yes[lo], known[hi] - known[lo])
            out[f"{role}_highrisk_mean_{window}"] = ratio(risky[hi] - risky[lo], hi - lo)
            if role == "buyer" and window == "all":
                r = tl.prefix(restricted)
                out["buyer_restricted_count_all"] = (r[hi] - r[lo]).astype(np.float64)
            if role == "seller" and window == "30d":
                s, k = tl.prefix(log_units), tl.prefix(price_known.astype(np.int64))
                out["seller_logpricetoref_mean_30d"] = ratio((s[hi] - s[lo]) * LOG_UNIT, k[hi] - k[lo])
        counterpart = "seller" if role == "buyer" else "buyer"
        out[f"{role}_{counterpart}_nunique_30d"] = distinct_count(
            party, other, occurred, n_c, n_c, q_c, q_t, WINDOW_30D
        )
        out[f"{role}_{other_country.replace('_', '')}_nunique_30d"] = distinct_count(
            party, country[other_country], occurred, n_c, n_country, q_c, q_t, WINDOW_30D
        )
        if role == "buyer":
            out["buyer_ipcountry_nunique_30d"] = distinct_count(
                party, country["ip_country"], occurred, n_c, n_country, q_c, q_t, WINDOW_30D
            )
        bad_count = Timeline(party[is_bad], bad_from, n_c).count(q_c, q_t)
        out[f"{role}_fraud_count_all"] = bad_count
        out[f"{role}_fraud_rate_all"] = ratio(bad_count, out[f"{role}_txn_count_all"])

    # Both roles together.
    out["customer_amount_sum_30d"] = out["buyer_amount_sum_30d"] + out["seller_amount_sum_30d"]
    declared = cust["declared_monthly_volume_usd"].reindex(q_ids.to_numpy()).to_numpy(dtype=float)
    out["customer_volume_vs_declared"] = ratio(
        out["customer_amount_sum_30d"], np.where(declared > 0, declared, 0.0)
    )
    both = Timeline(np.concatenate([buyer, seller]), np.concatenate([occurred, occurred]), n_c)
    hi, first = both.position(q_c, q_t), both.start(q_c)
    latest = both.times[np.maximum(hi - 1, 0)] if len(both) else np.zeros(len(q_t), dtype=np.int64)
    out["customer_txn_since_last_all"] = np.where(hi > first, (q_t - latest) / US_PER_HOUR, np.nan)

    # Account events per type group, 30 days: one timeline keyed by (customer, group).
    ev_t = to_us(account_events["occurred_at"], "account_events.occurred_at")
    group_of = {t: i for i, types in enumerate(EVENT_GROUPS.values()) for t in types}
    type_code, types = pd.factorize(as_text(account_events["event_type"]))
    groups = np.append([group_of.get(str(t), -1) for t in types], -1).astype(np.int64)[type_code]
    g = np.int64(len(EVENT_GROUPS))
    events = Timeline(np.where((groups >= 0) & (ev_c >= 0), ev_c * g + groups, -1), ev_t, n_c * int(g))
    for i, name in enumerate(EVENT_GROUPS):
        out[f"customer_{name}_count_30d"] = events.count(q_c * g + i, q_t, WINDOW_30D)

    # Devices and links (point in time: a link exists from the moment both sides had the key).
    (tx_device, ev_device), device_values = factorize(transactions["device_id"], account_events["device_id"])
    first_use = first_times(
        np.concatenate([buyer, ev_c]),
        np.concatenate([tx_device, ev_device]),
        np.concatenate([occurred, ev_t]),
        n_c,
        len(device_values),
    )
    out["customer_device_nunique_all"] = Timeline(
        first_use["c"].to_numpy(), first_use["t"].to_numpy(), n_c
    ).count(q_c, q_t)
    pairs = [link_pairs(first_use, max_link_group)]
    onboarded = to_us(cust["onboarded_at"], "customers.onboarded_at")
    for column in LINK_PROFILE_COLUMNS:
        if column in cust.columns:
            key, values = pd.factorize(as_text(cust[column]).str.strip().str.lower())
            first = first_times(cust_c, np.asarray(key, dtype=np.int64), onboarded, n_c, len(values))
            pairs.append(link_pairs(first, max_link_group))
    links = pd.concat(pairs, ignore_index=True).groupby(["c", "other"], sort=False, as_index=False)["t"].min()
    link_c, link_other, link_t = (links[c].to_numpy(dtype=np.int64) for c in ("c", "other", "t"))
    out["customer_linked_nunique_all"] = Timeline(link_c, link_t, n_c).count(q_c, q_t)
    all_ids = pd.Series(np.asarray(customer_ids, dtype=object))
    bad_customer = label_times(labels, "customer", BAD_CUSTOMER_LABELS, all_ids)[link_other]
    flagged = bad_customer < MAX_US
    out["customer_linked_bad_count_all"] = Timeline(
        link_c[flagged], np.maximum(link_t[flagged], bad_customer[flagged]), n_c
    ).count(q_c, q_t)
    legit = label_times(labels, "customer", ("legitimate",), q_ids)
    out["customer_legitimate_known"] = (legit < q_t).astype(np.float64)

    return pd.DataFrame(
        {name: np.asarray(out[name], dtype=np.float64) for name in BEHAVIOUR_COLUMNS}, index=snapshots.index
    )
