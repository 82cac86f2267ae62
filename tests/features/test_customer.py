"""Customer risk-tier dataset: snapshots, behaviour (hand-computed, point in time, parity), frame, targets."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from features.customer import (
    BEHAVIOUR_COLUMNS,
    ID_COLUMNS,
    customer_behaviour,
    customer_flags,
    customer_frame,
    customer_rows,
    screen_snapshots,
    snapshot_times,
)
from features.profile import PartyProfileFeatures
from features.reference import load_reference
from features.screening import WatchlistScreener
from training.customer_targets import customer_patterns, customer_review_targets, customer_targets

T0 = pd.Timestamp("2026-03-01", tz="UTC")
US = pd.Timedelta(microseconds=1)
DAY = pd.Timedelta(days=1)
LINK_COLUMNS = ("customer_linked_nunique_all", "customer_linked_bad_count_all")


# --- hand-made tables --------------------------------------------------------------------------


def _customer(customer_id: str, onboarded: pd.Timestamp, **overrides) -> dict:
    row = {
        "customer_id": customer_id,
        "customer_type": "individual",
        "role": "both",
        "full_name": f"Person {customer_id}",
        "birth_date": pd.Timestamp("1990-01-01", tz="UTC"),
        "email": f"{customer_id.lower()}@example.org",
        "email_first_seen_at": pd.Timestamp("2015-01-01", tz="UTC"),
        "phone": "+49151" + "".join(f"{ord(ch):03d}" for ch in customer_id)[-7:].rjust(7, "0"),
        "address": f"{customer_id} Street 1, Berlin",
        "nationality": "DE",
        "residence_country": "DE",
        "document_type": "driving_licence",
        "document_number": f"DL{customer_id}",
        "document_country": "DE",
        "document_expiry": pd.Timestamp("2030-01-01", tz="UTC"),
        "business_registration_number": None,
        "business_registered_at": pd.NaT,
        "industry": None,
        "twofa_enabled": True,
        "onboarded_at": onboarded,
        "last_kyc_review_at": onboarded,
        "declared_monthly_volume_usd": np.nan,
    }
    row.update(overrides)
    return row


def _customers(*rows: dict) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows))
    for column in (
        "birth_date",
        "email_first_seen_at",
        "document_expiry",
        "business_registered_at",
        "onboarded_at",
        "last_kyc_review_at",
    ):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["twofa_enabled"] = frame["twofa_enabled"].astype("boolean")
    frame["declared_monthly_volume_usd"] = frame["declared_monthly_volume_usd"].astype("float64")
    return frame


def _tx(
    tid,
    at,
    buyer,
    seller,
    amount,
    currency="USD",
    category="general",
    buyer_country="DE",
    seller_country="DE",
    device=None,
    ip_country=None,
    unit_price=None,
):
    return {
        "transaction_id": tid,
        "occurred_at": at,
        "buyer_id": buyer,
        "seller_id": seller,
        "amount": float(amount),
        "currency": currency,
        "goods_category": category,
        "unit_price": float(unit_price if unit_price is not None else amount),
        "quantity": 1,
        "payment_method": "card",
        "buyer_country": buyer_country,
        "seller_country": seller_country,
        "device_id": device,
        "ip_address": None,
        "ip_country": ip_country,
    }


def _frame(rows: list[dict], time_columns: tuple[str, ...]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in time_columns:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


def _event(eid, customer, at, event_type, device=None):
    return {
        "event_id": eid,
        "customer_id": customer,
        "occurred_at": at,
        "event_type": event_type,
        "device_id": device,
        "ip_address": None,
        "ip_country": None,
    }


def _label(lid, entity_type, entity_id, label, known_at):
    return {
        "label_id": lid,
        "entity_type": entity_type,
        "entity_id": entity_id,
        "label": label,
        "known_at": known_at,
        "source": "investigation",
    }


def _world():
    """Customer A buys from B and E around T0; C shares a device with A, D shares A's phone."""
    customers = _customers(
        _customer(
            "A", T0 - 400 * DAY, role="buyer", declared_monthly_volume_usd=1000.0, phone="+4915100000001"
        ),
        _customer("B", T0 - 400 * DAY, role="seller", customer_type="business", industry="electronics"),
        _customer("C", T0 - 400 * DAY),
        _customer("D", T0 - 100 * DAY, phone="+4915100000001"),
        _customer("E", T0 - 400 * DAY, role="seller"),
        _customer("F", T0 - 400 * DAY),
        _customer("G", T0 + 5 * DAY, address="A Street 1, Berlin"),
    )
    transactions = _frame(
        [
            _tx(
                "t1",
                T0 - 40 * DAY,
                "A",
                "B",
                100,
                category="electronics",
                seller_country="CN",
                device="dA",
                ip_country="DE",
            ),
            _tx(
                "t2",
                T0 - 30 * DAY,
                "A",
                "B",
                50,
                category="precursor_chemicals",
                device="dA",
                ip_country="DE",
            ),
            _tx(
                "t3",
                T0 - 30 * DAY + US,
                "A",
                "B",
                200,
                currency="EUR",
                category="phones",
                seller_country="CN",
                device="dA",
                ip_country="DE",
            ),
            _tx(
                "t4",
                T0 - DAY,
                "A",
                "E",
                10,
                category="books",
                seller_country=None,
                device="dA",
                ip_country="FR",
            ),
            _tx("t5", T0, "A", "B", 999, category="phones", device="dA", ip_country="US"),
            _tx("t6", T0 + DAY, "A", "B", 999, category="phones", device="dA", ip_country="US"),
            _tx("t7", T0 - 2 * DAY, "C", "B", 20, device="dX", ip_country="DE"),
        ],
        ("occurred_at",),
    )
    events = _frame(
        [
            _event("e1", "A", T0 - 10 * DAY, "password_reset"),
            _event("e2", "A", T0 - 31 * DAY, "password_reset"),
            _event("e3", "A", T0 - 30 * DAY, "twofa_disabled"),
            _event("e4", "A", T0 - pd.Timedelta(hours=1), "device_change", "dA2"),
            _event("e5", "A", T0 - 2 * DAY, "email_change"),
            _event("e6", "A", T0 - 3 * DAY, "address_change"),
            _event("e7", "A", T0, "login_failed"),
            _event("e8", "A", T0 - 5 * DAY, "login", "dX"),
        ],
        ("occurred_at",),
    )
    labels = _frame(
        [
            _label("l1", "transaction", "t1", "fraud", T0 - US),
            _label("l2", "transaction", "t3", "fraud", T0),
            _label("l3", "customer", "D", "synthetic_identity", T0 - DAY),
            _label("l4", "customer", "A", "legitimate", T0 - US),
        ],
        ("known_at",),
    )
    return customers, transactions, events, labels


