"""Batch scoring, concurrent scoring with group commit, and the clock bound on event times."""

from __future__ import annotations

import threading
from datetime import timedelta

import pandas as pd
import pytest

from serving.decision_log import verify_path
from serving.scorer import Clock, Scorer, ScorerError, UnknownCustomer
from tests.serving.conftest import fresh_state, order_request

pytestmark = pytest.mark.filterwarnings("ignore")


def _scorer(tmp_path, seeded_state, name: str, **kwargs) -> Scorer:
    return Scorer.from_registry(state_dir=fresh_state(seeded_state, tmp_path / name), **kwargs)


def _comparable(response) -> dict:
    out = response.model_dump()
    out.pop("decision_id")
    return out


def test_score_batch_equals_scoring_one_by_one(tmp_path, champion, seeded_state) -> None:
    requests = [order_request(row) for row in champion.held_out.to_dict("records")]
    one = _scorer(tmp_path, seeded_state, "one")
    many = _scorer(tmp_path, seeded_state, "many")
    try:
        singles = [one.score(r) for r in requests]
        batched = many.score_batch(requests)
        assert [_comparable(r) for r in batched] == [_comparable(r) for r in singles]
        # later orders saw the earlier ones: the state afterwards is the same
        follow = order_request(champion.held_out.iloc[-1].to_dict(), transaction_id="T-follow")
        assert _comparable(one.score(follow)) == _comparable(many.score(follow))
        for a, b in zip(singles, batched, strict=True):
            assert one.get_decision(a.decision_id).features == many.get_decision(b.decision_id).features
        assert verify_path(many.state_dir / "decisions.sqlite").ok
    finally:
        one.close()
        many.close()


def test_a_bad_order_refuses_the_whole_batch_before_any_change(tmp_path, champion, seeded_state) -> None:
    requests = [order_request(row) for row in champion.held_out.head(5).to_dict("records")]
    scorer = _scorer(tmp_path, seeded_state, "bad")
    try:
        before = (len(scorer.decisions), scorer.features._watermark)
        unknown = dict(requests[3], buyer_id="C-nobody")
        with pytest.raises(UnknownCustomer) as err:
            scorer.score_batch([*requests[:3], unknown, requests[4]])
        assert err.value.field == "orders[3].buyer_id"
        twice = [requests[0], requests[1], requests[0]]
        with pytest.raises(ScorerError) as err:
            scorer.score_batch(twice)
        assert err.value.field == "orders[2].transaction_id"
        assert (len(scorer.decisions), scorer.features._watermark) == before
        # the same orders, corrected, are then scored normally
        assert len(scorer.score_batch(requests)) == 5
    finally:
        scorer.close()


def test_concurrent_orders_are_all_logged_with_one_chain(tmp_path, champion, seeded_state) -> None:
    rows = champion.held_out.to_dict("records")
    scorer = _scorer(tmp_path, seeded_state, "threads")
    answers: list = []
    errors: list = []

    def worker(k: int) -> None:
        try:
            for i, row in enumerate(rows[k::4]):
                answers.append(scorer.score(order_request(row, transaction_id=f"T-{k}-{i}")))
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and len(answers) == len(rows)
        for answer in answers:
            assert scorer.get_decision(answer.decision_id).score == answer.fraud_probability
        report = verify_path(scorer.state_dir / "decisions.sqlite")
        assert report.ok and report.records == len(rows)
    finally:
        scorer.close()


def test_orders_dated_beyond_the_clock_are_refused_and_change_nothing(
    tmp_path, champion, seeded_state
) -> None:
    row = champion.held_out.iloc[0].to_dict()
    t = pd.Timestamp(row["occurred_at"])
    # a simulated clock at the order's time: the order itself is fine, a year later is not
    scorer = _scorer(tmp_path, seeded_state, "clock", clock=Clock(start=t, max_future_seconds=300))
    try:
        future = order_request(row, transaction_id="T-future")
        future["occurred_at"] = (t + timedelta(days=365)).isoformat()
        with pytest.raises(ScorerError) as err:
            scorer.score(future)
        assert err.value.field == "occurred_at" and "ahead of the service clock" in str(err.value)
        with pytest.raises(ScorerError) as err:
            scorer.score_batch([order_request(row), future])
        assert err.value.field == "orders[1].occurred_at"
        assert len(scorer.decisions) == 0
        # a little skew is accepted, and the normal order after the refused one is not "late"
        skewed = order_request(row, transaction_id="T-skew")
        skewed["occurred_at"] = (t + timedelta(seconds=60)).isoformat()
        assert scorer.score(order_request(row)).transaction_id == row["transaction_id"]
        assert scorer.score(skewed).transaction_id == "T-skew"
    finally:
        scorer.close()


