"""Reasons are declared next to the features: every feature the engines produce has one."""

from __future__ import annotations

import pandas as pd

from features.customer import BEHAVIOUR_COLUMNS, BEHAVIOURS
from features.definitions import (
    FEATURE_SETS,
    ROW_FEATURES,
    ROW_REASONS,
    Aggregation,
    HistoryName,
    history_reason_of,
    parse_feature_name,
)
from features.definitions.history_reasons import HISTORY_CODES
from features.profile import EVENT_RISK_REASONS, EventRiskFeatures, PartyProfileFeatures, party_reasons
from features.reasons import FeatureDoc
from tests.features.test_profile import _frame, _row


def test_every_declared_aggregation_reads_back_into_its_fields():
    for feature_set in FEATURE_SETS.values():
        for agg in feature_set.aggregations:
            assert parse_feature_name(agg.name) == agg.history_name, agg.name
            assert agg.history_name.name == agg.name
            assert agg.reason.code in HISTORY_CODES, agg.name


def test_a_new_aggregation_brings_its_reason_without_any_other_change():
    # Not in any feature set: its reason comes from its own fields.
    new = Aggregation("ip", "txn", "count", "1h")
    assert all(new.name not in fs.feature_names for fs in FEATURE_SETS.values())
    assert new.name == "ip_txn_count_1h"
    assert new.reason.code == "IP_VELOCITY"
    assert new.reason.render(4.0, {}) == "4 orders from this IP address in the hour before this one"
    # A model that only knows the name gets the same reason.
    assert history_reason_of(new.name).code == new.reason.code
    doc = FeatureDoc.of(new.name, new.reason, "history")
    assert (
        doc.message(float("nan"))
        == "the number of orders from this IP address in the hour before this one is unknown"
    )


def test_history_names_keep_their_suffixes():
    agg = Aggregation("seller", "txn", "fraud_rate", "7d", delay="7d", closed="right", fill=0.0)
    assert agg.history_name == HistoryName("seller", "", "fraud_rate", "7d", "7d", False, "right")
    assert agg.name == "seller_fraud_rate_7d_delay7d_closed_right"


def test_every_row_level_feature_declares_its_reason():
    assert set(ROW_FEATURES) <= set(ROW_REASONS)


def test_every_profile_and_event_risk_output_declares_its_reason():
    X = pd.DataFrame(_frame(_row())).assign(occurred_at=pd.Timestamp("2026-03-01", tz="UTC"))
    X["buyer_amount_sum_30d"] = 1000.0
    out = PartyProfileFeatures(party="buyer").fit(X).transform(X)
    added = [c for c in out.columns if c not in X.columns]
    assert added  # the transformer adds columns; each must have a reason
    declared = party_reasons("buyer")
    assert [c for c in added if c.removeprefix("buyer_") not in declared] == []
    events = pd.DataFrame(
        {"ip_country": ["DE"], "buyer_country": ["DE"], "seller_country": ["FR"], "goods_category": ["books"]}
    )

    risk = EventRiskFeatures().fit(events).transform(events)
    assert set(risk.columns) - set(events.columns) == set(EVENT_RISK_REASONS)


def test_customer_behaviour_is_declared_once_with_its_reason():
    assert list(BEHAVIOUR_COLUMNS) == list(BEHAVIOURS)
    assert all(b.meaning and b.reason.code for b in BEHAVIOURS.values())