def _snap(*pairs) -> pd.DataFrame:
    return pd.DataFrame(
        {"customer_id": [p[0] for p in pairs], "as_of": pd.to_datetime([p[1] for p in pairs], utc=True)}
    )


# --- snapshots ---------------------------------------------------------------------------------


def test_snapshot_times_onboarding_then_regular_dates():
    start, end = pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-03-15", tz="UTC")
    customers = _customers(
        _customer("old", pd.Timestamp("2025-06-01", tz="UTC")),
        _customer("new", pd.Timestamp("2026-01-20 10:00", tz="UTC")),
        _customer("late", pd.Timestamp("2026-03-20", tz="UTC")),
    )
    snaps = snapshot_times(customers, start, end, every="30D")
    got = list(zip(snaps["customer_id"], snaps["as_of"], strict=True))
    jan31, mar02 = pd.Timestamp("2026-01-31", tz="UTC"), pd.Timestamp("2026-03-02", tz="UTC")
    assert got == [
        ("new", pd.Timestamp("2026-01-20 10:00", tz="UTC") + US),
        ("new", jan31),
        ("old", jan31),
        ("new", mar02),
        ("old", mar02),
    ]
    assert list(snaps.columns) == ["customer_id", "as_of"]
    assert str(snaps["as_of"].dtype) == "datetime64[us, UTC]"
    with pytest.raises(ValueError, match="not before"):
        snapshot_times(customers, end, start)