def test_clock_configuration_is_checked(monkeypatch) -> None:
    monkeypatch.setenv("KYCRISK_CLOCK_START", "2027-01-01T00:00:00Z")
    monkeypatch.setenv("KYCRISK_MAX_FUTURE_SECONDS", "60")
    clock = Clock.from_env()
    assert clock.simulated and clock.max_future_us == 60_000_000
    assert abs(clock.now_us() - pd.Timestamp("2027-01-01", tz="UTC").value // 1000) < 60_000_000
    monkeypatch.setenv("KYCRISK_MAX_FUTURE_SECONDS", "-1")
    with pytest.raises(ValueError, match="KYCRISK_MAX_FUTURE_SECONDS"):
        Clock.from_env()


def test_future_account_events_and_labels_are_refused_before_any_change(
    tmp_path, champion, seeded_state
) -> None:
    row = champion.held_out.iloc[0].to_dict()
    t = pd.Timestamp(row["occurred_at"])
    scorer = _scorer(tmp_path, seeded_state, "events", clock=Clock(start=t))
    try:
        ok = {"kind": "account_event", "event_id": "E-ok", "customer_id": row["buyer_id"],
              "occurred_at": t.isoformat(), "event_type": "login"}  # fmt: skip
        label = {"kind": "label", "label_id": "L-future", "entity_type": "transaction",
                 "entity_id": row["transaction_id"], "label": "fraud",
                 "known_at": (t + timedelta(days=30)).isoformat()}  # fmt: skip
        watermark = scorer.features._watermark
        with pytest.raises(ScorerError) as err:
            scorer.apply_events([ok, label])
        assert err.value.field == "events[1].known_at"
        assert scorer.features._watermark == watermark
        assert sum(scorer.apply_events([ok]).values()) == 1
    finally:
        scorer.close()


def test_every_model_feature_of_the_champion_has_a_reason_sentence(tmp_path, champion, seeded_state) -> None:
    from training.explain import REASON_CATALOGUE, describe_feature

    scorer = _scorer(tmp_path, seeded_state, "reasons")
    try:
        for name in scorer.explainer.feature_names:
            spec = describe_feature(name)
            assert spec.code != "OTHER" and spec.code in REASON_CATALOGUE, name
    finally:
        scorer.close()


def test_the_calibration_shortcut_equals_the_calibrators_predict(tmp_path, champion, seeded_state) -> None:
    import numpy as np

    from training.steps import calibration_function as _calibration_function

    scorer = _scorer(tmp_path, seeded_state, "calibration")
    try:
        raw = np.linspace(-30, 30, 4001)  # raw LightGBM scores (always finite), beyond both ends
        for cc in scorer.pipeline[-1].calibrated_classifiers_:
            calibrator = cc.calibrators[0]
            fast = _calibration_function(calibrator)
            assert fast is not calibrator.predict  # the shortcut is in use for isotonic calibration
            np.testing.assert_array_equal(fast(raw), calibrator.predict(raw))
    finally:
        scorer.close()


def test_service_settings_are_checked(monkeypatch) -> None:
    from serving.service import risk_tier_setting, threads_setting

    assert threads_setting("4") == 4
    for bad in ("0", "-2", "many", ""):
        with pytest.raises(ValueError, match="KYCRISK_THREADS"):
            threads_setting(bad)
    monkeypatch.setenv("KYCRISK_RISK_TIER", "Optional")
    assert risk_tier_setting() == "optional"
    monkeypatch.setenv("KYCRISK_RISK_TIER", "sometimes")
    with pytest.raises(ValueError, match="KYCRISK_RISK_TIER"):
        risk_tier_setting()