# --- behaviour, hand-computed ------------------------------------------------------------------


def test_behaviour_buyer_hand_computed_window_edges_and_labels():
    customers, transactions, events, labels = _world()
    row = customer_behaviour(_snap(("A", T0)), transactions, events, labels, customers=customers).iloc[0]
    eur = float(load_reference("fx_rates").set_index("currency").loc["EUR", "usd_per_unit"])
    # t2 sits exactly 30 days before T0 (open window: out), t3 one microsecond later (in);
    # t5 at T0 and t6 after it are never seen.
    assert row["buyer_txn_count_30d"] == 2  # t3, t4
    assert row["buyer_txn_count_all"] == 4  # t1-t4
    assert row["buyer_amount_sum_30d"] == pytest.approx(200 * eur + 10, abs=1e-3)
    assert row["buyer_amount_sum_all"] == pytest.approx(160 + 200 * eur, abs=1e-3)
    assert row["buyer_seller_nunique_30d"] == 2  # B, E
    assert row["buyer_sellercountry_nunique_30d"] == 1  # CN; t4's seller country is unknown
    assert row["buyer_ipcountry_nunique_30d"] == 2  # DE, FR
    assert row["buyer_crossborder_mean_30d"] == 1.0  # t3 crosses, t4 unknown
    assert row["buyer_crossborder_mean_all"] == pytest.approx(2 / 3)  # t1, t3 of t1-t3
    assert row["buyer_highrisk_mean_30d"] == 0.5  # phones yes, books no
    assert row["buyer_highrisk_mean_all"] == 0.75  # electronics, precursors, phones
    assert row["buyer_restricted_count_all"] == 1
    # t1's fraud label was known 1 µs before T0; t3's exactly at T0 (not yet known)
    assert row["buyer_fraud_count_all"] == 1
    assert row["buyer_fraud_rate_all"] == 0.25
    assert row["seller_txn_count_all"] == 0 and row["seller_amount_sum_30d"] == 0
    assert math.isnan(row["seller_crossborder_mean_30d"]) and math.isnan(row["seller_fraud_rate_all"])
    assert row["customer_amount_sum_30d"] == pytest.approx(200 * eur + 10, abs=1e-3)
    assert row["customer_volume_vs_declared"] == pytest.approx((200 * eur + 10) / 1000, abs=1e-6)
    assert row["customer_txn_since_last_all"] == 24.0
    assert row["customer_password_reset_count_30d"] == 1  # e1; e2 is 31 days old
    assert row["customer_twofa_disabled_count_30d"] == 0  # exactly 30 days old
    assert row["customer_device_change_count_30d"] == 1
    assert row["customer_contact_change_count_30d"] == 2
    assert row["customer_login_failed_count_30d"] == 0  # at T0 itself
    assert row["customer_device_nunique_all"] == 3  # dA, dA2, dX
    # C used dX (also A's) 2 days ago; D shares A's phone and was onboarded before T0 and is a
    # known synthetic identity; G shares A's address but is onboarded after T0.
    assert row["customer_linked_nunique_all"] == 2
    assert row["customer_linked_bad_count_all"] == 1
    assert row["customer_legitimate_known"] == 1


def test_behaviour_seller_hand_computed():
    customers, transactions, events, labels = _world()
    row = customer_behaviour(_snap(("B", T0)), transactions, events, labels, customers=customers).iloc[0]
    eur = float(load_reference("fx_rates").set_index("currency").loc["EUR", "usd_per_unit"])
    phones = float(
        load_reference("goods_categories").set_index("category").loc["phones", "reference_unit_price_usd"]
    )
    general = float(
        load_reference("goods_categories").set_index("category").loc["general", "reference_unit_price_usd"]
    )
    assert row["seller_txn_count_30d"] == 2  # t3, t7
    assert row["seller_txn_count_all"] == 4  # t1, t2, t3, t7
    assert row["seller_buyer_nunique_30d"] == 2  # A, C
    assert row["seller_buyercountry_nunique_30d"] == 1  # DE
    assert row["seller_crossborder_mean_30d"] == 0.5
    assert row["seller_highrisk_mean_all"] == 0.75
    expected = (math.log(200 * eur / phones) + math.log(20 / general)) / 2
    assert row["seller_logpricetoref_mean_30d"] == pytest.approx(expected, abs=1e-8)
    assert row["seller_fraud_count_all"] == 1 and row["seller_fraud_rate_all"] == 0.25
    assert row["buyer_txn_count_all"] == 0
    assert math.isnan(row["customer_volume_vs_declared"])  # nothing declared


def test_behaviour_at_onboarding_has_no_history():
    customers, transactions, events, labels = _world()
    snaps = snapshot_times(customers, T0 - 200 * DAY, T0 + 30 * DAY)
    onboarding = snaps[
        snaps["customer_id"].isin(["D", "G"])
        & (
            snaps["as_of"]
            == snaps["customer_id"].map(customers.set_index("customer_id")["onboarded_at"]) + US
        )
    ]
    assert len(onboarding) == 2
    beh = customer_behaviour(onboarding, transactions, events, labels, customers=customers)
    counts = [
        c
        for c in BEHAVIOUR_COLUMNS
        if c.endswith(("_count_30d", "_count_all", "_sum_30d", "_sum_all", "nunique_30d", "_nunique_all"))
    ]
    assert (beh[counts].drop(columns=list(LINK_COLUMNS[:1])) == 0).all().all()
    # D was onboarded after A: the shared phone is a link from D's first moment on
    assert beh["customer_linked_nunique_all"].tolist() == [1.0, 1.0]


def test_behaviour_output_shape_types_and_order():
    customers, transactions, events, labels = _world()
    snaps = _snap(("B", T0), ("A", T0), ("A", T0 - 35 * DAY)).set_axis([10, 5, 7])
    beh = customer_behaviour(snaps, transactions, events, labels, customers=customers)
    assert list(beh.columns) == list(BEHAVIOUR_COLUMNS)
    assert list(beh.index) == [10, 5, 7]
    assert (beh.dtypes == "float64").all()
    assert beh.loc[7, "buyer_txn_count_all"] == 1  # only t1 before T0 - 35 days
    single = customer_behaviour(snaps.loc[[5]], transactions, events, labels, customers=customers)
    pd.testing.assert_frame_equal(single, beh.loc[[5]])


def test_behaviour_rejects_unknown_customer_and_missing_columns():
    customers, transactions, events, labels = _world()
    with pytest.raises(ValueError, match="missing from customers"):
        customer_behaviour(_snap(("Z", T0)), transactions, events, labels, customers=customers)
    with pytest.raises(ValueError, match="transactions is missing"):
        customer_behaviour(
            _snap(("A", T0)), transactions.drop(columns=["currency"]), events, labels, customers=customers
        )
    with pytest.raises(TypeError):
        customer_behaviour(_snap(("A", T0)), transactions, events, labels)  # customers is required


def test_no_leakage_future_rows_change_nothing():
    customers, transactions, events, labels = _world()
    snaps = _snap(("A", T0), ("B", T0), ("C", T0), ("D", T0))
    before = customer_behaviour(snaps, transactions, events, labels, customers=customers)
    later = T0 + pd.Timedelta(seconds=1)
    more_tx = pd.concat(
        [
            transactions,
            _frame(
                [
                    _tx("t9", later, "A", "B", 5000, category="gift_cards", device="dX"),
                    _tx("t10", T0, "F", "A", 70, device="dA"),
                ],
                ("occurred_at",),
            ),
        ],
        ignore_index=True,
    )
    more_ev = pd.concat(
        [
            events,
            _frame(
                [_event("e9", "A", later, "password_reset", "dF"), _event("e10", "F", T0, "login", "dA")],
                ("occurred_at",),
            ),
        ],
        ignore_index=True,
    )
    more_labels = pd.concat(
        [
            labels,
            _frame(
                [
                    _label("l9", "transaction", "t4", "fraud", later),
                    _label("l10", "customer", "C", "money_laundering", T0),
                    _label("l11", "customer", "A", "legitimate", later),
                ],
                ("known_at",),
            ),
        ],
        ignore_index=True,
    )
    more_customers = pd.concat(
        [customers, _customers(_customer("H", later, phone="+4915100000001"))], ignore_index=True
    )
    after = customer_behaviour(snaps, more_tx, more_ev, more_labels, customers=more_customers)
    pd.testing.assert_frame_equal(before, after)


# --- smoke data set (generator) ----------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke():
    from features.synthetic import generate

    tables = generate(800, 60, seed=1)
    snaps = snapshot_times(tables["customers"], "2026-01-01", "2026-03-02", every="14D")
    behaviour = customer_behaviour(
        snaps,
        tables["transactions"],
        tables["account_events"],
        tables["labels"],
        customers=tables["customers"],
    )
    return tables, snaps, behaviour


def test_parity_one_customer_equals_batch(smoke):
    tables, snaps, behaviour = smoke
    linked = np.flatnonzero(behaviour["customer_linked_nunique_all"].to_numpy() > 0)[:4]
    busy = np.flatnonzero(behaviour["seller_txn_count_all"].to_numpy() > 20)[:3]
    chosen = np.unique(np.concatenate([linked, busy, np.arange(0, len(snaps), len(snaps) // 6)]))
    assert len(linked) and len(busy)
    for i in chosen:
        snap = snaps.iloc[[i]]
        rows = customer_rows(
            snap["customer_id"].iloc[0],
            tables["transactions"],
            tables["account_events"],
            tables["labels"],
            tables["customers"],
        )
        one = customer_behaviour(
            snap, rows["transactions"], rows["account_events"], rows["labels"], customers=rows["customers"]
        )
        # bit-identical: integer counts and sums in integer units of 1/100 cent
        np.testing.assert_array_equal(
            one.iloc[0].to_numpy(), behaviour.iloc[i].to_numpy(), err_msg=f"snapshot {i}"
        )


def test_parity_own_rows_only_differs_in_link_columns(smoke):
    tables, snaps, behaviour = smoke
    i = int(np.flatnonzero(behaviour["customer_linked_nunique_all"].to_numpy() > 0)[0])
    cid = snaps["customer_id"].iloc[i]
    tx = tables["transactions"]
    own_tx = tx[(tx["buyer_id"] == cid) | (tx["seller_id"] == cid)]
    ev = tables["account_events"]
    own_ev = ev[ev["customer_id"] == cid]
    cust = tables["customers"]
    one = customer_behaviour(
        snaps.iloc[[i]], own_tx, own_ev, tables["labels"], customers=cust[cust["customer_id"] == cid]
    )
    others = [c for c in BEHAVIOUR_COLUMNS if c not in LINK_COLUMNS]
    np.testing.assert_array_equal(one[others].iloc[0].to_numpy(), behaviour[others].iloc[i].to_numpy())
    assert one["customer_linked_nunique_all"].iloc[0] == 0


def test_no_leakage_truncated_history_gives_same_past(smoke):
    tables, snaps, behaviour = smoke
    cut = pd.Timestamp("2026-02-01", tz="UTC")
    keep = snaps["as_of"] <= cut
    tx, ev, lab, cust = (tables[k] for k in ("transactions", "account_events", "labels", "customers"))
    truncated = customer_behaviour(
        snaps[keep],
        tx[tx["occurred_at"] < cut],
        ev[ev["occurred_at"] < cut],
        lab[lab["known_at"] < cut],
        customers=cust,
    )
    pd.testing.assert_frame_equal(truncated, behaviour[keep])


def test_smoke_frame_targets_and_direction(smoke):
    tables, snaps, behaviour = smoke
    cust, tx, lab = tables["customers"], tables["transactions"], tables["labels"]
    assert len(behaviour) == len(snaps) > 2000
    never_nan = [
        c
        for c in BEHAVIOUR_COLUMNS
        if "_count_" in c or "_sum_" in c or "nunique" in c or c.endswith("_known")
    ]
    assert not behaviour[never_nan].isna().any().any()
    assert (behaviour[never_nan] >= 0).all().all()

    screener = WatchlistScreener().fit(tables["watchlist"])
    screening = screen_snapshots(cust, snaps, screener)
    frame = customer_frame(cust, snaps, behaviour, screening)
    assert len(frame) == len(snaps)
    assert list(frame.columns[:2]) == ["customer_id", "as_of"]
    for column in (
        "customer_customer_type",
        "customer_role",
        "customer_industry",
        "customer_residence_country",
        "customer_screen_status",
        *BEHAVIOUR_COLUMNS,
    ):
        assert column in frame.columns
    assert set(ID_COLUMNS) <= set(frame.columns)
    assert frame["customer_id"].tolist() == snaps["customer_id"].tolist()

    # the KYC profile transformer runs on the frame with the "customer" prefix, at the snapshot time
    features = PartyProfileFeatures(party="customer", time_column="as_of").fit_transform(frame)
    assert "customer_full_name" not in features.columns
    assert features["customer_account_age_days"].min() >= 0
    np.testing.assert_allclose(features["customer_volume_vs_declared"], frame["customer_volume_vs_declared"])
    flags = customer_flags(features)
    assert list(flags.columns) == [
        "screen_confirmed",
        "screen_possible",
        "doc_expired",
        "doc_check_digit_valid",
        "doc_typo_likely",
    ]

    y = customer_targets(snaps, cust, tx, lab, cutoff=None)
    assert y.dtype == "int8" and 0 < y.mean() < 0.2
    patterns = customer_patterns(snaps, tables["patterns"])
    assert (y[patterns["pattern"] == "account_takeover"] == 0).all()
    assert (y[patterns["pattern"] == "stolen_goods_seller"] == 1).all()
    review = customer_review_targets(snaps, lab, cutoff=None)
    assert (review[patterns["stage"] == "pep"] == 1).any()
    assert (y[patterns["stage"] == "pep"] == 0).all()
    # direction: bad customers are more linked, buy riskier goods and outgrow their declarations
    bad, good = behaviour[y == 1], behaviour[y == 0]
    for column in (
        "customer_linked_nunique_all",
        "buyer_restricted_count_all",
        "customer_volume_vs_declared",
        "buyer_highrisk_mean_all",
    ):
        assert bad[column].mean() > good[column].mean(), column


# --- targets -----------------------------------------------------------------------------------


def _target_world():
    """Sellers and buyers whose orders carry labels, to check the target definition row by row."""
    customers = _customers(
        *(
            _customer(c, T0 - 400 * DAY)
            for c in (
                "victim",
                "thief",
                "shop",
                "mule",
                "hub",
                "chem",
                "pep",
                "ramp",
                "synth",
                "cleared",
                "buyer2",
            )
        )
    )
    rows, labels = [], []
    for i in range(3):  # account takeover: the victim's burst orders at an honest shop, labelled fraud
        rows.append(_tx(f"ato{i}", T0 - 20 * DAY, "victim", "shop", 500, category="phones"))
        labels.append(_label(f"la{i}", "transaction", f"ato{i}", "fraud", T0 - 5 * DAY))
    for i in range(17):  # the shop's ordinary sales
        rows.append(_tx(f"ok{i}", T0 - 25 * DAY, "buyer2", "shop", 30))
    for i in range(4):  # stolen goods: every sale of the thief labelled fraud (investigation)
        rows.append(_tx(f"sg{i}", T0 - 50 * DAY, "buyer2", "thief", 100, category="phones"))
        labels.append(_label(f"ls{i}", "transaction", f"sg{i}", "fraud", T0 + 10 * DAY))
    rows.append(_tx("ml1", T0 - 40 * DAY, "mule", "hub", 1000))
    labels.append(_label("lm1", "transaction", "ml1", "money_laundering", T0 - DAY))
    rows.append(_tx("rg1", T0 - 40 * DAY, "chem", "shop", 80, category="precursor_chemicals"))
    labels.append(_label("lr1", "transaction", "rg1", "restricted_goods", T0 - DAY))
    labels += [
        _label("lp", "customer", "pep", "pep", T0 - DAY),
        _label("lk", "customer", "ramp", "kyc_refresh_required", T0 - DAY),
        _label("ly", "customer", "synth", "synthetic_identity", T0 + 20 * DAY),
        _label("lc1", "customer", "cleared", "sanctioned", T0 - 10 * DAY),
        _label("lc2", "customer", "cleared", "legitimate", T0 - DAY),
    ]
    return customers, _frame(rows, ("occurred_at",)), _frame(labels, ("known_at",))


def test_targets_follow_the_definition():
    customers, transactions, labels = _target_world()
    ids = ["victim", "thief", "shop", "mule", "hub", "chem", "pep", "ramp", "synth", "cleared", "buyer2"]
    snaps = _snap(*((c, T0 - 30 * DAY) for c in ids))
    y = dict(zip(ids, customer_targets(snaps, customers, transactions, labels, cutoff=None), strict=True))
    assert y == {
        "victim": 0,  # buyer of plain fraud orders: a victim
        "thief": 1,  # seller of 4 fraud orders out of 4 sales
        "shop": 0,  # 3 fraud orders out of 21 sales: a victim of the takeover
        "mule": 1,  # buyer of a money-laundering order
        "hub": 1,  # seller of a money-laundering order: no innocent seller in laundering
        "chem": 1,  # buyer of restricted goods
        "pep": 0,
        "ramp": 0,
        "synth": 1,  # customer label arriving after as_of still counts (before the cut-off)
        "cleared": 1,  # a later "legitimate" clears nothing
        "buyer2": 0,
    }
    literal = customer_targets(
        snaps, customers, transactions, labels, cutoff=None, seller_min_bad=1, seller_min_share=0.0
    )
    literal = dict(zip(ids, literal, strict=True))
    assert literal["shop"] == 1 and literal["hub"] == 1 and literal["victim"] == 0
    review = dict(zip(ids, customer_review_targets(snaps, labels, cutoff=None), strict=True))
    assert {c for c, v in review.items() if v} == {"pep", "ramp"}


def test_targets_respect_the_cutoff():
    customers, transactions, labels = _target_world()
    snaps = _snap(
        ("thief", T0 - 30 * DAY), ("synth", T0 - 30 * DAY), ("mule", T0 - 30 * DAY), ("pep", T0 - 30 * DAY)
    )
    at_t0 = customer_targets(snaps, customers, transactions, labels, cutoff=T0)
    assert at_t0.tolist() == [0, 0, 1, 0]  # thief and synth labels arrive after T0
    assert at_t0.name == "target" and list(at_t0.index) == list(snaps.index)
    just_after = customer_targets(snaps, customers, transactions, labels, cutoff=T0 + 10 * DAY + US)
    assert just_after.tolist() == [1, 0, 1, 0]
    exactly = customer_targets(snaps, customers, transactions, labels, cutoff=T0 + 10 * DAY)
    assert exactly.tolist() == [0, 0, 1, 0]  # known_at == cut-off is not yet known
    per_row = customer_targets(
        snaps, customers, transactions, labels, cutoff=snaps["as_of"]
    )  # known at the snapshot
    assert per_row.tolist() == [0, 0, 0, 0]
    review = customer_review_targets(snaps, labels, cutoff=T0 - DAY)
    assert review.tolist() == [0, 0, 0, 0]
    assert customer_review_targets(snaps, labels, cutoff=T0).tolist() == [0, 0, 0, 1]


def test_customer_patterns_per_snapshot():
    snaps = _snap(("a", T0), ("b", T0), ("a", T0 + DAY), ("z", T0))
    patterns = pd.DataFrame(
        {
            "entity_type": ["customer", "customer", "customer", "transaction"],
            "entity_id": ["a", "b", "b", "z"],
            "pattern": ["stolen_goods_seller", "shell_company_ring", "account_takeover", "friendly_fraud"],
            "instance": ["s-1", "r-1", "a-1", "f-1"],
            "stage": ["seller", "mule", "victim", None],
            "labelled": [True, False, False, True],
            "label": [None, None, None, "fraud"],
        }
    )
    out = customer_patterns(snaps, patterns)
    assert out["pattern"].tolist() == [
        "stolen_goods_seller",
        "account_takeover|shell_company_ring",
        "stolen_goods_seller",
        "none",
    ]
    assert out["stage"].tolist() == ["seller", "victim|mule", "seller", "none"]


def test_customer_frame_alignment_and_flags():
    customers, transactions, events, labels = _world()
    snaps = _snap(("A", T0), ("B", T0))
    beh = customer_behaviour(snaps, transactions, events, labels, customers=customers)
    frame = customer_frame(customers, snaps, beh)
    assert frame["customer_role"].tolist() == ["buyer", "seller"]
    assert frame["customer_screen_status"].isna().all()
    with pytest.raises(ValueError, match="one row per snapshot"):
        customer_frame(customers, snaps, beh.iloc[:1])
    screening = pd.DataFrame(
        {
            "screen_score": [97.0, 90.0],
            "screen_status": ["hit", "hit"],
            "screen_list_type": ["sanction", "pep"],
            "screen_entry_id": ["W1", "W2"],
            "screen_dob_match": ["exact", "exact"],
        },
        index=snaps.index,
    )
    flags = customer_flags(customer_frame(customers, snaps, beh, screening))
    # a sanctions hit is confirmed (report); a PEP hit is a possible match (enhanced due diligence)
    assert flags["screen_confirmed"].tolist() == [True, False]
    assert flags["screen_possible"].tolist() == [False, True]
    assert flags["doc_expired"].isna().all()


def test_serving_at_onboarding_with_empty_history_matches_batch():
    customers, transactions, events, labels = _world()
    snap = _snap(("G", T0 + 5 * DAY + US))
    batch = customer_behaviour(snap, transactions, events, labels, customers=customers)
    rows = customer_rows("G", transactions, events, labels, customers)
    assert len(rows["transactions"]) == 0 and len(rows["account_events"]) == 0
    assert set(rows["customers"]["customer_id"]) == {"G", "A"}  # A shares G's address
    one = customer_behaviour(
        snap, rows["transactions"], rows["account_events"], rows["labels"], customers=rows["customers"]
    )
    pd.testing.assert_frame_equal(one, batch)
    assert one["customer_linked_nunique_all"].iloc[0] == 1
    empty = customer_behaviour(
        snap,
        transactions.iloc[:0],
        events.iloc[:0],
        labels.iloc[:0],
        customers=customers[customers["customer_id"] == "G"],
    )
    assert empty["buyer_txn_count_all"].iloc[0] == 0 and math.isnan(
        empty["customer_txn_since_last_all"].iloc[0]
    )
